"""Stored client requests (pledges, forwarding requests) and client API credentials."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from clientstats.domain.requests import ClientRequest, RequestKind, RequestState, StoredRequest
from clientstats.storage.change_feed import record_change
from clientstats.storage.tables import client_requests, clients

_r = client_requests.c

# Built once: building them per request cost more than running them (as in statistics_queries).
_INSERT_NEW = {
    name: dialect_insert(client_requests)
    .on_conflict_do_nothing(index_elements=["client_id", "client_reference"])
    .returning(_r.id)
    for name, dialect_insert in (("postgresql", pg_insert), ("sqlite", sqlite_insert))
}
_BY_REFERENCE = select(client_requests).where(
    _r.client_id == bindparam("client_id"), _r.client_reference == bindparam("reference")
)


def _stored(row: Row[Any]) -> StoredRequest:
    return StoredRequest(
        id=int(row.id),
        kind=RequestKind(row.kind),
        client_id=row.client_id,
        client_reference=row.client_reference,
        amount_in_cents=int(row.amount_in_cents),
        project_id=row.project_id,
        tracking_via=row.tracking_via,
        state=RequestState(row.state),
        created_at=row.created_at,
        updated_at=row.updated_at,
        confirmed_at=row.confirmed_at,
        failed_at=row.failed_at,
        failure_code=row.failure_code,
        details=json.loads(row.details),
    )


def accept(
    conn: Connection, request: ClientRequest, *, now: datetime
) -> tuple[StoredRequest, bool]:
    """Store a request unless its client reference is taken; (the stored request, whether new).

    The unique constraint decides, so concurrent repeats store one request between them.
    """
    values = {
        "kind": request.kind.value,
        "client_id": request.client_id,
        "client_reference": request.client_reference,
        "project_id": request.project_id,
        "amount_in_cents": request.amount_in_cents,
        "tracking_via": request.details.get("tracking_via"),
        "details": json.dumps(dict(request.details), ensure_ascii=False),
        "state": RequestState.PENDING.value,
        "created_at": now,
        "updated_at": now,
    }
    new_id = conn.execute(_INSERT_NEW[conn.dialect.name], values).scalar()
    existing = by_reference(conn, request.client_id, request.client_reference)
    assert existing is not None
    return existing, new_id is not None


def by_reference(conn: Connection, client_id: str, reference: str) -> StoredRequest | None:
    """A client's request by its client reference."""
    row = conn.execute(_BY_REFERENCE, {"client_id": client_id, "reference": reference}).first()
    return None if row is None else _stored(row)


def get_for_client(
    conn: Connection, *, client_id: str, kind: RequestKind, request_id: int
) -> StoredRequest | None:
    """One request of a client; None for another client's or another kind's."""
    row = conn.execute(
        select(client_requests).where(
            _r.id == request_id, _r.client_id == client_id, _r.kind == kind.value
        )
    ).first()
    return None if row is None else _stored(row)


def claim_pending(conn: Connection, *, limit: int) -> list[StoredRequest]:
    """The oldest pending requests, locked for this transaction (skipped by other workers)."""
    query = (
        select(client_requests)
        .where(_r.state == RequestState.PENDING.value)
        .order_by(_r.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [_stored(row) for row in conn.execute(query)]


def finish(
    conn: Connection,
    request: StoredRequest,
    *,
    failure_code: str | None,
    donation_token: str | None,
    now: datetime,
) -> None:
    """Record the outcome of processing a request."""
    values: dict[str, Any] = {"updated_at": now, "failure_code": failure_code}
    if failure_code is None:
        values.update(state=RequestState.CONFIRMED.value, confirmed_at=now)
    else:
        values.update(state=RequestState.FAILED.value, failed_at=now)
    values["donation_token"] = donation_token
    conn.execute(update(client_requests).where(_r.id == request.id).values(values))


def pledges_of(conn: Connection, client_id: str) -> list[StoredRequest]:
    """Every pledge of a client, oldest first."""
    query = (
        select(client_requests)
        .where(_r.client_id == client_id, _r.kind == RequestKind.PLEDGE.value)
        .order_by(_r.id)
    )
    return [_stored(row) for row in conn.execute(query)]


def has_pending(conn: Connection) -> bool:
    """Whether any request waits for a worker."""
    query = select(_r.id).where(_r.state == RequestState.PENDING.value).limit(1)
    return conn.execute(query).first() is not None


_PENDING_COUNT = select(func.count()).where(_r.state == RequestState.PENDING.value)
# The oldest by id, which the (state, id) index finds without a scan.
_OLDEST_PENDING = (
    select(_r.created_at).where(_r.state == RequestState.PENDING.value).order_by(_r.id).limit(1)
)


def pending_summary(conn: Connection) -> tuple[int, datetime | None]:
    """How many requests wait for a worker, and when the oldest of them was stored."""
    count = int(conn.execute(_PENDING_COUNT).scalar_one())
    oldest = conn.execute(_OLDEST_PENDING).scalar() if count else None
    return count, oldest


def set_credentials(conn: Connection, *, client_id: str, username: str, password_hash: str) -> bool:
    """Replace a client's API credentials; False for an unknown client.

    The client gets a new version in the change feed in the same transaction: caches that
    remember which credentials opened its private answers drop them in every process.
    """
    result = conn.execute(
        update(clients)
        .where(clients.c.permalink == client_id)
        .values(api_username=username, api_password_hash=password_hash)
    )
    if result.rowcount != 1:
        return False
    record_change(conn, [client_id])
    return True


def credentials_of(conn: Connection, username: str) -> tuple[str, str] | None:
    """(client permalink, password hash) for an API username."""
    row = conn.execute(
        select(clients.c.permalink, clients.c.api_password_hash).where(
            clients.c.api_username == username
        )
    ).first()
    if row is None or row.api_password_hash is None:
        return None
    return row.permalink, row.api_password_hash


def client_exists(conn: Connection, permalink: str) -> bool:
    """Whether a client with this permalink exists."""
    query = select(clients.c.permalink).where(clients.c.permalink == permalink)
    return conn.execute(query).first() is not None
