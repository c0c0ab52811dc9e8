"""A booking made anywhere reaches the stream subscribers of every API process.

`serve --workers 2` on PostgreSQL + Redis, with room for two subscribers per process:
four open streams are therefore two in each process, whichever process the kernel gave
each connection to. A booking by a third process (`clientstats import`) must reach all four,
and a SIGTERM to the server must end all four streams cleanly and the server with status 0.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.api.conftest import donation, new_client_events, post_events, run_cli
from tests.api.sse import WAIT, EventStream
from tests.conftest import free_port, postgres_schema, server_env
from tests.reliability.tcp_proxy import (
    REDIS_URL,
    OutputLog,
    delete_cache_keys,
    redis_client,
    require_redis,
    schema_url,
)

PER_PROCESS = 2


class TwoProcessServer:
    """`clientstats serve --workers 2` on a free port."""

    def __init__(self, database_url: str) -> None:
        self.base_url = f"http://127.0.0.1:{free_port()}"
        port = self.base_url.rsplit(":", 1)[1]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "clientstats", "serve", "--workers", "2", "--port", port],
            env=server_env(
                database_url,
                CLIENTSTATS_REDIS_URL=REDIS_URL,
                CLIENTSTATS_STREAM_MAX_SUBSCRIBERS=str(PER_PROCESS),
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.output = OutputLog(self.process.stdout)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.output.text()
            try:
                if httpx.get(f"{self.base_url}/health/live", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError(f"server did not come up:\n{self.output.text()}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def database_url() -> Iterator[str]:
    require_redis()
    with postgres_schema() as schema:
        yield schema_url(schema)


def open_everywhere(url: str, count: int) -> list[EventStream]:
    """`count` open streams; refusals (a full process) are retried until the other takes one."""
    streams: list[EventStream] = []
    deadline = time.monotonic() + WAIT
    while len(streams) < count and time.monotonic() < deadline:
        stream = EventStream(url)
        if stream.response.status_code == 200:
            streams.append(stream)
        else:
            assert stream.response.status_code == 503
            stream.close()
    assert len(streams) == count, "the processes did not take the streams"
    return streams


def test_a_booking_elsewhere_reaches_the_subscribers_of_both_processes(
    database_url: str,
) -> None:
    permalink = f"mp-live-{uuid.uuid4().hex[:8]}"
    server = TwoProcessServer(database_url)
    streams: list[EventStream] = []
    try:
        events = new_client_events(permalink)
        assert post_events(server.base_url, events).status_code == 200
        url = f"{server.base_url}/de/api_v4/clients/{permalink}/project_statistics/stream"
        streams = open_everywhere(url, 2 * PER_PROCESS)
        assert httpx.get(url, timeout=10).status_code == 503  # both processes are full
        for stream in streams:
            assert json.loads(stream.next_event().fields["data"])["donated_amount_in_cents"] == 0
        line = json.dumps(donation(f"{permalink}-1", int(events[1]["id"]), 4321)).encode()
        imported = run_cli(database_url, "import", "-", stdin=line + b"\n")
        assert imported.returncode == 0, imported.stderr
        for stream in streams:
            figures = json.loads(stream.next_event().fields["data"])
            assert figures["donated_amount_in_cents"] == 4321
        # Stopped with its streams open, every process ends them and the server exits.
        server.process.terminate()
        assert server.process.wait(timeout=WAIT) == 0, server.output.text()
        for stream in streams:
            assert stream.read_until(lambda block: block.is_event) is None  # a clean end
    finally:
        for stream in streams:
            stream.close()
        server.stop()
        client = redis_client()
        delete_cache_keys(client, [permalink])
        client.close()
