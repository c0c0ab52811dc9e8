"""Request ids, latency buckets, access log lines and metric flushes, without a server."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from clientstats.observability.access_log import BATCH_BYTES, BATCH_LINES, AccessLog
from clientstats.observability.http_tallies import BUCKETS, HttpTallies
from clientstats.observability.metrics import Metrics, Observed, PendingRequests
from clientstats.observability.middleware import (
    Observability,
    RouteInfo,
    new_request_id,
    request_id_of,
)
from clientstats.observability.multiprocess import PREFIX, remove_abandoned
from clientstats.observability.prepared import HitCounter, Prepared


def test_new_request_ids_are_uuid4_hex_and_differ() -> None:
    ids = [new_request_id().decode() for _ in range(1000)]
    assert len(set(ids)) == 1000
    for request_id in ids[:50]:
        parsed = uuid.UUID(hex=request_id)
        assert parsed.hex == request_id and parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


@pytest.mark.parametrize("given", [b"abc", b"x" * 128, b"a-b_c.d:e/f=g+h", b"~!"])
def test_a_sane_request_id_is_passed_on(given: bytes) -> None:
    assert request_id_of([(b"accept", b"*/*"), (b"x-request-id", given)]) == given


@pytest.mark.parametrize(
    "given",
    [b"", b"x" * 129, b"a b", b"a\tb", b"a\x00b", b"\xc3\xa4", b"line\nbreak", b'a"b', b"a\\b"],
)
def test_an_insane_request_id_is_replaced(given: bytes) -> None:
    replaced = request_id_of([(b"x-request-id", given)])
    assert replaced != given and uuid.UUID(hex=replaced.decode()).version == 4


def test_latency_buckets_hold_their_upper_bound() -> None:
    tallies = HttpTallies()
    for seconds in (0.0001, 0.0005, 0.00051, 0.001, 10.0, 10.5):
        tallies.record("/r", 200, seconds)
    counts = tallies.buckets["/r"]
    assert len(counts) == len(BUCKETS) + 1
    assert counts[0] == 2  # <= 0.0005
    assert counts[1] == 2  # <= 0.001
    assert counts[BUCKETS.index(10.0)] == 1
    assert counts[-1] == 1  # +Inf
    assert tallies.responses == {("/r", 200): 6}


def test_an_access_log_line_is_one_json_object_with_the_fields() -> None:
    read, write = os.pipe()
    try:
        log = AccessLog(write)
        log.write(1_700_000_000.25, "GET", "/de/x", 304, 0.0012345, "volksfreund", b"abc")
        log.write(1_700_000_001.0, "PUT", '/"q"', 200, 1.5, None, b"a-b")
        raw = os.read(read, 65536)
    finally:
        os.close(read)
        os.close(write)
    assert raw.endswith(b"\n") and raw.count(b"\n") == 2
    first, second = (json.loads(line) for line in raw.splitlines())
    assert first == {
        "time": "2023-11-14T22:13:20.250Z",
        "method": "GET",
        "path": "/de/x",
        "status": 304,
        "duration_ms": 1.234,
        "client": "volksfreund",
        "request_id": "abc",
    }
    assert second == {
        "time": "2023-11-14T22:13:21.000Z",
        "method": "PUT",
        "path": '/"q"',
        "status": 200,
        "duration_ms": 1500.0,
        "client": None,
        "request_id": "a-b",
    }


def test_access_log_lines_written_on_the_event_loop_go_out_together() -> None:
    read, write = os.pipe()
    os.set_blocking(read, False)
    log = AccessLog(write)

    async def three_requests() -> bytes:
        for n in range(3):
            log.write(1_700_000_000.0, "GET", f"/{n}", 200, 0.001, None, b"id")
        with pytest.raises(BlockingIOError):  # nothing written yet
            os.read(read, 65536)
        await asyncio.sleep(0.2)
        return os.read(read, 65536)

    try:
        raw = asyncio.run(three_requests())
    finally:
        os.close(read)
        os.close(write)
    assert [json.loads(line)["path"] for line in raw.splitlines()] == ["/0", "/1", "/2"]


def test_a_full_batch_of_lines_goes_out_at_once_in_writes_a_pipe_keeps_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    read, write = os.pipe()
    os.set_blocking(read, False)
    log = AccessLog(write)
    writes: list[int] = []
    real_write = os.write

    def counted(fd: int, data: bytes) -> int:
        writes.append(len(data))
        return real_write(fd, data)

    async def many_requests() -> bytes:
        for n in range(BATCH_LINES):
            log.write(1_700_000_000.0, "GET", f"/{n}/{'x' * 100}", 200, 0.001, None, b"id")
        return os.read(read, 65536)  # the batch was full: written before any await

    monkeypatch.setattr(os, "write", counted)
    try:
        raw = asyncio.run(many_requests())
    finally:
        os.close(read)
        os.close(write)
    lines = [json.loads(line) for line in raw.splitlines()]
    assert [line["path"].split("/")[1] for line in lines] == [str(n) for n in range(BATCH_LINES)]
    assert len(writes) > 1 and max(writes) <= BATCH_BYTES and sum(writes) == len(raw)


def test_the_middleware_adds_the_id_without_touching_a_shared_start_message() -> None:
    shared = {"type": "http.response.start", "status": 200, "headers": [(b"etag", b'"x"')]}
    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(shared)
        await send({"type": "http.response.body", "body": b"{}"})

    async def send(message: Any) -> None:
        sent.append(message)

    tallies = HttpTallies()
    wrapped = Observability(
        app, lambda path: RouteInfo("/route", None), tallies=tallies, access_log=None
    )
    scope = {"type": "http", "path": "/p", "method": "GET", "headers": []}
    for _ in range(2):
        asyncio.run(wrapped(scope, None, send))
    assert shared["headers"] == [(b"etag", b'"x"')]
    starts = [m for m in sent if m["type"] == "http.response.start"]
    ids = [dict(m["headers"])[b"x-request-id"] for m in starts]
    assert len(ids) == 2 and ids[0] != ids[1]
    assert tallies.responses == {("/route", 200): 2}


def test_a_cached_answer_is_sent_with_its_id_counted_and_logged_without_the_app() -> None:
    shared = {"type": "http.response.start", "status": 304, "headers": [(b"etag", b'"x"')]}
    body = {"type": "http.response.body", "body": b""}
    sent: list[dict[str, Any]] = []
    asked: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        asked.append(scope["path"])
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    def answer(scope: Any) -> Any:
        return (shared, body) if scope["path"] == "/cached" else None

    async def send(message: Any) -> None:
        sent.append(message)

    read, write = os.pipe()
    tallies = HttpTallies()
    wrapped = Observability(
        app,
        lambda path: RouteInfo(path, "client"),
        tallies=tallies,
        access_log=AccessLog(write),
        answer=answer,
    )

    async def requests() -> bytes:
        for path, request_id in (("/cached", b"given-id"), ("/cached", None), ("/other", None)):
            headers = [] if request_id is None else [(b"x-request-id", request_id)]
            scope = {"type": "http", "path": path, "method": "GET", "headers": headers}
            await wrapped(scope, None, send)
        await asyncio.sleep(0.2)  # the access log writes on the event loop
        return os.read(read, 65536)

    try:
        raw = asyncio.run(requests())
    finally:
        os.close(read)
        os.close(write)
    assert asked == ["/other"]  # the cached answers never reached the app
    assert shared["headers"] == [(b"etag", b'"x"')]
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert [m["status"] for m in starts] == [304, 304, 404]
    ids = [dict(m["headers"])[b"x-request-id"] for m in starts]
    assert ids[0] == b"given-id" and len(set(ids)) == 3
    assert [m for m in sent if m["type"] == "http.response.body"][:2] == [body, body]
    assert tallies.responses == {("/cached", 304): 2, ("/other", 404): 1}
    lines = [json.loads(line) for line in raw.splitlines()]
    assert [(line["path"], line["status"], line["client"]) for line in lines] == [
        ("/cached", 304, "client"),
        ("/cached", 304, "client"),
        ("/other", 404, "client"),
    ]
    assert [line["request_id"] for line in lines] == [i.decode() for i in ids]


class _Source:
    changes_seen = 0


def _prepared_requests(access_log: AccessLog | None) -> tuple[HttpTallies, list[Any]]:
    """Five plain GETs of a path with a prepared answer, through Observability."""
    hits = HitCounter()
    headers = [(b"etag", b'"p"')]
    body = {"type": "http.response.body", "body": b"{}"}
    prepared = {"/p": Prepared(headers, body, float("inf"), _Source(), 0, hits)}
    sent: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("a prepared answer reached the app")

    async def send(message: Any) -> None:
        sent.append(message)

    tallies = HttpTallies()
    wrapped = Observability(
        app,
        lambda path: RouteInfo("/route-of-p", "c"),
        tallies=tallies,
        access_log=access_log,
        prepared=prepared,
    )

    async def requests() -> None:
        for _ in range(5):
            await wrapped(
                {"type": "http", "path": "/p", "method": "GET", "headers": []}, None, send
            )
        await asyncio.sleep(0.2)  # the access log writes on the event loop

    asyncio.run(requests())
    assert hits.count == 5
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [200] * 5
    return tallies, sent


def test_prepared_answers_are_counted_in_the_tallies_once_folded() -> None:
    tallies, _ = _prepared_requests(access_log=None)
    tallies.fold()
    assert tallies.responses == {("/route-of-p", 200): 5}
    counts = tallies.buckets["/route-of-p"]
    assert sum(counts) == 5 and counts[0] >= 1  # the fast ones in the first bucket
    assert 0 < tallies.seconds["/route-of-p"] < 5
    tallies.fold()  # folding twice adds nothing
    assert tallies.responses == {("/route-of-p", 200): 5} and sum(counts) == 5


def test_prepared_answers_are_logged_one_line_each_when_the_access_log_is_on() -> None:
    read, write = os.pipe()
    try:
        tallies, sent = _prepared_requests(access_log=AccessLog(write))
        raw = os.read(read, 65536)
    finally:
        os.close(read)
        os.close(write)
    lines = [json.loads(line) for line in raw.splitlines()]
    ids = [
        dict(m["headers"])[b"x-request-id"].decode()
        for m in sent
        if m["type"] != "http.response.body"
    ]
    assert [line["request_id"] for line in lines] == ids and len(set(ids)) == 5
    tallies.fold()
    assert tallies.responses == {("/route-of-p", 200): 5}


def _samples(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    metrics.flush()
    text = metrics.exposition(PendingRequests(count=3, oldest_age=42.5)).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_flushing_twice_counts_each_response_once() -> None:
    tallies = HttpTallies()
    observed = Observed(cache_hits={("process",): 7}, cache_misses={}, feed_age=0.3)
    metrics = Metrics(tallies, lambda: observed)
    tallies.record("/a", 200, 0.0007)
    tallies.record("/a", 404, 0.003)
    metrics.flush()
    metrics.flush()
    tallies.record("/a", 200, 0.0002)
    samples = _samples(metrics)

    def get(name: str, **labels: str) -> float:
        return samples[(name, frozenset(labels.items()))]

    assert get("clientstats_http_requests_total", route="/a", status="200") == 2
    assert get("clientstats_http_requests_total", route="/a", status="404") == 1
    bucket = "clientstats_http_request_duration_seconds_bucket"
    assert get(bucket, route="/a", le="0.0005") == 1
    assert get(bucket, route="/a", le="0.001") == 2
    assert get(bucket, route="/a", le="0.005") == 3
    assert get("clientstats_http_request_duration_seconds_count", route="/a") == 3
    assert get("clientstats_http_request_duration_seconds_sum", route="/a") == pytest.approx(0.0039)
    assert get("clientstats_statistics_cache_hits_total", level="process") == 7
    assert get("clientstats_freshness_feed_age_seconds") == 0.3
    assert get("clientstats_pending_requests") == 3
    assert get("clientstats_pending_requests_oldest_age_seconds") == 42.5


def test_directories_of_gone_supervisors_are_removed_and_live_ones_kept(
    tmp_path: Path,
) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a pid that is no longer running
    abandoned = tmp_path / f"{PREFIX}{gone.pid}-abc"
    live = tmp_path / f"{PREFIX}{os.getpid()}-def"
    other = tmp_path / "clientstats-metrics-not-a-pid"
    for path in (abandoned, live, other):
        path.mkdir()
        (path / "counter_1.db").write_bytes(b"x")
    remove_abandoned(str(tmp_path))
    assert not abandoned.exists()
    assert live.exists() and other.exists()
