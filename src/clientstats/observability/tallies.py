"""Plain in-process counters, bumped where things happen and exported by `metrics`.

Counting must cost next to nothing on the hot paths, so nothing here knows Prometheus:
a counter is an int in a dict. The exporter reads them every second and at each scrape.
Counters bumped from several threads take a lock; the HTTP ones live on the event loop.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

IMPORT_OUTCOMES = ("applied", "unchanged", "deferred", "failed", "rejected", "blank")


class Tally:
    """Monotonic counts by a tuple of label values; safe to bump from any thread."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, ...], int] = {}
        self._lock = threading.Lock()

    def add(self, *labels: str, amount: int = 1) -> None:
        """Count `amount` more under these label values."""
        with self._lock:
            self._counts[labels] = self._counts.get(labels, 0) + amount

    def snapshot(self) -> dict[tuple[str, ...], int]:
        """The counts so far."""
        with self._lock:
            return dict(self._counts)


# Bookings of client requests by the worker: (kind, outcome), outcome "confirmed" or the
# failure code.
BOOKINGS = Tally()
# Ledger event lines of admin uploads, by the outcome of the import summary.
IMPORT_LINES = Tally()
# Errors the database driver raised, by SQLAlchemy's exception class name.
DATABASE_ERRORS = Tally()
# Errors talking to Redis, by redis-py's exception class name.
REDIS_ERRORS = Tally()


def count_import(summary: Mapping[str, object]) -> None:
    """Count an import's lines by outcome, from its summary (once per call, not per line)."""
    for outcome in IMPORT_OUTCOMES:
        amount = summary.get(outcome)
        if isinstance(amount, int) and amount:
            IMPORT_LINES.add(outcome, amount=amount)
