"""Tests of parsing, validating and merging operator ledger events."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clientstats.domain.events import (
    ClientEvent,
    ClientProjectEvent,
    DonationEvent,
    EventInvalid,
    ForwardingEvent,
    MatchingFundEvent,
    NeedEvent,
    ProjectEvent,
    RevocationEvent,
    parse_event,
    parse_line,
)
from clientstats.domain.ledger import (
    BookingRejected,
    Channel,
    Client,
    Donation,
    MatchingFund,
    Need,
    Project,
)
from clientstats.domain.merging import merge_client, merge_matching_fund, merge_need, merge_project

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
APRIL_7 = datetime(2015, 4, 7, 8, 0, tzinfo=UTC)  # 10:00 at +02:00

# The example lines of the event format documentation, each with the object it must parse to.
DOCUMENTED_EXAMPLES: list[tuple[str, object]] = [
    (
        '{"event": "client", "id": "volksfreund", "name": "Volksfreund", "pool": true}',
        ClientEvent("volksfreund", "Volksfreund", True, None),
    ),
    (
        '{"event": "project", "id": 1114, "title": "Skateistan", "closed": false,'
        ' "donations_prohibited": false}',
        ProjectEvent(1114, "Skateistan", False, False),
    ),
    (
        '{"event": "client_project", "client_id": "volksfreund", "project_id": 1114,'
        ' "member": true}',
        ClientProjectEvent("volksfreund", 1114, True),
    ),
    (
        '{"event": "need", "id": 59220, "project_id": 1114, "title": "Ramp",'
        ' "requested_amount_in_cents": 500000}',
        NeedEvent(59220, 1114, "Ramp", 500000),
    ),
    (
        '{"event": "matching_fund", "id": 2, "client_id": "volksfreund", "title": "ACME doubles",'
        ' "provided_amount_in_cents": 1500000, "maximum_matching_amount_in_cents": 10000,'
        ' "state": "activated", "project_ids": [1114]}',
        MatchingFundEvent(
            2, "volksfreund", "ACME doubles", 1500000, 10000, "activated", frozenset({1114})
        ),
    ),
    (
        '{"event": "donation", "token": "d1", "channel": "client", "client_id": "volksfreund",'
        ' "receiver": {"type": "project", "id": 1114}, "amount_in_cents": 2500,'
        ' "created_at": "2015-04-07T10:00:00+02:00"}',
        DonationEvent(
            Donation("d1", Channel.CLIENT, 2500, APRIL_7, project_id=1114, client_id="volksfreund"),
            created_at_given=True,
        ),
    ),
    (
        '{"event": "donation", "token": "d2", "channel": "offline",'
        ' "receiver": {"type": "pool", "client_id": "volksfreund"}, "amount_in_cents": 10000}',
        DonationEvent(
            Donation("d2", Channel.OFFLINE, 10000, NOW, pool_client_id="volksfreund"),
            created_at_given=False,
        ),
    ),
    (
        '{"event": "forwarding", "token": "f1", "client_id": "volksfreund", "project_id": 1114,'
        ' "amount_in_cents": 5000}',
        ForwardingEvent(
            Donation("f1", Channel.FORWARDING, 5000, NOW, project_id=1114, client_id="volksfreund"),
            created_at_given=False,
        ),
    ),
    ('{"event": "revocation", "token": "d1"}', RevocationEvent("d1", NOW)),
]

VALID: dict[str, dict[str, Any]] = {
    json.loads(line)["event"]: json.loads(line) for line, _ in DOCUMENTED_EXAMPLES
}


def errors_of(obj: object) -> dict[str, list[str]]:
    with pytest.raises(EventInvalid) as caught:
        parse_event(obj, now=NOW)
    return caught.value.errors


def with_fields(kind: str, **changes: Any) -> dict[str, Any]:
    """The valid example of `kind` with fields replaced; a value of ... removes the field."""
    obj = dict(VALID[kind])
    for key, value in changes.items():
        if value is ...:
            obj.pop(key, None)
        else:
            obj[key] = value
    return obj


@pytest.mark.parametrize(("line", "expected"), DOCUMENTED_EXAMPLES)
def test_spec_examples_parse(line: str, expected: object) -> None:
    assert parse_line(line, now=NOW) == expected
    assert parse_line(line.encode(), now=NOW) == expected


def test_created_at_is_kept_as_an_instant_in_utc() -> None:
    event = parse_event(with_fields("revocation", created_at="2015-04-07T08:00:00Z"), now=NOW)
    assert event == RevocationEvent("d1", APRIL_7)
    assert isinstance(event, RevocationEvent)
    assert event.created_at.utcoffset() == timedelta(0)


def test_optional_fields_may_be_null_meaning_absent() -> None:
    obj = with_fields(
        "donation", client_id=None, created_at=None, client_reference=None, tracking_via=None
    )
    event = parse_event(obj, now=NOW)
    assert isinstance(event, DonationEvent)
    assert event.donation.client_id is None
    assert event.donation.created_at == NOW
    assert not event.created_at_given


def test_donation_with_all_optional_fields() -> None:
    obj = with_fields("donation", client_reference="Ref-1_a", tracking_via="newsletter 5")
    event = parse_event(obj, now=NOW)
    assert isinstance(event, DonationEvent)
    assert event.donation.client_reference == "Ref-1_a"
    assert event.donation.tracking_via == "newsletter 5"


def test_uppercase_permalinks_are_lowered_and_tokens_kept() -> None:
    client = parse_event(with_fields("client", id="VolksFreund"), now=NOW)
    assert isinstance(client, ClientEvent) and client.id == "volksfreund"
    obj = with_fields(
        "donation",
        token="D1",
        client_id="VOLKSFREUND",
        receiver={"type": "pool", "client_id": "Volksfreund"},
    )
    event = parse_event(obj, now=NOW)
    assert isinstance(event, DonationEvent)
    assert event.donation.token == "D1"
    assert event.donation.client_id == "volksfreund"
    assert event.donation.pool_client_id == "volksfreund"


def test_titles_are_stripped() -> None:
    event = parse_event(with_fields("project", title="  Skateistan \n"), now=NOW)
    assert isinstance(event, ProjectEvent) and event.title == "Skateistan"


def test_matching_fund_project_ids_have_set_semantics() -> None:
    event = parse_event(with_fields("matching_fund", project_ids=[3, 1, 3]), now=NOW)
    assert isinstance(event, MatchingFundEvent)
    assert event.project_ids == frozenset({1, 3})
    empty = parse_event(with_fields("matching_fund", project_ids=[]), now=NOW)
    assert isinstance(empty, MatchingFundEvent) and empty.project_ids == frozenset()


def test_partial_upserts_parse_with_only_the_id() -> None:
    assert parse_event({"event": "client", "id": "a"}, now=NOW) == ClientEvent(
        "a", None, None, None
    )
    assert parse_event({"event": "need", "id": 7}, now=NOW) == NeedEvent(7, None, None, None)
    assert parse_event({"event": "matching_fund", "id": 7, "state": "closed"}, now=NOW) == (
        MatchingFundEvent(7, None, None, None, None, "closed", None)
    )


@pytest.mark.parametrize(
    "obj",
    [None, [], "client", 5, {}, {"event": None}, {"event": 5}, {"event": "nope"}, {"id": 1}],
)
def test_bad_event_kind_is_reported_under_event(obj: object) -> None:
    assert list(errors_of(obj)) == ["event"]


INVALID_FIELDS: list[tuple[str, dict[str, Any], str]] = [
    # (kind, changes, field expected to be reported)
    ("client", {"id": ...}, "id"),
    ("client", {"id": "a b"}, "id"),
    ("client", {"id": "x" * 65}, "id"),
    ("client", {"id": ""}, "id"),
    ("client", {"id": 5}, "id"),
    ("client", {"id": "umläut"}, "id"),
    ("client", {"name": ""}, "name"),
    ("client", {"name": "   "}, "name"),
    ("client", {"name": "x" * 201}, "name"),
    ("client", {"name": None}, "name"),
    ("client", {"name": 5}, "name"),
    ("client", {"name": "a\x00b"}, "name"),
    ("client", {"pool": 1}, "pool"),
    ("client", {"pool": "true"}, "pool"),
    ("client", {"statistics_private": 0}, "statistics_private"),
    ("client", {"color": "red"}, "color"),
    ("project", {"id": 0}, "id"),
    ("project", {"id": 2**63}, "id"),
    ("project", {"id": True}, "id"),
    ("project", {"id": 1114.0}, "id"),
    ("project", {"id": "1114"}, "id"),
    ("project", {"id": None}, "id"),
    ("project", {"title": []}, "title"),
    ("project", {"closed": None}, "closed"),
    ("project", {"donations_prohibited": 1}, "donations_prohibited"),
    ("client_project", {"member": ...}, "member"),
    ("client_project", {"member": 1}, "member"),
    ("client_project", {"client_id": ...}, "client_id"),
    ("client_project", {"project_id": -1}, "project_id"),
    ("need", {"id": ...}, "id"),
    ("need", {"project_id": 0}, "project_id"),
    ("need", {"requested_amount_in_cents": 0}, "requested_amount_in_cents"),
    ("need", {"requested_amount_in_cents": 10**11 + 1}, "requested_amount_in_cents"),
    ("need", {"requested_amount_in_cents": 5.5}, "requested_amount_in_cents"),
    ("matching_fund", {"client_id": "no!"}, "client_id"),
    ("matching_fund", {"provided_amount_in_cents": -1}, "provided_amount_in_cents"),
    ("matching_fund", {"maximum_matching_amount_in_cents": 0}, "maximum_matching_amount_in_cents"),
    ("matching_fund", {"state": "open"}, "state"),
    ("matching_fund", {"project_ids": 1114}, "project_ids"),
    ("matching_fund", {"project_ids": [1, "2"]}, "project_ids"),
    ("matching_fund", {"project_ids": [True]}, "project_ids"),
    ("matching_fund", {"project_ids": list(range(1, 10_002))}, "project_ids"),
    ("donation", {"token": ...}, "token"),
    ("donation", {"token": "d:1"}, "token"),
    ("donation", {"token": "t" * 65}, "token"),
    ("donation", {"channel": ...}, "channel"),
    ("donation", {"channel": "matching"}, "channel"),
    ("donation", {"channel": "forwarding"}, "channel"),
    ("donation", {"channel": "CLIENT"}, "channel"),
    ("donation", {"channel": ["client"]}, "channel"),
    ("donation", {"client_id": "a b"}, "client_id"),
    ("donation", {"amount_in_cents": ...}, "amount_in_cents"),
    ("donation", {"amount_in_cents": 0}, "amount_in_cents"),
    ("donation", {"amount_in_cents": 10**11 + 1}, "amount_in_cents"),
    ("donation", {"amount_in_cents": True}, "amount_in_cents"),
    ("donation", {"amount_in_cents": "2500"}, "amount_in_cents"),
    ("donation", {"amount_in_cents": None}, "amount_in_cents"),
    ("donation", {"created_at": "2015-04-07T10:00:00"}, "created_at"),
    ("donation", {"created_at": "2015-04-07"}, "created_at"),
    ("donation", {"created_at": "yesterday"}, "created_at"),
    ("donation", {"created_at": 1428393600}, "created_at"),
    ("donation", {"created_at": "0001-01-01T00:00:00+01:00"}, "created_at"),
    ("donation", {"client_reference": "ref 1"}, "client_reference"),
    ("donation", {"client_reference": "r" * 129}, "client_reference"),
    ("donation", {"tracking_via": ""}, "tracking_via"),
    ("donation", {"tracking_via": "t" * 201}, "tracking_via"),
    ("donation", {"tracking_via": "\ud800"}, "tracking_via"),
    ("donation", {"receiver": ...}, "receiver"),
    ("donation", {"receiver": None}, "receiver"),
    ("donation", {"receiver": 1114}, "receiver"),
    ("donation", {"receiver": {}}, "receiver"),
    ("donation", {"receiver": {"type": "need", "id": 1}}, "receiver"),
    ("donation", {"receiver": {"type": "project"}}, "receiver"),
    ("donation", {"receiver": {"type": "project", "id": 0}}, "receiver"),
    ("donation", {"receiver": {"type": "pool", "id": 1114}}, "receiver"),
    ("donation", {"receiver": {"type": "pool", "client_id": "a b"}}, "receiver"),
    ("donation", {"receiver": {"type": "project", "id": 1114, "extra": 1}}, "receiver"),
    ("donation", {"donor": {"name": "x"}}, "donor"),
    ("forwarding", {"client_id": ...}, "client_id"),
    ("forwarding", {"client_id": None}, "client_id"),
    ("forwarding", {"project_id": ...}, "project_id"),
    ("forwarding", {"amount_in_cents": -5}, "amount_in_cents"),
    ("forwarding", {"channel": "client"}, "channel"),
    ("forwarding", {"receiver": {"type": "project", "id": 1114}}, "receiver"),
    ("revocation", {"token": ...}, "token"),
    ("revocation", {"token": None}, "token"),
    ("revocation", {"created_at": "2015-13-01T00:00:00Z"}, "created_at"),
    ("revocation", {"amount_in_cents": 5}, "amount_in_cents"),
]


@pytest.mark.parametrize(("kind", "changes", "field"), INVALID_FIELDS)
def test_invalid_field_is_reported_under_its_name(
    kind: str, changes: dict[str, Any], field: str
) -> None:
    errors = errors_of(with_fields(kind, **changes))
    assert list(errors) == [field]
    assert all(isinstance(m, str) and m for m in errors[field])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"channel": "matching"}, "matching donations are booked by the system"),
        ({"channel": "forwarding"}, "use a forwarding event"),
        ({"amount_in_cents": ...}, "is required"),
        ({"amount_in_cents": True}, "must be an integer"),
        ({"amount_in_cents": 0}, "must be between 1 and 100000000000"),
        ({"token": "a b"}, "must match [A-Za-z0-9_-]{1,64}"),
        ({"created_at": "2015-04-07T10:00:00"}, "must include a UTC offset"),
        ({"extra": 1}, "is not a known field of donation events"),
        ({"receiver": {"type": "project", "id": 1, "x": 1}}, "x is not a known field"),
    ],
)
def test_error_messages(changes: dict[str, Any], message: str) -> None:
    errors = errors_of(with_fields("donation", **changes))
    [messages] = errors.values()
    assert any(message in m for m in messages), messages


def test_all_errors_are_collected_at_once() -> None:
    obj = {
        "event": "donation",
        "token": "bad token",
        "channel": "matching",
        "receiver": {"type": "project", "id": 0, "client_id": "x"},
        "amount_in_cents": 1.5,
        "created_at": "2015-04-07T10:00:00",
        "tracking_via": "",
        "surprise": True,
    }
    errors = errors_of(obj)
    assert set(errors) == {
        "token",
        "channel",
        "receiver",
        "amount_in_cents",
        "created_at",
        "tracking_via",
        "surprise",
    }
    assert len(errors["receiver"]) == 2
    with pytest.raises(EventInvalid) as caught:
        parse_event(obj, now=NOW)
    summary = str(caught.value)
    assert "\n" not in summary
    assert "token: must match" in summary and "surprise: is not a known field" in summary


@pytest.mark.parametrize(
    "line",
    [
        b"",
        "   ",
        "{",
        '{"event": "client", "id": "a",}',
        "[1, 2]",
        '"client"',
        "null",
        '{"event": "project", "id": NaN, "title": "x"}',
        '{"event": "project", "id": Infinity, "title": "x"}',
        '{"event": "project", "id": 1, "id": 2, "title": "x"}',
        b'{"event": "client", "id": "\xff"}',
        "[" * 100_000,
        "1" * 5000,
    ],
)
def test_bad_lines_are_reported_under_line(line: str | bytes) -> None:
    with pytest.raises(EventInvalid) as caught:
        parse_line(line, now=NOW)
    assert list(caught.value.errors) == ["line"]


@pytest.mark.parametrize(
    ("line", "byte"),
    [
        (b'{"event": "client", "id": "a", "name": "\xff"}', 41),
        (b"\xc3", 1),  # a character cut short
        ('{"event": "client", "id": "a", "name": "a"}'.encode("utf-16"), 1),
    ],
)
def test_a_line_that_is_not_utf8_says_so_and_where(line: bytes, byte: int) -> None:
    with pytest.raises(EventInvalid) as caught:
        parse_line(line, now=NOW)
    assert caught.value.errors == {"line": [f"is not valid UTF-8 text (byte {byte} of the line)"]}


def test_a_byte_order_mark_is_ignored() -> None:
    line = '\ufeff{"event": "client", "id": "a", "name": "A"}'.encode()
    assert parse_line(line, now=NOW) == parse_line(line[3:], now=NOW)


def test_float_overflow_is_not_an_integer() -> None:
    with pytest.raises(EventInvalid) as caught:
        parse_line('{"event": "project", "id": 1e400, "title": "x"}', now=NOW)
    assert caught.value.errors == {"id": ["must be an integer"]}


# --- merges ---------------------------------------------------------------------------------


def test_merge_client_creates_with_defaults_and_requires_a_name() -> None:
    created = merge_client(None, ClientEvent("a", "A", None, None))
    assert created == Client("a", "A", has_pool=False, statistics_private=False)
    with pytest.raises(BookingRejected) as caught:
        merge_client(None, ClientEvent("a", None, True, None))
    assert caught.value.field == "name"


def test_merge_client_changes_only_named_fields() -> None:
    existing = Client("a", "A", has_pool=True, statistics_private=False)
    assert merge_client(existing, ClientEvent("a", None, None, True)) == Client(
        "a", "A", has_pool=True, statistics_private=True
    )
    assert merge_client(existing, ClientEvent("a", "B", False, None)) == Client("a", "B")
    assert merge_client(existing, ClientEvent("a", None, None, None)) == existing


def test_merge_project() -> None:
    with pytest.raises(BookingRejected) as caught:
        merge_project(None, ProjectEvent(1, None, True, None))
    assert caught.value.field == "title"
    created = merge_project(None, ProjectEvent(1, "P", None, None))
    assert created == Project(1, "P", closed=False, donations_prohibited=False)
    closed = merge_project(created, ProjectEvent(1, None, True, None))
    assert closed == Project(1, "P", closed=True)
    assert merge_project(closed, ProjectEvent(1, "Q", None, True)) == Project(1, "Q", True, True)


@pytest.mark.parametrize(
    ("event", "field"),
    [
        (NeedEvent(5, None, "N", 100), "project_id"),
        (NeedEvent(5, 1, None, 100), "title"),
        (NeedEvent(5, 1, "N", None), "requested_amount_in_cents"),
    ],
)
def test_merge_need_requires_fields_on_creation(event: NeedEvent, field: str) -> None:
    with pytest.raises(BookingRejected) as caught:
        merge_need(None, event)
    assert caught.value.field == field


def test_merge_need_updates() -> None:
    need = merge_need(None, NeedEvent(5, 1, "N", 100))
    assert need == Need(5, 1, "N", 100)
    assert merge_need(need, NeedEvent(5, None, None, 250)) == Need(5, 1, "N", 250)
    assert merge_need(need, NeedEvent(5, 2, "M", None)) == Need(5, 2, "M", 100)


@pytest.mark.parametrize(
    ("event", "field"),
    [
        (MatchingFundEvent(2, None, "F", 100, 10, None, None), "client_id"),
        (MatchingFundEvent(2, "a", "F", None, 10, None, None), "provided_amount_in_cents"),
        (MatchingFundEvent(2, "a", "F", 100, None, None, None), "maximum_matching_amount_in_cents"),
    ],
)
def test_merge_matching_fund_requires_fields_on_creation(
    event: MatchingFundEvent, field: str
) -> None:
    with pytest.raises(BookingRejected) as caught:
        merge_matching_fund(None, event)
    assert caught.value.field == field


def test_merge_matching_fund_defaults_and_updates() -> None:
    fund = merge_matching_fund(None, MatchingFundEvent(2, "a", None, 0, 10, None, None))
    assert fund == MatchingFund(2, "a", "Matching fund 2", 0, 10, "activated", frozenset())
    updated = merge_matching_fund(
        fund, MatchingFundEvent(2, None, "F", 100, None, "closed", frozenset({1}))
    )
    assert updated == MatchingFund(2, "a", "F", 100, 10, "closed", frozenset({1}))
    assert merge_matching_fund(updated, MatchingFundEvent(2, *[None] * 6)) == updated


def test_a_parsed_spec_file_merges_into_reference_data() -> None:
    client = parse_line(DOCUMENTED_EXAMPLES[0][0], now=NOW)
    assert isinstance(client, ClientEvent)
    assert merge_client(None, client) == Client("volksfreund", "Volksfreund", has_pool=True)
    fund = parse_line(DOCUMENTED_EXAMPLES[4][0], now=NOW)
    assert isinstance(fund, MatchingFundEvent)
    assert merge_matching_fund(None, fund).matches(1114)


# --- properties -----------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.sampled_from(["client", "project", "pool", "volksfreund", "2015-04-07T10:00:00Z"])
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)
FIELD_NAMES = sorted({key for obj in VALID.values() for key in obj} | {"type"})
event_like = st.builds(
    lambda kind, fields: {**fields, "event": kind},
    st.sampled_from(sorted(VALID)),
    st.dictionaries(st.sampled_from(FIELD_NAMES), json_values, max_size=8),
)
mutated_valid = st.builds(
    lambda kind, changes: {**VALID[kind], **changes},
    st.sampled_from(sorted(VALID)),
    st.dictionaries(st.sampled_from(FIELD_NAMES), json_values, max_size=2),
)


def parses_or_is_invalid(line: str | bytes) -> None:
    try:
        parse_line(line, now=NOW)
    except EventInvalid as invalid:
        assert invalid.errors and all(invalid.errors.values())
        str(invalid)


@given(st.text() | st.binary())
def test_arbitrary_text_never_raises_anything_but_event_invalid(line: str | bytes) -> None:
    parses_or_is_invalid(line)


@given(json_values | event_like | mutated_valid)
@settings(max_examples=300)
def test_arbitrary_json_never_raises_anything_but_event_invalid(value: object) -> None:
    parses_or_is_invalid(json.dumps(value))


@given(mutated_valid)
def test_parsed_values_respect_the_field_rules(obj: dict[str, Any]) -> None:
    try:
        event = parse_event(obj, now=NOW)
    except EventInvalid:
        return
    if isinstance(event, DonationEvent | ForwardingEvent):
        donation = event.donation if isinstance(event, DonationEvent) else event.forwarding
        assert 1 <= donation.amount_in_cents <= 10**11
        assert donation.created_at.tzinfo is not None
        assert (donation.project_id is None) != (donation.pool_client_id is None)
        assert donation.channel is not Channel.MATCHING


@given(st.datetimes(timezones=st.just(timezone(timedelta(hours=-3)))))
def test_created_at_round_trips_any_offset(moment: datetime) -> None:
    obj = with_fields("revocation", created_at=moment.isoformat())
    try:
        event = parse_event(obj, now=NOW)
    except EventInvalid as invalid:  # only instants outside datetime's range in UTC
        assert invalid.errors == {"created_at": ["is out of range"]}
        return
    assert isinstance(event, RevocationEvent)
    assert event.created_at == moment
