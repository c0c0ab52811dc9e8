"""Concurrent writers on PostgreSQL cannot both spend one pool balance or matching budget."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from clientstats.services.importing import import_lines
from clientstats.storage.database import write_transaction
from clientstats.storage.sql_book import SqlBook

SEED = b"""\
{"event": "client", "id": "vf", "name": "Volksfreund", "pool": true}
{"event": "project", "id": 1, "title": "Ramp", "closed": false, "donations_prohibited": false}
{"event": "matching_fund", "id": 2, "client_id": "vf", "title": "Doubles", "provided_amount_in_cents": 1000, "maximum_matching_amount_in_cents": 500, "project_ids": [1]}
{"event": "donation", "token": "d1", "channel": "offline", "receiver": {"type": "pool", "client_id": "vf"}, "amount_in_cents": 900}
"""


def _blocked_reading(engine: Engine, read: str) -> bool:
    """Whether a second transaction waits for the row the first one read for booking."""
    now = datetime.now(UTC)
    with write_transaction(engine) as first:
        book = SqlBook(first, now=now)
        assert book.pool_balance("vf") == 900
        assert book.matching_budgets(1)[0].remaining_in_cents == 1000
        with write_transaction(engine) as second:
            second.execute(text("SET LOCAL lock_timeout = '200ms'"))
            other = SqlBook(second, now=now)
            try:
                if read == "pool":
                    other.pool_balance("vf")
                else:
                    other.matching_budgets(1)
            except OperationalError as exc:
                assert "lock timeout" in str(exc.orig)
                return True
            return False


@pytest.mark.parametrize("read", ["pool", "budget"])
def test_a_booking_locks_what_it_reads_to_spend(
    engine: Engine, database_url: str, read: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite serializes writers with BEGIN IMMEDIATE; there are no row locks")
    assert import_lines(engine, SEED.splitlines()).ok
    assert _blocked_reading(engine, read)
