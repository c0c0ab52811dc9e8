"""PostgreSQL going away under a running server: quick 503s in the error format, then recovery."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from clientstats.domain.events import parse_line
from clientstats.domain.memory_book import MemoryBook
from clientstats.services.credentials import issue_credentials
from clientstats.storage.database import make_engine
from tests.api.conftest import new_client_events
from tests.conftest import ADMIN_TOKEN, RunningServer, postgres_schema
from tests.reliability.tcp_proxy import (
    OutputLog,
    TcpProxy,
    postgres_address,
    schema_url,
)

DATABASE_TIMEOUT = 2.0
# Every answer must come within the configured database timeout; the rest is slack for a
# loaded 2-core CI machine. A request hanging on a dead database fails with ReadTimeout.
CLIENT_TIMEOUT = DATABASE_TIMEOUT + 4.0
ERROR_KEYS = {"name", "status", "status_code", "reason", "message", "links"}
JSON_UTF8 = "application/json; charset=utf-8"

Event = dict[str, Any]


@dataclass
class Setup:
    """A server whose only way to PostgreSQL is the proxy, and what it was seeded with."""

    server: RunningServer
    proxy: TcpProxy
    output: OutputLog
    direct_url: str
    events: list[Event]


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    with postgres_schema() as schema, TcpProxy(*postgres_address()) as proxy:
        server = RunningServer(
            schema_url(schema, port=proxy.port),
            CLIENTSTATS_DATABASE_TIMEOUT=str(DATABASE_TIMEOUT),
            CLIENTSTATS_DATABASE_POOL_SIZE="3",
        )
        output = OutputLog(server.process.stdout)
        try:
            yield Setup(server, proxy, output, schema_url(schema), [])
        finally:
            server.stop()


def client_events(permalink: str, *, requested: int) -> tuple[list[Event], int]:
    """A client with a pool and one project of one need; (its events, the project id)."""
    events = new_client_events(permalink, requested=requested, pool=True)
    return events, events[1]["id"]


def platform_donation(project: int, amount: int) -> Event:
    return {
        "event": "donation",
        "token": f"d-{uuid.uuid4().hex[:16]}",
        "channel": "platform",
        "receiver": {"type": "project", "id": project},
        "amount_in_cents": amount,
    }


def expected_body(events: list[Event], client: str) -> dict[str, Any]:
    """The statistics body the pure reference computes from these events."""
    book = MemoryBook()
    now = datetime.now(UTC)
    for event in events:
        book.apply(parse_line(json.dumps(event), now=now))
    return book.statistics(client).as_response()


def post_events(setup: Setup, events: list[Event]) -> httpx.Response:
    body = b"".join(json.dumps(e).encode() + b"\n" for e in events)
    response = httpx.post(
        f"{setup.server.base_url}/admin/events",
        content=body,
        headers={"content-type": "application/x-ndjson", "authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=CLIENT_TIMEOUT,
    )
    if response.status_code == 200:
        setup.events.extend(events)
    return response


def stats(setup: Setup, client: str, method: str = "GET") -> httpx.Response:
    url = f"{setup.server.base_url}/de/api_v4/clients/{client}/project_statistics.json"
    return httpx.request(method, url, timeout=CLIENT_TIMEOUT)


def assert_unavailable(response: httpx.Response) -> None:
    """A 503 in the platform's error format, never a 500 or an HTML page."""
    assert response.status_code == 503, (response.status_code, response.text)
    assert response.headers["content-type"] == JSON_UTF8
    body = response.json()
    assert set(body) == ERROR_KEYS, body
    assert body["name"] == "GeneralError"
    assert (body["status"], body["status_code"]) == ("service_unavailable", 503)
    assert body["reason"] == "Service Unavailable"
    assert isinstance(body["message"], str) and body["message"]
    assert body["links"] == []


def wait_for_fresh(setup: Setup, client: str, expected: dict[str, Any]) -> httpx.Response:
    """Poll a client's statistics until they equal `expected` (at most a few seconds)."""
    deadline = time.monotonic() + 5
    while True:
        response = stats(setup, client)
        assert response.status_code == 200, response.text
        if response.json() == expected or time.monotonic() > deadline:
            return response
        time.sleep(0.05)


def test_dropped_connections_are_replaced_without_a_failed_request(setup: Setup) -> None:
    client = f"drop-{uuid.uuid4().hex[:8]}"
    events, project = client_events(client, requested=100_000)
    assert post_events(setup, events).status_code == 200
    assert stats(setup, client).status_code == 200
    assert setup.proxy.connections > 0

    setup.proxy.drop_all()  # PostgreSQL restarted between two requests

    response = post_events(setup, [platform_donation(project, 2500)])
    assert response.status_code == 200, response.text
    assert httpx.get(f"{setup.server.base_url}/health/ready", timeout=CLIENT_TIMEOUT).is_success
    fresh = wait_for_fresh(setup, client, expected_body(setup.events, client))
    assert fresh.json() == expected_body(setup.events, client)


def test_an_outage_answers_503_quickly_and_the_service_recovers_by_itself(setup: Setup) -> None:
    cached, uncached = f"cached-{uuid.uuid4().hex[:8]}", f"uncached-{uuid.uuid4().hex[:8]}"
    events_a, project_a = client_events(cached, requested=50_000)
    events_b, project_b = client_events(uncached, requested=80_000)
    seed = [
        *events_a,
        *events_b,
        platform_donation(project_a, 700),
        platform_donation(project_b, 900),
    ]
    assert post_events(setup, seed).status_code == 200
    engine = make_engine(setup.direct_url)
    credentials = issue_credentials(engine, cached)
    engine.dispose()
    before = stats(setup, cached)
    assert before.status_code == 200
    assert before.json() == expected_body(setup.events, cached)

    setup.proxy.refuse()  # every connection dropped, every new one refused

    for _ in range(3):
        assert_unavailable(stats(setup, uncached))
        served = stats(setup, cached)
        if served.status_code == 200:  # from the in-process cache: the figures of before
            assert (served.content, served.headers["etag"]) == (
                before.content,
                before.headers["etag"],
            )
        else:
            assert_unavailable(served)
        head = stats(setup, uncached, method="HEAD")
        assert (head.status_code, head.content) == (503, b"")
        assert_unavailable(post_events(setup, [platform_donation(project_a, 100)]))
        pledge = httpx.post(
            f"{setup.server.base_url}/de/api_v4/clients/{cached}/pool/donation_pledges.json",
            json={"amount_in_cents": 100, "client_reference": "r1", "validate_address": False},
            auth=(credentials["username"], credentials["password"]),
            timeout=CLIENT_TIMEOUT,
        )
        assert_unavailable(pledge)
        assert_unavailable(
            httpx.get(f"{setup.server.base_url}/health/ready", timeout=CLIENT_TIMEOUT)
        )
        live = httpx.get(f"{setup.server.base_url}/health/live", timeout=CLIENT_TIMEOUT)
        assert live.status_code == 200

    setup.proxy.resume()  # the database is back; nobody restarts the server

    deadline = time.monotonic() + 20
    ready = httpx.get(f"{setup.server.base_url}/health/ready", timeout=CLIENT_TIMEOUT)
    while ready.status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
        ready = httpx.get(f"{setup.server.base_url}/health/ready", timeout=CLIENT_TIMEOUT)
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ok", "database": "ok"}

    recovered = stats(setup, uncached)
    assert recovered.status_code == 200, recovered.text
    assert recovered.json() == expected_body(setup.events, uncached)
    assert post_events(setup, [platform_donation(project_a, 1300)]).status_code == 200
    assert wait_for_fresh(setup, cached, expected_body(setup.events, cached)).json() == (
        expected_body(setup.events, cached)
    )
    pledge = httpx.post(
        f"{setup.server.base_url}/de/api_v4/clients/{cached}/pool/donation_pledges.json",
        json={"amount_in_cents": 100, "client_reference": "r1", "validate_address": False},
        auth=(credentials["username"], credentials["password"]),
        timeout=CLIENT_TIMEOUT,
    )
    assert pledge.status_code == 202, pledge.text

    output = setup.output.text()
    assert "unhandled error" not in output, output


def test_a_database_that_stops_answering_gets_503_within_the_timeout(setup: Setup) -> None:
    client, other = f"silent-{uuid.uuid4().hex[:8]}", f"other-{uuid.uuid4().hex[:8]}"
    events, project = client_events(client, requested=10_000)
    assert post_events(setup, [*events, platform_donation(project, 400)]).status_code == 200
    ready_url = f"{setup.server.base_url}/health/ready"
    assert httpx.get(ready_url, timeout=CLIENT_TIMEOUT).status_code == 200
    # Several pooled connections, so that a request finds one that is about to go silent.
    warm = [client_events(f"warm-{uuid.uuid4().hex[:8]}", requested=1)[0] for _ in range(8)]
    for _ in range(5):
        with ThreadPoolExecutor(len(warm)) as pool:
            assert all(
                r.status_code == 200 for r in pool.map(lambda e: post_events(setup, e), warm)
            )
        if setup.proxy.connections >= 3:
            break
    assert setup.proxy.connections >= 3

    calls = {
        "statistics": lambda: stats(setup, client),
        "admin events": lambda: post_events(setup, [{"event": "client", "id": other, "name": "X"}]),
        "readiness": lambda: httpx.get(ready_url, timeout=CLIENT_TIMEOUT),
    }
    hung = []
    setup.proxy.pause()  # PostgreSQL stops answering; connections stay open (SIGSTOP, partition)
    try:
        for name, call in calls.items():
            try:
                assert_unavailable(call())
            except httpx.TimeoutException:
                hung.append(name)
    finally:
        setup.proxy.resume()

    deadline = time.monotonic() + 20
    while httpx.get(ready_url, timeout=CLIENT_TIMEOUT).status_code != 200:
        assert time.monotonic() < deadline, "not ready again 20 s after the database answered"
        time.sleep(0.1)
    assert wait_for_fresh(setup, client, expected_body(setup.events, client)).json() == (
        expected_body(setup.events, client)
    )
    assert not hung, f"no answer within {CLIENT_TIMEOUT} s from a silent database: {hung}"
