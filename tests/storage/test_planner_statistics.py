"""A large import (CLI or /admin/events) keeps PostgreSQL's planner statistics in step."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from clientstats.services import importing
from clientstats.services.importing import ANALYZE_FIRST_AT_LINE, import_lines
from clientstats.storage.database import make_engine
from clientstats.storage.schema import ensure_schema, refresh_planner_statistics
from tests.api.conftest import post_events
from tests.conftest import RunningServer, postgres_schema, schema_url
from tests.strategies import client_event, donation_event, member_event, project_event, to_lines


@pytest.fixture
def postgres_engine() -> Iterator[Engine]:
    with postgres_schema() as schema:
        engine = make_engine(schema_url(schema))
        ensure_schema(engine)
        yield engine
        engine.dispose()


def counted_rows(engine: Engine) -> float:
    """The row count PostgreSQL's planner believes `donations` has (-1: never analyzed)."""
    with engine.connect() as conn:
        query = "SELECT reltuples FROM pg_class WHERE oid = 'donations'::regclass"
        return float(conn.execute(text(query)).scalar_one())


def stream(donations: int) -> list[bytes]:
    reference = [client_event("vf"), project_event(1), member_event("vf", 1)]
    entries = [donation_event(f"d{n}", 100, project=1) for n in range(donations)]
    return list(to_lines(reference + entries))


def test_an_import_analyzes_the_ledger_as_it_grows(postgres_engine: Engine) -> None:
    assert counted_rows(postgres_engine) == -1
    lines = stream(3 * ANALYZE_FIRST_AT_LINE)

    report = import_lines(postgres_engine, lines, batch_size=250)

    assert report.ok and report.applied == len(lines)
    # Analyzed last after the batch that reached 2,000 lines: 1,997 of them are donations.
    assert counted_rows(postgres_engine) == 2 * ANALYZE_FIRST_AT_LINE - 3


def test_a_large_admin_upload_analyzes_the_ledger_as_it_grows(
    start_server: Callable[..., RunningServer],
) -> None:
    with postgres_schema() as schema:
        server = start_server(schema_url(schema), CLIENTSTATS_IMPORT_BATCH_SIZE="250")
        engine = make_engine(schema_url(schema))
        assert counted_rows(engine) == -1

        response = post_events(server.base_url, b"".join(line + b"\n" for line in stream(3000)))

        assert response.status_code == 200, response.text
        assert counted_rows(engine) == 2 * ANALYZE_FIRST_AT_LINE - 3
        server.stop()
        engine.dispose()


def test_refreshing_statistics_counts_every_stored_donation(postgres_engine: Engine) -> None:
    assert import_lines(postgres_engine, stream(40)).ok

    refresh_planner_statistics(postgres_engine)

    assert counted_rows(postgres_engine) == 40


def test_refreshing_statistics_is_a_no_op_on_sqlite(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    ensure_schema(engine)
    assert import_lines(engine, stream(40)).ok

    refresh_planner_statistics(engine)

    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM donations")).scalar_one() == 40


def test_an_import_goes_on_when_analyzing_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    ensure_schema(engine)
    calls: list[int] = []

    def refused(_engine: Engine) -> None:
        calls.append(1)
        raise OperationalError("ANALYZE", {}, Exception("permission denied"))

    monkeypatch.setattr(importing, "refresh_planner_statistics", refused)

    report = import_lines(engine, stream(3 * ANALYZE_FIRST_AT_LINE), batch_size=500)

    assert report.ok and report.applied == 3 * ANALYZE_FIRST_AT_LINE + 3
    assert len(calls) == 2  # at 1,000 and 2,000 lines
    assert "could not refresh the planner statistics: permission denied" in caplog.text
