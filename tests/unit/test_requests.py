"""Tests of the pure pledge/forwarding rules: validation codes and bookings."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from clientstats.domain.events import DonationEvent, ForwardingEvent
from clientstats.domain.ledger import Channel, Client, FailureCode, Project
from clientstats.domain.request_fields import (
    ADDRESS_FIELDS,
    BLANK,
    HAS_CONTROL,
    MAX_PLEDGE_CENTS,
)
from clientstats.domain.requests import (
    ClientRequest,
    Problem,
    RequestKind,
    RequestState,
    StoredRequest,
    booking_event,
    is_same_request,
    pledge_failure,
    request_token,
    validate_forwarding,
    validate_pledge,
)

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
COUNTRIES = {"DE", "AT", "CH", "FR"}


def is_country(code: str) -> bool:
    return code.upper() in COUNTRIES


def pledge(**changes: Any) -> dict[str, Any]:
    """A valid pledge body with some fields changed; a value None removes the field."""
    body: dict[str, Any] = {
        "amount_in_cents": 2500,
        "client_reference": "order-17_a",
        "first_name": "Erika",
        "last_name": "Mustermann",
        "email": "erika@example.org",
        "street": "Hauptstr. 1",
        "city": "Trier",
        "zip": "54290",
        "country_code": "DE",
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def codes(body: dict[str, Any]) -> dict[str, list[str]]:
    return {f: [p.code for p in ps] for f, ps in validate_pledge(body, is_country).items()}


def test_a_complete_pledge_is_valid() -> None:
    assert validate_pledge(pledge(), is_country) == {}


def test_a_pledge_with_every_optional_field_is_valid() -> None:
    body = pledge(tracking_via="newsletter", earmark=59220, message="Viel Erfolg!")
    assert validate_pledge(body, is_country) == {}


@pytest.mark.parametrize("amount", [1, 2, MAX_PLEDGE_CENTS])
def test_amount_bounds_are_inclusive(amount: int) -> None:
    assert codes(pledge(amount_in_cents=amount)) == {}


@pytest.mark.parametrize("amount", [0, -1, MAX_PLEDGE_CENTS + 1, 10**12])
def test_amount_outside_the_range_is_out_of_range(amount: int) -> None:
    problems = validate_pledge(pledge(amount_in_cents=amount), is_country)
    assert problems == {
        "amount_in_cents": [Problem("out_of_range", {"min": 1, "max": MAX_PLEDGE_CENTS})]
    }


@pytest.mark.parametrize("amount", ["2500", 25.0, 2.5, True, False, [1], {"a": 1}])
def test_amount_that_is_not_an_integer(amount: object) -> None:
    assert codes(pledge(amount_in_cents=amount)) == {"amount_in_cents": ["not_an_integer"]}


@pytest.mark.parametrize("field", ["amount_in_cents", "client_reference"])
def test_amount_and_reference_are_required(field: str) -> None:
    body = pledge()
    del body[field]
    assert codes(body) == {field: ["required"]}
    assert codes({**body, field: None}) == {field: ["required"]}


@pytest.mark.parametrize("reference", ["a", "A-z_09", "x" * 128])
def test_valid_client_references(reference: str) -> None:
    assert codes(pledge(client_reference=reference)) == {}


@pytest.mark.parametrize(
    "reference", ["", " ", "has space", "colon:no", "umlaut-ä", "x" * 129, 17, ["a"], "a\n"]
)
def test_invalid_client_references(reference: object) -> None:
    assert codes(pledge(client_reference=reference)) == {"client_reference": ["invalid_reference"]}


@pytest.mark.parametrize("field", ADDRESS_FIELDS)
def test_each_address_field_is_required_by_default(field: str) -> None:
    body = pledge()
    del body[field]
    assert codes(body) == {field: ["required"]}
    assert codes({**body, "validate_address": True}) == {field: ["required"]}


def test_no_address_field_is_required_when_validate_address_is_false() -> None:
    body = {"amount_in_cents": 100, "client_reference": "r1", "validate_address": False}
    assert codes(body) == {}


def test_address_fields_given_are_still_checked_when_validate_address_is_false() -> None:
    body = {
        "amount_in_cents": 100,
        "client_reference": "r1",
        "validate_address": False,
        "email": "not-an-address",
        "country_code": "XX",
    }
    assert codes(body) == {"email": ["invalid_email"], "country_code": ["invalid_country"]}


@pytest.mark.parametrize("flag", ["false", 0, "no"])
def test_validate_address_must_be_a_boolean(flag: object) -> None:
    body = {"amount_in_cents": 100, "client_reference": "r1", "validate_address": flag}
    # Anything but `false` leaves the address check on.
    assert codes(body) == {
        "validate_address": ["not_a_boolean"],
        **{f: ["required"] for f in ADDRESS_FIELDS},
    }


def test_null_counts_as_left_out_for_every_optional_field() -> None:
    nulls = {"tracking_via": None, "earmark": None, "message": None, "validate_address": None}
    assert codes(pledge(**nulls)) == {}
    no_address = {"amount_in_cents": 100, "client_reference": "r1", "validate_address": False}
    assert codes({**no_address, **dict.fromkeys(ADDRESS_FIELDS)}) == {}
    assert (
        validate_forwarding({"amount_in_cents": 1, "client_reference": "f", "tracking_via": None})
        == {}
    )


def test_null_is_no_address_where_one_is_required() -> None:
    body = {**pledge(), "validate_address": None, "city": None}
    assert codes(body) == {"city": ["required"]}


def test_blank_is_the_white_space_python_knows_that_is_no_control_character() -> None:
    blank, control = re.compile(f"[{BLANK}]"), re.compile(HAS_CONTROL)
    for char in map(chr, range(0x110000)):
        expected = char.isspace() and not control.match(char)
        assert bool(blank.match(char)) == expected, hex(ord(char))


@pytest.mark.parametrize("text", ["\x7f", "a\x85b", "\x9f"])
def test_every_control_character_is_refused_not_only_the_ascii_ones(text: str) -> None:
    assert codes(pledge(message=text)) == {"message": ["control_characters"]}


@pytest.mark.parametrize("amount", [Decimal("5.0"), Decimal("5E0"), 5])
def test_an_exact_integral_number_is_an_integer(amount: object) -> None:
    assert codes(pledge(amount_in_cents=amount)) == {}


@pytest.mark.parametrize("amount", [Decimal("5.5"), Decimal("1.0000000000000001"), Decimal("NaN")])
def test_an_exact_number_with_a_fraction_is_not(amount: object) -> None:
    assert codes(pledge(amount_in_cents=amount)) == {"amount_in_cents": ["not_an_integer"]}


@pytest.mark.parametrize("amount", [10**23, Decimal("1E+400"), -(2**70)])
def test_a_huge_integer_is_out_of_range(amount: object) -> None:
    assert codes(pledge(amount_in_cents=amount)) == {"amount_in_cents": ["out_of_range"]}


@pytest.mark.parametrize("code", ["\u0131t", "\u212ae", "\u017fe"])
def test_a_country_code_is_two_ascii_letters_whatever_unicode_upper_cases_it_to(code: str) -> None:
    assert code.upper().isascii() or code.lower().isascii()
    assert codes(pledge(country_code=code)) == {"country_code": ["invalid_country"]}


@pytest.mark.parametrize(
    "email", ["erika", "erika@", "@example.org", "erika@example", "a b@example.org", "a@b@c.de"]
)
def test_invalid_emails(email: str) -> None:
    assert codes(pledge(email=email)) == {"email": ["invalid_email"]}


@pytest.mark.parametrize("email", ["erika@example.org", "e.m+tag@sub.example.co.uk"])
def test_valid_emails(email: str) -> None:
    assert codes(pledge(email=email)) == {}


@pytest.mark.parametrize("code", ["XX", "D", "12"])
def test_unknown_country_codes(code: str) -> None:
    assert codes(pledge(country_code=code)) == {"country_code": ["invalid_country"]}


def test_a_three_letter_country_code_is_too_long() -> None:
    assert codes(pledge(country_code="DEU")) == {"country_code": ["too_long"]}


@pytest.mark.parametrize("field", ["first_name", "last_name", "street", "city", "zip"])
def test_address_text_checks(field: str) -> None:
    assert codes(pledge(**{field: 12})) == {field: ["not_a_string"]}
    assert codes(pledge(**{field: "   "})) == {field: ["blank"]}
    assert codes(pledge(**{field: "a\x00b"})) == {field: ["control_characters"]}
    assert codes(pledge(**{field: "x" * 201})) == {field: ["too_long"]}


def test_zip_is_limited_to_16_characters() -> None:
    assert codes(pledge(zip="1" * 16)) == {}
    assert validate_pledge(pledge(zip="1" * 17), is_country) == {
        "zip": [Problem("too_long", {"max": 16})]
    }


def test_optional_text_fields() -> None:
    assert codes(pledge(tracking_via="x" * 200)) == {}
    assert codes(pledge(tracking_via="x" * 201)) == {"tracking_via": ["too_long"]}
    assert codes(pledge(tracking_via=5)) == {"tracking_via": ["not_a_string"]}
    assert codes(pledge(tracking_via="")) == {"tracking_via": ["blank"]}
    assert codes(pledge(message="m" * 2000)) == {}
    assert codes(pledge(message="m" * 2001)) == {"message": ["too_long"]}
    assert codes(pledge(message=["m"])) == {"message": ["not_a_string"]}
    assert codes(pledge(message="tab\there")) == {"message": ["control_characters"]}


@pytest.mark.parametrize(
    ("earmark", "code"),
    [(0, "out_of_range"), (-5, "out_of_range"), ("12", "not_an_integer"), (1.5, "not_an_integer")],
)
def test_invalid_earmarks(earmark: object, code: str) -> None:
    assert codes(pledge(earmark=earmark)) == {"earmark": [code]}


def test_unknown_fields_are_named_each() -> None:
    assert codes(pledge(donor="x", amount=1)) == {
        "donor": ["unknown_field"],
        "amount": ["unknown_field"],
    }


def test_every_problem_is_reported_not_only_the_first() -> None:
    body = {"amount_in_cents": 0, "client_reference": "a b", "email": "x", "extra": 1}
    found = codes(body)
    assert found["amount_in_cents"] == ["out_of_range"]
    assert found["client_reference"] == ["invalid_reference"]
    assert found["email"] == ["invalid_email"]
    assert found["extra"] == ["unknown_field"]
    assert {f for f in ADDRESS_FIELDS if f != "email"} <= set(found)


def test_forwarding_takes_amount_reference_and_tracking_only() -> None:
    assert validate_forwarding({"amount_in_cents": 5000, "client_reference": "f-1"}) == {}
    assert (
        validate_forwarding(
            {"amount_in_cents": 5000, "client_reference": "f-1", "tracking_via": "x"}
        )
        == {}
    )
    found = validate_forwarding({"amount_in_cents": 1, "client_reference": "f", "email": "a@b.de"})
    assert found == {"email": [Problem("unknown_field")]}


def test_forwarding_amount_is_not_capped_at_the_pledge_maximum() -> None:
    assert (
        validate_forwarding({"amount_in_cents": MAX_PLEDGE_CENTS + 1, "client_reference": "f"})
        == {}
    )
    found = validate_forwarding({"amount_in_cents": 0, "client_reference": "f"})
    assert [p.code for p in found["amount_in_cents"]] == ["out_of_range"]


def test_forwarding_requires_amount_and_reference() -> None:
    found = validate_forwarding({})
    assert found == {
        "amount_in_cents": [Problem("required")],
        "client_reference": [Problem("required")],
    }


# --- outcome rules and the booking event ------------------------------------------------

WITH_POOL = Client("vf", "Volksfreund", has_pool=True)
NO_POOL = Client("acme", "ACME", has_pool=False)
OPEN = Project(1, "Open")
CLOSED = Project(2, "Closed", closed=True)
PROHIBITED = Project(3, "Prohibited", donations_prohibited=True)


@pytest.mark.parametrize(
    ("client", "project", "expected"),
    [
        (WITH_POOL, OPEN, None),
        (NO_POOL, OPEN, None),
        (WITH_POOL, CLOSED, None),
        (WITH_POOL, PROHIBITED, None),
        (WITH_POOL, None, None),
        (NO_POOL, CLOSED, FailureCode.POOL_MISSING),
        (NO_POOL, PROHIBITED, FailureCode.POOL_MISSING),
        (NO_POOL, None, FailureCode.POOL_MISSING),
    ],
)
def test_pledge_failure_is_only_a_missing_pool_to_fall_back_to(
    client: Client, project: Project | None, expected: FailureCode | None
) -> None:
    assert pledge_failure(client, project) is expected


def stored(kind: RequestKind, project_id: int | None, **changes: Any) -> StoredRequest:
    values: dict[str, Any] = {
        "id": 42,
        "kind": kind,
        "client_id": "vf",
        "client_reference": "ref-42",
        "amount_in_cents": 1234,
        "project_id": project_id,
        "tracking_via": "web",
        "state": RequestState.PENDING,
        "created_at": NOW,
        "updated_at": NOW,
    }
    values.update(changes)
    return StoredRequest(**values)


def test_request_tokens_carry_a_colon_that_imported_tokens_cannot() -> None:
    assert request_token(RequestKind.PLEDGE, 7) == "pledge:7"
    assert request_token(RequestKind.FORWARDING, 7) == "forwarding:7"


def test_a_project_pledge_books_a_client_donation_to_the_project() -> None:
    event = booking_event(stored(RequestKind.PLEDGE, 5))
    assert isinstance(event, DonationEvent)
    d = event.donation
    assert (d.token, d.channel, d.amount_in_cents) == ("pledge:42", Channel.CLIENT, 1234)
    assert (d.project_id, d.pool_client_id) == (5, None)
    assert (d.client_id, d.client_reference, d.tracking_via) == ("vf", "ref-42", "web")
    assert d.created_at == NOW


def test_a_pool_pledge_books_a_client_donation_to_the_own_pool() -> None:
    event = booking_event(stored(RequestKind.PLEDGE, None))
    assert isinstance(event, DonationEvent)
    assert (event.donation.project_id, event.donation.pool_client_id) == (None, "vf")
    assert event.donation.channel is Channel.CLIENT


def test_a_forwarding_request_books_a_forwarding_from_the_own_pool() -> None:
    event = booking_event(stored(RequestKind.FORWARDING, 9))
    assert isinstance(event, ForwardingEvent)
    f = event.forwarding
    assert (f.token, f.channel, f.project_id, f.client_id) == (
        "forwarding:42",
        Channel.FORWARDING,
        9,
        "vf",
    )
    assert f.pool_client_id is None


# --- a repeated client reference: the same request, or another one -------------------------

SENT: dict[str, Any] = {"first_name": "Erika", "tracking_via": "web", "earmark": 10}


def incoming(
    details: dict[str, Any], *, project_id: int | None = 5, amount: int = 1234
) -> ClientRequest:
    return ClientRequest(RequestKind.PLEDGE, "vf", "ref-42", amount, project_id, details)


@pytest.mark.parametrize(
    "details",
    [
        pytest.param(SENT, id="as sent"),
        pytest.param(dict(reversed(SENT.items())), id="other key order"),
        pytest.param({**SENT, "validate_address": True}, id="default spelled out"),
        pytest.param({**SENT, "message": None, "city": None}, id="null for absent"),
    ],
)
def test_a_repeat_written_differently_is_the_same_request(details: dict[str, Any]) -> None:
    stored_request = stored(RequestKind.PLEDGE, 5, details=SENT)
    assert is_same_request(stored_request, incoming(details))


@pytest.mark.parametrize(
    ("details", "project_id", "amount"),
    [
        pytest.param(SENT, 5, 1235, id="amount"),
        pytest.param(SENT, None, 1234, id="pool instead of project"),
        pytest.param(SENT, 6, 1234, id="other project"),
        pytest.param({**SENT, "first_name": "erika"}, 5, 1234, id="address"),
        pytest.param({**SENT, "tracking_via": None}, 5, 1234, id="tracking left out"),
        pytest.param({**SENT, "message": "Hallo"}, 5, 1234, id="message added"),
        pytest.param({**SENT, "earmark": 11}, 5, 1234, id="earmark"),
        pytest.param({**SENT, "validate_address": False}, 5, 1234, id="validate_address"),
    ],
)
def test_any_other_field_makes_another_request(
    details: dict[str, Any], project_id: int | None, amount: int
) -> None:
    stored_request = stored(RequestKind.PLEDGE, 5, details=SENT)
    assert not is_same_request(
        stored_request, incoming(details, project_id=project_id, amount=amount)
    )


def test_true_and_one_are_not_the_same_value() -> None:
    stored_request = stored(RequestKind.PLEDGE, 5, details={"earmark": 1})
    assert not is_same_request(stored_request, incoming({"earmark": True}))
    assert is_same_request(stored_request, incoming({"earmark": 1}))
