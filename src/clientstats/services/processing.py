"""Booking accepted requests: claim a batch, book each, record outcomes, in one transaction.

A worker killed at any instant loses nothing and books nothing twice: the claim, the
bookings and the new request states commit together or not at all.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine

from clientstats.domain.booking import Outcome, apply_event
from clientstats.domain.ledger import BookingRejected, FailureCode
from clientstats.domain.requests import (
    REFERENCE_TAKEN,
    RequestKind,
    StoredRequest,
    booking_event,
    pledge_failure,
    request_token,
)
from clientstats.observability.tallies import BOOKINGS
from clientstats.storage import requests_store
from clientstats.storage.database import read_transaction, write_transaction
from clientstats.storage.sql_book import SqlBook

DEFAULT_BATCH = 100


def _book(book: SqlBook, request: StoredRequest) -> str | None:
    """Book one request; the failure code if it moved no money."""
    client = book.get_client(request.client_id)
    if client is None:
        return FailureCode.POOL_MISSING.value
    if request.kind is RequestKind.PLEDGE:
        project = None if request.project_id is None else book.get_project(request.project_id)
        failure = pledge_failure(client, project)
        if failure is not None:
            return failure.value
    try:
        outcome = apply_event(book, booking_event(request))
    except BookingRejected:
        return REFERENCE_TAKEN
    if outcome is Outcome.FAILED:
        booked = book.get_donation(request_token(request.kind, request.id))
        assert booked is not None and booked.failure_code is not None
        return booked.failure_code.value
    return None


def process_batch(engine: Engine, *, limit: int = DEFAULT_BATCH) -> int:
    """Book up to `limit` pending requests; returns how many were processed."""
    with read_transaction(engine) as conn:
        # An idle worker asks often: a plain read does not take SQLite's write lock.
        if not requests_store.has_pending(conn):
            return 0
    with write_transaction(engine) as conn:
        claimed = requests_store.claim_pending(conn, limit=limit)
        if not claimed:
            return 0
        # Read the clock only now: a request stored while we waited for the (SQLite) write
        # lock must not be confirmed before it was created.
        now = datetime.now(UTC)
        book = SqlBook(conn, now=now)
        book.prefetch(tokens=[request_token(r.kind, r.id) for r in claimed], references=())
        outcomes = [(request, _book(book, request)) for request in claimed]
        book.flush()
        for request, failure in outcomes:
            token = request_token(request.kind, request.id)
            booked = book.get_donation(token)
            requests_store.finish(
                conn,
                request,
                failure_code=failure,
                donation_token=token if booked is not None else None,
                now=now,
            )
    for request, failure in outcomes:  # counted once committed
        BOOKINGS.add(request.kind.value, failure or "confirmed")
    return len(claimed)
