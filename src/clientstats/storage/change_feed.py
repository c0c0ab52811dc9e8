"""The change feed: which clients' figures changed, in commit order, since a position.

A writer that may change figures calls `record_change` last in its transaction. It takes
the next sequence number from the single `change_feed` row, which stays locked until the
transaction commits, so no later number can commit first: a reader that has seen every
change up to `seq` finds all later ones by `changed_seq > seq`. Every change also gets a
random stamp, which becomes the version token of the clients it touched, so a token never
repeats, not even after the database is restored from a backup.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Select, bindparam, delete, insert, select, update

from clientstats.storage.tables import change_feed, change_log, client_totals, clients

# How many past positions a reader can resume from; a reader further behind reads everything.
LOG_KEPT = 10_000
_PRUNE_EVERY = 1_000
_IN_CHUNK = 500


@dataclass(frozen=True, slots=True)
class Position:
    """A point in the change history: the last change's sequence number and stamp."""

    seq: int
    stamp: int


@dataclass(frozen=True, slots=True)
class ClientVersion:
    """What caches need to know of a client to decide whether an entry is still current."""

    version: int  # the random token of the client's last change
    changed_seq: int
    statistics_private: bool


_NEXT = (
    update(change_feed)
    .where(change_feed.c.id == 1)
    .values(seq=change_feed.c.seq + 1, stamp=bindparam("stamp"))
    .returning(change_feed.c.seq)
)
_HEAD = select(change_feed.c.seq, change_feed.c.stamp).where(change_feed.c.id == 1)
_STAMP_AT = select(change_log.c.stamp).where(change_log.c.seq == bindparam("seq"))
_VERSIONS = select(
    client_totals.c.client_id,
    client_totals.c.version,
    client_totals.c.changed_seq,
    clients.c.statistics_private,
).join(clients, clients.c.permalink == client_totals.c.client_id)
_CHANGED_SINCE = _VERSIONS.where(client_totals.c.changed_seq > bindparam("seq"))


def _chunks(values: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(values), _IN_CHUNK):
        yield values[start : start + _IN_CHUNK]


def record_change(conn: Connection, client_ids: Iterable[str]) -> Position | None:
    """Give the clients a new version in this transaction; None if there are none."""
    wanted = sorted(set(client_ids))
    if not wanted:
        return None
    # Lock the clients' rows before the feed row: a transaction that holds the feed row
    # then waits for nobody, so the feed cannot take part in a deadlock.
    for chunk in _chunks(wanted):
        conn.execute(
            select(client_totals.c.client_id)
            .where(client_totals.c.client_id.in_(chunk))
            .order_by(client_totals.c.client_id)
            .with_for_update()
        ).all()
    stamp = secrets.randbits(63)
    seq = int(conn.execute(_NEXT, {"stamp": stamp}).scalar_one())
    conn.execute(insert(change_log).values(seq=seq, stamp=stamp))
    if seq % _PRUNE_EVERY == 0:
        conn.execute(delete(change_log).where(change_log.c.seq <= seq - LOG_KEPT))
    for chunk in _chunks(wanted):
        conn.execute(
            update(client_totals)
            .where(client_totals.c.client_id.in_(chunk))
            .values(version=stamp, changed_seq=seq)
        )
    return Position(seq, stamp)


def head(conn: Connection) -> Position:
    """The position of the last committed change."""
    row = conn.execute(_HEAD).one()
    return Position(int(row.seq), int(row.stamp))


def continues(conn: Connection, position: Position) -> bool:
    """Whether `position` is still part of the history (not pruned, not replaced by a restore)."""
    stamp = conn.execute(_STAMP_AT, {"seq": position.seq}).scalar()
    return stamp is not None and int(stamp) == position.stamp


def _versions(
    conn: Connection, query: Select[Any], params: dict[str, int]
) -> dict[str, ClientVersion]:
    return {
        row.client_id: ClientVersion(
            int(row.version), int(row.changed_seq), bool(row.statistics_private)
        )
        for row in conn.execute(query, params)
    }


def all_versions(conn: Connection) -> dict[str, ClientVersion]:
    """Every client's version: O(clients), for a reader that starts or lost its place."""
    return _versions(conn, _VERSIONS, {})


def changed_since(conn: Connection, seq: int) -> dict[str, ClientVersion]:
    """The versions of the clients changed after `seq`: O(changes)."""
    return _versions(conn, _CHANGED_SINCE, {"seq": seq})
