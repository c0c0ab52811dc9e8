"""Donation pledges and forwarding requests a client sends (SPEC §5): validation and booking.

Validation returns problems as language-neutral codes; the API words them per locale.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from clientstats.domain.events import DonationEvent, ForwardingEvent
from clientstats.domain.fields import REFERENCE
from clientstats.domain.ledger import Channel, Client, Donation, FailureCode, Project

MAX_PLEDGE_CENTS = 1_000_000
MAX_FORWARDING_CENTS = 100_000_000_000
EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}")
ADDRESS_FIELDS = ("first_name", "last_name", "email", "street", "city", "zip", "country_code")
TEXT_LIMITS = {"tracking_via": 200, "message": 2000, "email": 254, "zip": 16, "country_code": 2}
DEFAULT_TEXT_LIMIT = 200


class RequestKind(StrEnum):
    """The two kinds of write a client makes."""

    PLEDGE = "pledge"
    FORWARDING = "forwarding"


class RequestState(StrEnum):
    """Where a request is in its processing."""

    PENDING = "pending"
    CONFIRMED = "confirmed"
    FAILED = "failed"


REFERENCE_TAKEN = "client_reference_taken"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with one field, as a code the API words in the request's language."""

    code: str
    params: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ClientRequest:
    """A validated pledge or forwarding request, before it is stored."""

    kind: RequestKind
    client_id: str
    client_reference: str
    amount_in_cents: int
    project_id: int | None  # None: a pledge to the client's pool
    details: Mapping[str, str | int | None]


@dataclass(frozen=True, slots=True)
class StoredRequest:
    """A request as stored, with its processing state."""

    id: int
    kind: RequestKind
    client_id: str
    client_reference: str
    amount_in_cents: int
    project_id: int | None
    tracking_via: str | None
    state: RequestState
    created_at: datetime
    updated_at: datetime
    confirmed_at: datetime | None = None
    failed_at: datetime | None = None
    failure_code: str | None = None
    details: Mapping[str, str | int | None] = field(default_factory=dict)


Errors = dict[str, list[Problem]]


def _integer(value: object, low: int, high: int) -> Problem | None:
    if not isinstance(value, int) or isinstance(value, bool):
        return Problem("not_an_integer")
    if not low <= value <= high:
        return Problem("out_of_range", {"min": low, "max": high})
    return None


def _text(name: str, value: object) -> Problem | None:
    if not isinstance(value, str):
        return Problem("not_a_string")
    if not value.strip():
        return Problem("blank")
    limit = TEXT_LIMITS.get(name, DEFAULT_TEXT_LIMIT)
    if len(value) > limit:
        return Problem("too_long", {"max": limit})
    if any(ord(c) < 32 for c in value):
        return Problem("control_characters")
    return None


def _check_address(
    body: Mapping[str, object], errors: Errors, is_country: Callable[[str], bool]
) -> None:
    required = body.get("validate_address", True) is not False
    for name in ADDRESS_FIELDS:
        value = body.get(name)
        if value is None:
            if required:
                errors.setdefault(name, []).append(Problem("required"))
            continue
        problem = _text(name, value)
        if problem is None and name == "email" and not EMAIL.fullmatch(str(value)):
            problem = Problem("invalid_email")
        if problem is None and name == "country_code" and not is_country(str(value)):
            problem = Problem("invalid_country")
        if problem is not None:
            errors.setdefault(name, []).append(problem)


def _check_common(body: Mapping[str, object], errors: Errors, *, max_cents: int) -> None:
    amount = body.get("amount_in_cents")
    problem = Problem("required") if amount is None else _integer(amount, 1, max_cents)
    if problem is not None:
        errors.setdefault("amount_in_cents", []).append(problem)
    reference = body.get("client_reference")
    if reference is None:
        errors.setdefault("client_reference", []).append(Problem("required"))
    elif not isinstance(reference, str) or not REFERENCE.fullmatch(reference):
        errors.setdefault("client_reference", []).append(Problem("invalid_reference"))
    tracking = body.get("tracking_via")
    if tracking is not None and (problem := _text("tracking_via", tracking)) is not None:
        errors.setdefault("tracking_via", []).append(problem)


def _check_unknown(body: Mapping[str, object], known: frozenset[str], errors: Errors) -> None:
    for name in body:
        if name not in known:
            errors.setdefault(name, []).append(Problem("unknown_field"))


PLEDGE_FIELDS = frozenset(
    {
        "amount_in_cents",
        "client_reference",
        "validate_address",
        "tracking_via",
        "earmark",
        "message",
        *ADDRESS_FIELDS,
    }
)
FORWARDING_FIELDS = frozenset({"amount_in_cents", "client_reference", "tracking_via"})


def validate_pledge(body: Mapping[str, object], is_country: Callable[[str], bool]) -> Errors:
    """Every problem of a pledge body (SPEC §5.2); empty when it is valid."""
    errors: Errors = {}
    _check_unknown(body, PLEDGE_FIELDS, errors)
    _check_common(body, errors, max_cents=MAX_PLEDGE_CENTS)
    if "validate_address" in body and not isinstance(body["validate_address"], bool):
        errors.setdefault("validate_address", []).append(Problem("not_a_boolean"))
    _check_address(body, errors, is_country)
    earmark = body.get("earmark")
    if earmark is not None and (problem := _integer(earmark, 1, 2**63 - 1)) is not None:
        errors.setdefault("earmark", []).append(problem)
    message = body.get("message")
    if message is not None and (problem := _text("message", message)) is not None:
        errors.setdefault("message", []).append(problem)
    return errors


def validate_forwarding(body: Mapping[str, object]) -> Errors:
    """Every problem of a forwarding request body (SPEC §5.3); empty when it is valid."""
    errors: Errors = {}
    _check_unknown(body, FORWARDING_FIELDS, errors)
    _check_common(body, errors, max_cents=MAX_FORWARDING_CENTS)
    return errors


# A field left out means its default; a repeat that spells the default out is no other request.
_DEFAULTS: Mapping[str, object] = {"validate_address": True}


def _meaning(
    kind: RequestKind, project_id: int | None, amount: int, details: Mapping[str, object]
) -> str:
    """What a request asks for, written one way: key order, nulls and defaults left out."""
    fields = {
        name: value
        for name, value in details.items()
        if value is not None and not (name in _DEFAULTS and _DEFAULTS[name] is value)
    }
    # JSON keeps true apart from 1, which Python's == would not.
    return json.dumps([kind.value, project_id, amount, fields], sort_keys=True)


def is_same_request(stored: StoredRequest, request: ClientRequest) -> bool:
    """Whether a request repeats the stored one with its client reference (a retry, not a reuse).

    Every field counts, the target (project or pool) too; values compare exactly as sent.
    """
    return _meaning(
        stored.kind, stored.project_id, stored.amount_in_cents, stored.details
    ) == _meaning(request.kind, request.project_id, request.amount_in_cents, request.details)


def request_token(kind: RequestKind, request_id: int) -> str:
    """The ledger token of a request's booking; the colon keeps it apart from imported tokens."""
    return f"{kind.value}:{request_id}"


def pledge_failure(client: Client, project: Project | None) -> FailureCode | None:
    """Why a pledge cannot be booked at all: only a missing pool to fall back to (SPEC §5.2)."""
    needs_pool = project is None or not project.accepts_donations
    return FailureCode.POOL_MISSING if needs_pool and not client.has_pool else None


def booking_event(request: StoredRequest) -> DonationEvent | ForwardingEvent:
    """The ledger event that books a request."""
    entry = Donation(
        token=request_token(request.kind, request.id),
        channel=Channel.CLIENT if request.kind is RequestKind.PLEDGE else Channel.FORWARDING,
        amount_in_cents=request.amount_in_cents,
        created_at=request.created_at,
        project_id=request.project_id,
        pool_client_id=request.client_id if request.project_id is None else None,
        client_id=request.client_id,
        client_reference=request.client_reference,
        tracking_via=request.tracking_via,
    )
    if request.kind is RequestKind.PLEDGE:
        return DonationEvent(entry, created_at_given=True)
    return ForwardingEvent(entry, created_at_given=True)
