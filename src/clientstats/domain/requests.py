"""Donation pledges and forwarding requests a client sends: validation and booking.

Validation (by the field rules of request_fields) returns problems as language-neutral codes;
the API words them per locale.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from clientstats.domain.events import DonationEvent, ForwardingEvent
from clientstats.domain.ledger import Channel, Client, Donation, FailureCode, Project
from clientstats.domain.request_fields import FORWARDING, PLEDGE, check_body
from clientstats.domain.request_fields import Errors as Errors
from clientstats.domain.request_fields import Problem as Problem


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


def validate_pledge(body: Mapping[str, object], is_country: Callable[[str], bool]) -> Errors:
    """Every problem of a pledge body; empty when it is valid."""
    return check_body(PLEDGE, body, is_country)


def validate_forwarding(body: Mapping[str, object]) -> Errors:
    """Every problem of a forwarding request body; empty when it is valid."""
    return check_body(FORWARDING, body, lambda code: False)


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
    """Why a pledge cannot be booked at all: only a missing pool to fall back to."""
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
