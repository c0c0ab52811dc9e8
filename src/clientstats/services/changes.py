"""What changed since this process last looked: the one freshness signal of every cache.

Reading from where the last read stopped costs one single-row query while nothing changed,
and O(changed clients) otherwise, whatever the number of clients. A reader that has no
place yet, or whose place is no longer part of the history (a restore, or it fell further
behind than the kept log), reads every client's version once and goes on from there.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from clientstats.storage import change_feed
from clientstats.storage.change_feed import ClientVersion, Position
from clientstats.storage.database import read_transaction


@dataclass(frozen=True, slots=True)
class Changes:
    """The clients whose figures may have changed, with their new versions."""

    versions: dict[str, ClientVersion]
    everything: bool  # versions holds every client: the reader (re)started from scratch


class ChangeReader:
    """Reads the change feed from where it left off; one per process."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.position: Position | None = None

    def read(self) -> Changes:
        """The changes committed since the last read (all versions on the first)."""
        with read_transaction(self.engine) as conn:
            now = change_feed.head(conn)
            last = self.position
            if last is not None and now == last:
                return Changes({}, everything=False)
            if last is not None and now.seq > last.seq and change_feed.continues(conn, last):
                changes = Changes(change_feed.changed_since(conn, last.seq), everything=False)
            else:
                changes = Changes(change_feed.all_versions(conn), everything=True)
        self.position = now
        return changes
