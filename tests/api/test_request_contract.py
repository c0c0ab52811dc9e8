"""The published request body schemas and the server's checks agree on every body.

Bodies are generated from /openapi.json by schemathesis (valid ones, invalid ones) and then
mutated with awkward values; each is judged by the server's own reading and checks, by
`jsonschema` (patterns in Python's dialect) and by `jsonschema_rs` (patterns in ECMA-262, as
JSON Schema means them). All three must give the same verdict on every body.
"""

from __future__ import annotations

import functools
import json
import string
from collections.abc import Callable
from typing import Any

import jsonschema
import jsonschema_rs
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from clientstats.api.json_body import read_json
from clientstats.api.openapi import openapi_document
from clientstats.domain.request_fields import FORWARDING, PLEDGE, Field, Kind
from clientstats.domain.requests import validate_forwarding, validate_pledge
from clientstats.services.client_requests import is_country

DOCUMENT = openapi_document()
SCHEMAS: dict[str, Any] = DOCUMENT["components"]["schemas"]
BASE = "/{locale}/api_v4/clients/{client_id}"
OPERATIONS = {
    "DonationPledge": f"{BASE}/pool/donation_pledges.json",
    "ForwardingRequest": f"{BASE}/projects/{{project_id}}/forwarding_requests.json",
}
CHECKS: dict[str, Callable[[dict[str, Any]], object]] = {
    "DonationPledge": lambda body: validate_pledge(body, is_country),
    "ForwardingRequest": validate_forwarding,
}
RULES = {"DonationPledge": PLEDGE, "ForwardingRequest": FORWARDING}
PYTHON = {name: jsonschema.Draft202012Validator(SCHEMAS[name]) for name in CHECKS}
ECMA = {name: jsonschema_rs.validator_for(SCHEMAS[name]) for name in CHECKS}
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))


@functools.cache
def generated(kind: str, mode: GenerationMode) -> st.SearchStrategy[Any]:
    """Request bodies as schemathesis generates them from the published document."""
    operation = schemathesis.openapi.from_dict(DOCUMENT)[OPERATIONS[kind]]["POST"]
    return operation.as_strategy(generation_mode=mode).map(lambda case: case.body)


def server_accepts(kind: str, body: dict[str, Any]) -> bool:
    """What the server decides about this body as JSON text: no problems found."""
    parsed = read_json(json.dumps(body).encode())
    assert isinstance(parsed, dict)
    return not CHECKS[kind](parsed)


def verdicts(kind: str, body: dict[str, Any]) -> dict[str, bool]:
    return {
        "server": server_accepts(kind, body),
        "jsonschema": PYTHON[kind].is_valid(body),
        "jsonschema_rs": ECMA[kind].is_valid(body),
    }


# --- awkward values ---------------------------------------------------------------------

TRICKY_CHARACTERS = (
    "\n\t\r\x00\x1f\x7f\x85\x9f"  # control characters, some of them white space
    " \u00a0\u1680\u2000\u2028\u202f\u3000"  # white space that is not control
    "\u200b\ufeff\u180e"  # invisible, but not white space
    "\u0131\u017f\u212a"  # lower-case to ASCII letters under Unicode case rules
    "aZ09_-@.é😀"
)


def tricky_text() -> st.SearchStrategy[str]:
    letters = st.sampled_from(TRICKY_CHARACTERS)
    near_a_limit = st.sampled_from((1, 2, 16, 17, 64, 65, 128, 129, 200, 201, 254, 255, 2000, 2001))
    return st.one_of(
        st.text(max_size=20),
        st.text(letters, max_size=8),
        st.builds(lambda c, n: c * n, st.sampled_from("a😀 "), near_a_limit),
        st.builds(
            lambda a, b, c: f"{a}@{b}.{c}",
            st.text(letters, max_size=3),
            st.text(letters, max_size=3),
            st.text(letters, max_size=3),
        ),
        st.text(
            st.sampled_from(string.ascii_letters + "\u0131\u017f\u212a"), min_size=2, max_size=2
        ),
        st.builds(lambda s, end: s + end, st.sampled_from(("abc", "DE", "a@b.cd")), letters),
    )


def tricky_number(rules: tuple[Field, ...]) -> st.SearchStrategy[Any]:
    bounds = {b for r in rules if r.kind is Kind.INTEGER for b in (r.minimum, r.maximum)}
    edges = sorted({b + d for b in bounds for d in (-1, 0, 1)} | {2**63, 2**64, 10**23})
    return st.one_of(
        st.sampled_from(edges),
        st.sampled_from(edges).map(float),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
    )


def tricky_value(rules: tuple[Field, ...]) -> st.SearchStrategy[Any]:
    scalars = st.one_of(st.none(), st.booleans(), tricky_number(rules), tricky_text())
    return st.one_of(
        scalars,
        st.lists(scalars, max_size=2),
        st.dictionaries(st.text(max_size=3), scalars, max_size=2),
    )


@st.composite
def mutated(draw: st.DrawFn, kind: str) -> dict[str, Any]:
    """A valid body with a few fields set to awkward values, removed, or added."""
    body: dict[str, Any] = draw(generated(kind, GenerationMode.POSITIVE))
    names = [r.name for r in RULES[kind]]
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from([*names, "unknown"]))
        if draw(st.booleans()) and name in body:
            del body[name]
        else:
            body[name] = draw(tricky_value(RULES[kind]))
    return body


# --- the properties -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(CHECKS))
@FUZZ
@given(data=st.data())
def test_every_body_the_schema_generates_is_accepted(kind: str, data: st.DataObject) -> None:
    body = data.draw(generated(kind, GenerationMode.POSITIVE))
    assert verdicts(kind, body) == {"server": True, "jsonschema": True, "jsonschema_rs": True}


@pytest.mark.parametrize("kind", sorted(CHECKS))
@FUZZ
@given(data=st.data())
def test_the_schema_and_the_server_agree_on_generated_invalid_bodies(
    kind: str, data: st.DataObject
) -> None:
    """Most are invalid; some are valid (the mutation was elsewhere): judged alike either way."""
    body = data.draw(generated(kind, GenerationMode.NEGATIVE))
    if isinstance(body, dict):  # other bodies are not JSON objects: see the API tests
        found = verdicts(kind, body)
        assert len(set(found.values())) == 1, (body, found)


@pytest.mark.parametrize("kind", sorted(CHECKS))
@FUZZ
@given(data=st.data())
def test_the_schema_and_the_server_agree_on_awkward_bodies(kind: str, data: st.DataObject) -> None:
    body = data.draw(mutated(kind))
    found = verdicts(kind, body)
    assert len(set(found.values())) == 1, (body, found)


# --- worked examples: the disagreements this contract once had -----------------------------

ADDRESS = {
    "first_name": "Erika",
    "last_name": "Mustermann",
    "email": "erika@example.org",
    "street": "Hauptstr. 1",
    "city": "Trier",
    "zip": "54290",
    "country_code": "DE",
}
VALID = {"amount_in_cents": 500, "client_reference": "r-1", **ADDRESS}


@pytest.mark.parametrize(
    ("changes", "accepted"),
    [
        ({"message": ""}, False),
        ({"message": " \u3000 "}, False),
        ({"country_code": "AA"}, False),
        ({"country_code": "de"}, True),
        ({"country_code": "\u0131t"}, False),  # upper-cases to IT, but is no code
        ({"amount_in_cents": 5.0}, True),
        ({"amount_in_cents": 1e23}, False),
        ({"earmark": 2**63}, False),
        ({"tracking_via": "a\x00b"}, False),
        ({"tracking_via": "web\n"}, False),
        ({"client_reference": "r-1\n"}, False),
        ({"tracking_via": None, "message": None, "earmark": None}, True),
        ({"validate_address": None}, True),
        ({"first_name": None}, False),
        ({"validate_address": False, **dict.fromkeys(ADDRESS)}, True),
        ({"validate_address": False, "email": "not-an-address"}, False),
    ],
)
def test_worked_examples(changes: dict[str, Any], accepted: bool) -> None:
    found = verdicts("DonationPledge", {**VALID, **changes})
    assert found == dict.fromkeys(found, accepted)


def test_a_pool_pledge_without_an_address_is_invalid_by_the_schema_too() -> None:
    body = {"amount_in_cents": 500, "client_reference": "r-2"}
    assert verdicts("DonationPledge", body) == dict.fromkeys(
        verdicts("DonationPledge", body), False
    )
    body["validate_address"] = False
    assert set(verdicts("DonationPledge", body).values()) == {True}
