"""The live statistics stream over real HTTP: events, resumption, heartbeats, limits, shutdown."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from clientstats.services.credentials import issue_credentials
from clientstats.storage.database import make_engine
from tests.api.conftest import (
    assert_error,
    donation,
    get_stats,
    new_client_events,
    post_events,
    unique_permalink,
)
from tests.api.sse import WAIT, EventStream
from tests.conftest import RunningServer, fresh_database

MAX_SUBSCRIBERS = 4
HEARTBEAT = 0.3


def stream_url(base_url: str, client: str, locale: str = "de") -> str:
    return f"{base_url}/{locale}/api_v4/clients/{client}/project_statistics/stream"


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The database of the module's server."""
    with fresh_database("sqlite", tmp_path_factory.mktemp("stream")) as url:
        yield url


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[RunningServer]:
    """One server for the module: short heartbeats and room for few subscribers."""
    running = RunningServer(
        database_url,
        CLIENTSTATS_STREAM_HEARTBEAT_INTERVAL=str(HEARTBEAT),
        CLIENTSTATS_STREAM_MAX_SUBSCRIBERS=str(MAX_SUBSCRIBERS),
    )
    yield running
    running.stop()


@pytest.fixture
def client(server: RunningServer) -> tuple[str, int]:
    """A new public client with one project; (permalink, project id)."""
    permalink = unique_permalink("live")
    events = new_client_events(permalink, requested=500_000)
    assert post_events(server.base_url, events).status_code == 200
    return permalink, int(events[1]["id"])


def test_the_first_event_is_the_statistics_body_with_its_version(
    server: RunningServer, client: tuple[str, int]
) -> None:
    permalink, project = client
    assert (
        post_events(server.base_url, [donation(f"{permalink}-1", project, 1234)]).status_code == 200
    )
    with EventStream(stream_url(server.base_url, permalink)) as stream:
        assert stream.response.status_code == 200
        headers = stream.response.headers
        assert headers["content-type"] == "text/event-stream"
        assert headers["x-accel-buffering"] == "no"
        assert headers["access-control-allow-origin"] == "*"
        assert headers["cache-control"] == "no-store"
        event = stream.next_event()
    statistics = get_stats(server.base_url, permalink)
    assert event.fields["event"] == "statistics"
    assert event.fields["data"].encode() == statistics.content
    assert json.loads(event.fields["data"])["donated_amount_in_cents"] == 1234
    assert event.fields["id"].isdigit()


def test_a_burst_of_bookings_is_one_event_with_the_final_figures(
    server: RunningServer, client: tuple[str, int]
) -> None:
    permalink, project = client
    with EventStream(stream_url(server.base_url, permalink)) as stream:
        first = stream.next_event()
        burst = [donation(f"{permalink}-b{n}", project, 100 + n) for n in range(20)]
        assert post_events(server.base_url, burst).status_code == 200
        changed = stream.next_event()
        after = stream.blocks_for(8 * HEARTBEAT)
    final = get_stats(server.base_url, permalink)
    assert json.loads(first.fields["data"])["donated_amount_in_cents"] == 0
    assert changed.fields["data"].encode() == final.content
    assert json.loads(changed.fields["data"])["donated_amount_in_cents"] == sum(
        100 + n for n in range(20)
    )
    assert changed.fields["id"] != first.fields["id"]
    assert [b for b in after if b.is_event] == []
    assert any("keep-alive" in b.comments for b in after)


def test_a_reconnect_naming_the_current_version_gets_no_repeated_event(
    server: RunningServer, client: tuple[str, int]
) -> None:
    permalink, project = client
    url = stream_url(server.base_url, permalink)
    with EventStream(url) as stream:
        current = stream.next_event().fields["id"]
    with EventStream(url, {"Last-Event-ID": current}) as resumed:
        quiet = resumed.blocks_for(6 * HEARTBEAT)
        assert [b for b in quiet if b.is_event] == []
        assert sum("keep-alive" in b.comments for b in quiet) >= 2
        # Still subscribed: the next change arrives.
        assert (
            post_events(server.base_url, [donation(f"{permalink}-r", project, 77)]).status_code
            == 200
        )
        changed = resumed.next_event()
    assert json.loads(changed.fields["data"])["donated_amount_in_cents"] == 77
    with EventStream(url, {"Last-Event-ID": current}) as stale:
        assert stale.next_event().fields["id"] == changed.fields["id"]


def test_beyond_the_subscriber_limit_a_503_with_retry_after(
    server: RunningServer, client: tuple[str, int]
) -> None:
    permalink, _ = client
    url = stream_url(server.base_url, permalink)
    streams = [EventStream(url) for _ in range(MAX_SUBSCRIBERS)]
    try:
        for stream in streams:
            stream.next_event()
        refused = httpx.get(url, timeout=10)
        assert_error(refused, 503)
        assert int(refused.headers["retry-after"]) > 0
        streams.pop().close()
        # The server notices the closed connection and admits a new subscriber.
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            retry = EventStream(url)
            if retry.response.status_code == 200:
                streams.append(retry)
                break
            retry.close()
            time.sleep(0.1)
        assert streams[-1].next_event().fields["event"] == "statistics"
    finally:
        for stream in streams:
            stream.close()


def test_a_client_that_turns_private_ends_the_public_streams(
    server: RunningServer, client: tuple[str, int]
) -> None:
    permalink, _ = client
    with EventStream(stream_url(server.base_url, permalink)) as stream:
        stream.next_event()
        private = {"event": "client", "id": permalink, "statistics_private": True}
        assert post_events(server.base_url, [private]).status_code == 200
        assert stream.read_until(lambda block: block.is_event) is None
        assert stream.ended
    refused = httpx.get(stream_url(server.base_url, permalink), timeout=10)
    assert_error(refused, 401)
    assert "access-control-allow-origin" not in refused.headers


def test_private_figures_stream_only_with_the_clients_own_credentials(
    server: RunningServer, database_url: str
) -> None:
    owner, other = unique_permalink("priv"), unique_permalink("other")
    events = [
        *new_client_events(owner),
        *new_client_events(other),
        {"event": "client", "id": owner, "statistics_private": True},
    ]
    assert post_events(server.base_url, events).status_code == 200
    engine = make_engine(database_url)
    credentials = {}
    for permalink in (owner, other):
        issued = issue_credentials(engine, permalink)
        credentials[permalink] = (issued["username"], issued["password"])
    engine.dispose()
    url = stream_url(server.base_url, owner)
    anonymous = httpx.get(url, timeout=10)
    assert_error(anonymous, 401)
    assert anonymous.headers["www-authenticate"].startswith("Basic")
    assert "access-control-allow-origin" not in anonymous.headers
    foreign = httpx.get(url, auth=credentials[other], timeout=10)
    assert_error(foreign, 404)
    assert "access-control-allow-origin" not in foreign.headers
    username, password = credentials[owner]
    basic = base64.b64encode(f"{username}:{password}".encode()).decode()
    with EventStream(url, {"Authorization": f"Basic {basic}"}) as stream:
        assert "access-control-allow-origin" not in stream.response.headers
        assert stream.next_event().fields["data"].encode() == (
            httpx.get(url.removesuffix("/stream"), auth=(username, password), timeout=10).content
        )


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/xx/api_v4/clients/{c}/project_statistics/stream", 404),
        ("GET", "/de/api_v4/clients/nobody-here/project_statistics/stream", 404),
        ("GET", "/de/api_v4/clients/bad%20id/project_statistics/stream", 404),
        ("POST", "/de/api_v4/clients/{c}/project_statistics/stream", 405),
    ],
)
def test_refusals_are_errors_in_the_platforms_format(
    server: RunningServer, client: tuple[str, int], method: str, path: str, status: int
) -> None:
    url = server.base_url + path.format(c=client[0])
    response = httpx.request(method, url, timeout=10)
    assert_error(response, status)


def test_preflight_and_head(server: RunningServer, client: tuple[str, int]) -> None:
    url = stream_url(server.base_url, client[0])
    preflight = httpx.options(
        url,
        headers={
            "Origin": "https://news.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "last-event-id",
        },
        timeout=10,
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "Last-Event-ID" in preflight.headers["access-control-allow-headers"]
    head = httpx.head(url, timeout=10)
    assert head.status_code == 200
    assert head.headers["content-type"] == "text/event-stream"
    assert head.content == b""


def test_open_streams_end_cleanly_when_the_server_is_stopped(
    start_server: Callable[..., RunningServer], tmp_path: Path
) -> None:
    with fresh_database("sqlite", tmp_path) as url:
        running = start_server(url)
        permalink = unique_permalink("stop")
        assert post_events(running.base_url, new_client_events(permalink)).status_code == 200
        streams = [EventStream(stream_url(running.base_url, permalink)) for _ in range(3)]
        for stream in streams:
            stream.next_event()
        running.process.terminate()
        assert running.process.wait(timeout=WAIT) == 0
        for stream in streams:
            assert stream.read_until(lambda block: block.is_event) is None  # a clean end
            stream.close()
