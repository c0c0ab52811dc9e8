"""Locks that keep a booking and a revocation of the same token from passing each other.

A revocation that finds no donation is kept for it, and a donation that finds no kept
revocation is booked confirmed. On PostgreSQL two transactions can do both at once, each
blind to the other's uncommitted row, and the donation would stay confirmed for good. So a
writer first takes transaction-scoped advisory locks on its tokens: shared to book them
(bookings never wait for each other), exclusive to revoke them. Tokens share 64 stripes,
which bounds the locks a batch holds. SQLite has one writer at a time and needs none.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

from sqlalchemy import Connection, text

TOKEN_LOCKS = 1_668_052_852  # the first key of our advisory locks, so no other user's collide
STRIPES = 64

# unnest yields the sorted stripes in order: every writer locks in the same order, no deadlock.
_LOCK = text(
    "SELECT CASE WHEN u.exclusive"
    f" THEN pg_advisory_xact_lock({TOKEN_LOCKS}, u.stripe)"
    f" ELSE pg_advisory_xact_lock_shared({TOKEN_LOCKS}, u.stripe) END"
    " FROM unnest(CAST(:stripes AS integer[]), CAST(:exclusive AS boolean[]))"
    " AS u(stripe, exclusive)"
)


def _stripe(token: str) -> int:
    return zlib.crc32(token.encode()) % STRIPES


def lock_tokens(conn: Connection, *, booked: Iterable[str], revoked: Iterable[str]) -> None:
    """Hold until commit: shared locks on the tokens to book, exclusive ones on those to revoke."""
    if conn.dialect.name != "postgresql":
        return
    exclusive = {_stripe(token) for token in revoked}
    stripes = sorted(exclusive | {_stripe(token) for token in booked})
    if stripes:
        conn.execute(_LOCK, {"stripes": stripes, "exclusive": [s in exclusive for s in stripes]})
