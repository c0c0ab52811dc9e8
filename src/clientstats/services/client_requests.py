"""Accepting pledges and forwarding requests and reading their state."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import pycountry
from sqlalchemy import Engine

from clientstats.domain.requests import (
    ClientRequest,
    Errors,
    RequestKind,
    StoredRequest,
    is_same_request,
    validate_forwarding,
    validate_pledge,
)
from clientstats.errors import NotFound
from clientstats.storage import requests_store
from clientstats.storage.database import read_transaction, write_transaction
from clientstats.storage.sql_book import SqlBook


class RequestInvalid(Exception):
    """A request body with problems per field, still to be worded in the caller's language."""

    def __init__(self, errors: Errors) -> None:
        super().__init__(", ".join(errors))
        self.errors = errors


class RequestConflict(Exception):
    """The client reference is taken by a different request: `stored`, which stays as it was."""

    def __init__(self, stored: StoredRequest) -> None:
        super().__init__(f"client_reference {stored.client_reference} is taken")
        self.stored = stored


@dataclass(frozen=True, slots=True)
class Accepted:
    """The outcome of accepting a request: the stored one, and whether this call stored it."""

    request: StoredRequest
    created: bool


def is_country(code: str) -> bool:
    """Whether `code` is an ISO 3166-1 alpha-2 country code."""
    return len(code) == 2 and pycountry.countries.get(alpha_2=code.upper()) is not None


def accept(
    engine: Engine,
    *,
    client_id: str,
    kind: RequestKind,
    project_id: int | None,
    body: Mapping[str, object],
) -> Accepted:
    """Validate and durably store a request; a repeated client reference stores nothing.

    A repeat of the stored request is accepted again (a retry); a different request under
    the same reference raises RequestConflict. The unique constraint decides which of
    concurrent senders stored first; every other one is compared with what it stored.
    """
    errors = (
        validate_pledge(body, is_country)
        if kind is RequestKind.PLEDGE
        else validate_forwarding(body)
    )
    if errors:
        raise RequestInvalid(errors)
    details = {k: v for k, v in body.items() if k not in ("amount_in_cents", "client_reference")}
    request = ClientRequest(
        kind=kind,
        client_id=client_id,
        client_reference=str(body["client_reference"]),
        amount_in_cents=int(body["amount_in_cents"]),  # type: ignore[call-overload]
        project_id=project_id,
        details=details,  # type: ignore[arg-type]
    )
    with write_transaction(engine) as conn:
        book = SqlBook(conn, now=datetime.now(UTC))
        # A project outside the client's set is as unknown to it as a missing one (and a
        # member project exists: the association refers to it). Only a retry of a request
        # accepted before its project left the set is answered as that request.
        if project_id is not None and not book.is_member(client_id, project_id):
            found = requests_store.by_reference(conn, client_id, request.client_reference)
            if found is None or not is_same_request(found, request):
                raise NotFound(f"Couldn't find Project with id={project_id}")
            stored, created = found, False
        else:
            stored, created = requests_store.accept(conn, request, now=datetime.now(UTC))
    # A reference is the key of one request: another request under it, even of the other
    # kind, is a conflict with the stored one.
    if stored.kind is not kind or (not created and not is_same_request(stored, request)):
        raise RequestConflict(stored)
    return Accepted(stored, created)


def get_or_raise(
    engine: Engine, *, client_id: str, kind: RequestKind, request_id: int
) -> StoredRequest:
    """A client's own request; NotFound for anything else."""
    with read_transaction(engine) as conn:
        found = requests_store.get_for_client(
            conn, client_id=client_id, kind=kind, request_id=request_id
        )
    if found is None:
        noun = "DonationPledge" if kind is RequestKind.PLEDGE else "ForwardingRequest"
        raise NotFound(f"Couldn't find {noun} with id={request_id}")
    return found


def pending_requests(engine: Engine, *, now: datetime) -> tuple[int, float]:
    """How many requests wait for a worker, and the age in seconds of the oldest (0 if none)."""
    with read_transaction(engine) as conn:
        count, oldest = requests_store.pending_summary(conn)
    if oldest is None:
        return count, 0.0
    return count, max(0.0, (now - oldest).total_seconds())
