"""Redis hanging or refusing under a running server: right answers from the database, then reuse."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import Engine, text

from clientstats.domain.events import parse_line
from clientstats.domain.memory_book import MemoryBook
from clientstats.storage.database import make_engine
from tests.conftest import ADMIN_TOKEN, RunningServer, postgres_schema
from tests.reliability.tcp_proxy import (
    OutputLog,
    TcpProxy,
    cache_versions,
    delete_cache_keys,
    redis_address,
    redis_client,
    redis_url_via,
    require_redis,
    schema_url,
)

REDIS_TIMEOUT = 0.25
# Every answer must come within the configured timeouts (Redis 0.25 s, one database query);
# the rest is slack for a loaded 2-core CI machine. A hanging request fails with ReadTimeout.
CLIENT_TIMEOUT = 5.0
FRESH_WITHIN = 3.0  # seconds; the product promises 1 s, polled every 0.1 s here
UNAVAILABLE = "Redis cache unavailable"
AVAILABLE_AGAIN = "Redis cache available again"

Event = dict[str, Any]


@dataclass
class Setup:
    """A server whose only way to Redis is the proxy; a client whose figures we track."""

    server: RunningServer
    proxy: TcpProxy
    output: OutputLog
    engine: Engine
    redis: redis.Redis
    client: str
    project: int
    events: list[Event]
    seen: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def setup() -> Iterator[Setup]:
    require_redis()
    client = f"rf-{uuid.uuid4().hex[:12]}"
    direct = redis_client()
    with postgres_schema() as schema, TcpProxy(*redis_address()) as proxy:
        server = RunningServer(
            schema_url(schema),
            CLIENTSTATS_REDIS_URL=redis_url_via(proxy.port),
            CLIENTSTATS_REDIS_TIMEOUT=str(REDIS_TIMEOUT),
        )
        engine = make_engine(schema_url(schema))
        try:
            yield Setup(
                server, proxy, OutputLog(server.process.stdout), engine, direct, client, 7, []
            )
        finally:
            server.stop()
            engine.dispose()
            delete_cache_keys(direct, [client])
            direct.close()


def expected_body(events: list[Event], client: str) -> dict[str, Any]:
    """The statistics body the pure reference computes from these events."""
    book = MemoryBook()
    now = datetime.now(UTC)
    for event in events:
        book.apply(parse_line(json.dumps(event), now=now))
    return book.statistics(client).as_response()


def post_events(setup: Setup, events: list[Event]) -> None:
    """Apply events through the admin API; it must answer 200 whatever Redis does."""
    response = httpx.post(
        f"{setup.server.base_url}/admin/events",
        content=b"".join(json.dumps(e).encode() + b"\n" for e in events),
        headers={"content-type": "application/x-ndjson", "authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=CLIENT_TIMEOUT,
    )
    assert response.status_code == 200, response.text
    setup.events.extend(events)
    setup.seen.append(expected_body(setup.events, setup.client))


def donate(setup: Setup, amount: int) -> None:
    post_events(
        setup,
        [
            {
                "event": "donation",
                "token": f"d-{uuid.uuid4().hex[:16]}",
                "channel": "client",
                "client_id": setup.client,
                "receiver": {"type": "project", "id": setup.project},
                "amount_in_cents": amount,
            }
        ],
    )


def read_fresh(setup: Setup) -> dict[str, Any]:
    """Read until the figures are the latest; every answer on the way is a state that existed."""
    deadline = time.monotonic() + FRESH_WITHIN
    url = f"{setup.server.base_url}/en/api_v4/clients/{setup.client}/project_statistics.json"
    while True:
        response = httpx.get(url, timeout=CLIENT_TIMEOUT)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body in setup.seen, body
        if body == setup.seen[-1] or time.monotonic() > deadline:
            assert body == setup.seen[-1]
            return dict(body)
        time.sleep(0.05)


def current_version(setup: Setup) -> int:
    with setup.engine.connect() as conn:
        query = text("SELECT version FROM client_totals WHERE client_id = :c")
        return int(conn.execute(query, {"c": setup.client}).scalar_one())


def ready(setup: Setup) -> dict[str, Any]:
    response = httpx.get(f"{setup.server.base_url}/health/ready", timeout=CLIENT_TIMEOUT)
    assert response.status_code == 200, response.text
    return dict(response.json())


def count_lines(setup: Setup, needle: str) -> int:
    return sum(needle in line for line in setup.output.lines())


def test_redis_outage_is_survived_logged_once_and_recovered_from(setup: Setup) -> None:
    post_events(
        setup,
        [
            {"event": "client", "id": setup.client, "name": "Redis fault", "pool": True},
            {"event": "project", "id": setup.project, "title": "Project"},
            {
                "event": "client_project",
                "client_id": setup.client,
                "project_id": setup.project,
                "member": True,
            },
            {
                "event": "need",
                "id": 70,
                "project_id": setup.project,
                "title": "Need",
                "requested_amount_in_cents": 1_000_000,
            },
        ],
    )
    donate(setup, 1000)
    read_fresh(setup)
    assert current_version(setup) in cache_versions(setup.redis, setup.client)
    assert ready(setup)["redis"] == "ok"

    outage_versions = []
    for fault in (setup.proxy.pause, setup.proxy.refuse):  # a hung Redis, then a dead one
        fault()
        for amount in (250, 500, 750):
            donate(setup, amount)
            read_fresh(setup)
            outage_versions.append(current_version(setup))
        assert ready(setup) == {"status": "ok", "database": "ok", "redis": "unavailable"}

    # The shared cache really was out of reach: nothing computed meanwhile reached Redis.
    assert not set(outage_versions) & cache_versions(setup.redis, setup.client)
    assert count_lines(setup, UNAVAILABLE) == 1, setup.output.text()

    setup.proxy.resume()
    deadline = time.monotonic() + 10
    used_again = False
    while not used_again and time.monotonic() < deadline:
        donate(setup, 100)
        read_fresh(setup)
        used_again = current_version(setup) in cache_versions(setup.redis, setup.client)
        time.sleep(0.3)
    assert used_again, "no statistics were stored in Redis after it came back"
    assert ready(setup)["redis"] == "ok"
    assert count_lines(setup, AVAILABLE_AGAIN) == 1, setup.output.text()
    assert count_lines(setup, UNAVAILABLE) == 1, setup.output.text()
    assert read_fresh(setup) == expected_body(setup.events, setup.client)
