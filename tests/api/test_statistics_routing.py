"""The statistics endpoint's per-path routing memo and per-second response starts, in-process."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from clientstats.api import statistics_endpoint
from clientstats.api.statistics_endpoint import Route, StatisticsEndpoint, route_for
from clientstats.cache.base import CachedResponse

BODY = b'{"donated_amount_in_cents":1}'
PATH = "/de/api_v4/clients/vf/project_statistics.json"


class FixedLive:
    """LiveStatistics reduced to a cache that always holds one entry."""

    ttl = 1200
    timeout = 1.0

    def __init__(self, entry: CachedResponse) -> None:
        self.entry = entry

    def fresh(self, permalink: str, now: float) -> CachedResponse | None:
        return self.entry if permalink == self.entry.permalink else None

    async def load(self, permalink: str) -> CachedResponse:
        raise AssertionError(f"no load expected for {permalink}")


async def passed_on(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 299, "headers": []})
    await send({"type": "http.response.body", "body": b"passed on"})


def call(endpoint: StatisticsEndpoint, path: str, method: str = "GET") -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> Any:
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "path": path, "method": method, "headers": []}
    asyncio.run(endpoint(scope, receive, send))
    return sent


def headers(message: dict[str, Any]) -> dict[bytes, bytes]:
    return dict(message["headers"])


@pytest.fixture
def entry() -> CachedResponse:
    return CachedResponse("vf", 1, BODY, b'"etag"', 1_000_000.0, False)


@pytest.fixture
def endpoint(entry: CachedResponse) -> StatisticsEndpoint:
    live = FixedLive(entry)
    return StatisticsEndpoint(passed_on, lambda: live, lambda: None)  # type: ignore[arg-type,return-value]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/openapi.json", None),
        ("/de/api_v4/clients/vf/other.json", None),
        ("/de/api_v4/clients//project_statistics", None),
        (PATH, Route(None, "vf", "Couldn't find Client with permalink=vf")),
        (
            "/en/api_v4/clients/VolksFreund/project_statistics",
            Route(None, "volksfreund", "Couldn't find Client with permalink=volksfreund"),
        ),
        (
            "/fr/api_v4/clients/vf/project_statistics",
            Route("Unknown locale fr", "vf", "Couldn't find Client with permalink=vf"),
        ),
        (
            "/de/api_v4/clients/v%20f/project_statistics",
            Route(None, None, "Couldn't find Client with permalink=v%20f"),
        ),
        (
            "/de/api_v4/clients/\u212aey/project_statistics",  # Kelvin sign: no ASCII "k"
            Route(None, None, "Couldn't find Client with permalink=\u212aey"),
        ),
    ],
)
def test_route_for(path: str, expected: Route | None) -> None:
    assert route_for(path) == expected


def test_a_remembered_route_answers_like_a_new_one(endpoint: StatisticsEndpoint) -> None:
    first = call(endpoint, PATH)
    again = call(endpoint, PATH)

    assert [m.get("status") for m in first] == [200, None]
    assert first == again
    assert again[1]["body"] == BODY
    assert call(endpoint, "/openapi.json")[1]["body"] == b"passed on"
    assert call(endpoint, PATH, "POST")[0]["status"] == 405
    assert call(endpoint, "/fr/api_v4/clients/vf/project_statistics")[0]["status"] == 404


def test_remembered_paths_are_bounded(
    endpoint: StatisticsEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(statistics_endpoint, "MAX_REMEMBERED_PATHS", 50)
    for number in range(500):
        call(endpoint, f"/de/api_v4/clients/c{number}/other")
        assert len(endpoint._routes) <= 50

    assert call(endpoint, PATH)[1]["body"] == BODY


def test_max_age_counts_down_with_the_clock(
    endpoint: StatisticsEndpoint, entry: CachedResponse, monkeypatch: pytest.MonkeyPatch
) -> None:
    ages = []
    for now in (entry.expires_at - 1000.0, entry.expires_at - 999.5, entry.expires_at - 10.2):
        monkeypatch.setattr(statistics_endpoint.time, "time", lambda now=now: now)
        ages.append(headers(call(endpoint, PATH)[0])[b"cache-control"])

    assert ages == [b"public, max-age=1000", b"public, max-age=1000", b"public, max-age=11"]
    assert list(entry.start_messages) == [11]  # only the current second is kept


def test_a_200_start_carries_every_header(
    endpoint: StatisticsEndpoint, entry: CachedResponse, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(statistics_endpoint.time, "time", lambda: entry.expires_at - 5000.0)

    start = call(endpoint, PATH)[0]

    assert start["status"] == 200
    assert headers(start) == {
        b"etag": b'"etag"',
        b"cache-control": b"public, max-age=1200",
        b"access-control-allow-origin": b"*",
        b"access-control-expose-headers": b"ETag",
        b"content-type": b"application/json; charset=utf-8",
        b"content-length": str(len(BODY)).encode(),
    }


@pytest.mark.parametrize(
    ("cap", "expected"),
    [(None, b"public, max-age=1000"), (60, b"public, max-age=60"), (0, b"public, no-cache")],
)
def test_the_configured_http_max_age_caps_what_downstream_caches_get(
    entry: CachedResponse,
    monkeypatch: pytest.MonkeyPatch,
    cap: int | None,
    expected: bytes,
) -> None:
    live = FixedLive(entry)
    endpoint = StatisticsEndpoint(passed_on, lambda: live, lambda: None, http_max_age=cap)  # type: ignore[arg-type,return-value]
    monkeypatch.setattr(statistics_endpoint.time, "time", lambda: entry.expires_at - 1000.0)
    assert headers(call(endpoint, PATH)[0])[b"cache-control"] == expected


def test_a_preflight_is_204_allowing_the_headers_a_script_sends(
    endpoint: StatisticsEndpoint,
) -> None:
    start, body = call(endpoint, PATH, "OPTIONS")
    assert start["status"] == 204 and body["body"] == b""
    sent = headers(start)
    assert sent[b"access-control-allow-origin"] == b"*"
    assert sent[b"access-control-allow-methods"] == b"GET, HEAD"
    allowed = {h.strip().lower() for h in sent[b"access-control-allow-headers"].split(b",")}
    assert {b"if-none-match", b"authorization", b"last-event-id"} <= allowed
    assert int(sent[b"access-control-max-age"]) > 0
