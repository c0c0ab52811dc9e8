"""Database and Redis faults are counted, and a scrape answers while the database is gone."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from clientstats.observability.tallies import DATABASE_ERRORS
from clientstats.storage.database import make_engine
from tests.api.conftest import new_client_events, post_events
from tests.conftest import RunningServer, free_port, postgres_schema
from tests.reliability.tcp_proxy import TcpProxy, postgres_address, schema_url
from tests.scrape import scrape, value

ERRORS = "clientstats_database_errors_total"


def test_the_engine_counts_each_driver_error_by_kind(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    before = DATABASE_ERRORS.snapshot().get(("OperationalError",), 0)
    with engine.connect() as conn:
        for _ in range(2):
            with pytest.raises(OperationalError):
                conn.execute(text("SELECT * FROM no_such_table"))
            conn.rollback()
    engine.dispose()
    assert DATABASE_ERRORS.snapshot().get(("OperationalError",), 0) == before + 2


@pytest.fixture
def behind_proxy() -> Iterator[tuple[RunningServer, TcpProxy]]:
    with postgres_schema() as schema, TcpProxy(*postgres_address()) as proxy:
        server = RunningServer(
            schema_url(schema, port=proxy.port), CLIENTSTATS_DATABASE_TIMEOUT="2"
        )
        try:
            yield server, proxy
        finally:
            server.stop()


def test_a_scrape_answers_and_counts_while_postgresql_is_down(
    behind_proxy: tuple[RunningServer, TcpProxy],
) -> None:
    server, proxy = behind_proxy
    client = f"down-{uuid.uuid4().hex[:8]}"
    assert post_events(server.base_url, new_client_events(client)).status_code == 200
    before = scrape(server.base_url)
    assert value(before, "clientstats_pending_requests") == 0
    errors_before = value(before, ERRORS, kind="OperationalError")

    proxy.refuse()
    url = f"{server.base_url}/de/api_v4/clients/{client}/project_statistics.json"
    assert httpx.get(url, timeout=10).status_code == 503  # a miss the database cannot answer
    during = scrape(server.base_url)
    assert value(during, ERRORS, kind="OperationalError") > errors_before
    assert value(during, "clientstats_pending_requests_errors_total") == 1
    # No pending-requests figure is better than a wrong one.
    assert ("clientstats_pending_requests", frozenset()) not in during

    proxy.resume()
    after = scrape(server.base_url)
    assert value(after, "clientstats_pending_requests_errors_total") == 1
    assert ("clientstats_pending_requests", frozenset()) in after


def test_redis_errors_are_counted_by_kind(tmp_path: Path) -> None:
    closed = free_port()  # nothing listens there
    server = RunningServer(
        f"sqlite:///{tmp_path / 'db.sqlite'}", CLIENTSTATS_REDIS_URL=f"redis://127.0.0.1:{closed}/0"
    )
    try:
        client = f"redis-{uuid.uuid4().hex[:8]}"
        assert post_events(server.base_url, new_client_events(client)).status_code == 200
        # Redis is asked by version: give the process ten poll intervals to read the new
        # client's version from the change feed, or the miss never reaches Redis.
        time.sleep(1.0)
        url = f"{server.base_url}/de/api_v4/clients/{client}/project_statistics.json"
        assert httpx.get(url, timeout=10).status_code == 200  # from the database instead
        samples = scrape(server.base_url)
        assert value(samples, "clientstats_redis_errors_total", kind="ConnectionError") >= 1
        assert value(samples, "clientstats_statistics_cache_misses_total", level="redis") == 1
        assert value(samples, "clientstats_statistics_cache_hits_total", level="database") == 1
    finally:
        server.stop()
