"""A page after a cursor seeks into the list's index instead of scanning from the top."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text

from clientstats.storage import list_queries as q
from clientstats.storage.database import make_engine, read_transaction
from clientstats.storage.keyset import page_rows
from clientstats.storage.schema import ensure_schema
from tests.conftest import postgres_schema, schema_url


@pytest.mark.parametrize(
    ("order", "after"),
    [
        # One direction: a row-value comparison.
        ((("created_at", True),), [datetime(2025, 6, 1, tzinfo=UTC), 4711]),
        # Mixed directions: the OR of comparisons, behind a plain bound on the first key.
        ((("created_at", True), ("amount", False)), [datetime(2025, 6, 1, tzinfo=UTC), 500, 4711]),
    ],
)
def test_sqlite_pages_after_a_cursor_by_an_index_range(
    tmp_path: Path, order: tuple[tuple[str, bool], ...], after: list[Any]
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'plan.db'}")
    ensure_schema(engine)
    sent: list[tuple[str, Any]] = []

    @event.listens_for(engine, "before_cursor_execute")
    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    query = q.client_donations_query("vf", {})
    keys = q.sort_keys("client_donations", order)
    with read_transaction(engine) as conn:
        page_rows(conn, query, keys, limit=21, after=after)
        statement, parameters = sent[-1]
        raw = conn.connection.driver_connection
        assert raw is not None
        plan = [row[3] for row in raw.execute(f"EXPLAIN QUERY PLAN {statement}", parameters)]
    engine.dispose()
    searches = [step for step in plan if step.startswith("SEARCH donations USING")]
    # With bound parameters SQLite cannot merge `created_at < ? OR created_at = ? AND ...`
    # into one range: without a row value or a plain bound on the first key it reads every
    # newer entry of the client.
    assert searches == [
        "SEARCH donations USING INDEX ix_donations_client_channel_created "
        "(client_id=? AND channel=? AND created_at<?)"
    ], plan


@pytest.mark.parametrize("list_query", [q.client_donations_query, q.forwardings_query])
def test_postgresql_client_lists_can_use_the_partial_client_index(list_query: Any) -> None:
    """The index leaves out entries without a client; a list names one, so it still applies.

    Sequential scans are switched off for the EXPLAIN: on an empty table PostgreSQL would
    prefer one, and the question is whether the index can serve the query at all.
    """
    with postgres_schema() as schema:
        engine = make_engine(schema_url(schema))
        ensure_schema(engine)
        with read_transaction(engine) as conn:
            conn.execute(text("SET LOCAL enable_seqscan = off"))
            statement = list_query("vf", {}).limit(21)
            compiled = statement.compile(conn, compile_kwargs={"literal_binds": True})
            plan = "\n".join(conn.execute(text(f"EXPLAIN {compiled}")).scalars())
        engine.dispose()
    assert "ix_donations_client_channel_created" in plan, plan
