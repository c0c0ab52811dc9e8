"""Reading a client's statistics, uncached: the CLI and the caches' misses."""

from __future__ import annotations

from sqlalchemy import Engine

from clientstats.errors import NotFound, ValidationFailed
from clientstats.storage.database import read_transaction
from clientstats.storage.statistics_queries import ClientSnapshot, client_snapshot


def normalize_permalink(permalink: str) -> str:
    """Permalinks are matched case-insensitively; one that is not UTF-8 names no client."""
    try:
        # A command-line argument that is not UTF-8 arrives with surrogate escapes, which
        # no database driver can send.
        permalink.encode()
    except UnicodeEncodeError as exc:
        raise ValidationFailed("the client id is not UTF-8") from exc
    return permalink.lower()


def get_snapshot_or_raise(engine: Engine, permalink: str) -> ClientSnapshot:
    """A client's current figures; NotFound for an unknown client."""
    permalink = normalize_permalink(permalink)
    with read_transaction(engine) as conn:
        snapshot = client_snapshot(conn, permalink)
    if snapshot is None:
        raise NotFound(f"Couldn't find Client with permalink={permalink}")
    return snapshot
