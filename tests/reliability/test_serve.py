"""`clientstats serve` as real processes: its children die with it, and a busy port is one line."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, free_port, server_env

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc, as Linux has it")
DEADLINE = 30.0  # seconds: generous on a loaded machine; the expectation is about one


class Serve:
    """`clientstats serve --port PORT ARGS`, its output in a file."""

    def __init__(self, database_url: str, port: int, *args: str) -> None:
        self.port = port
        # A file, not a pipe: a pipe nobody reads can fill up. Closed by `end`.
        self.log = tempfile.TemporaryFile()  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "clientstats", "serve", "--port", str(port), *args],
            env=server_env(database_url),
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.seen: dict[int, str | None] = {self.process.pid: started_at(self.process.pid)}

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode()

    def children(self) -> set[int]:
        """The live child processes (each is remembered, to be ended after the test)."""
        found = set()
        for task in Path(f"/proc/{self.process.pid}/task").glob("*"):
            try:
                found |= {int(pid) for pid in (task / "children").read_text().split()}
            except FileNotFoundError:
                continue
        for pid in found - set(self.seen):
            self.seen[pid] = started_at(pid)
        return found

    def wait_until_serving(self, children: int) -> None:
        """Until the API answers and at least `children` child processes run."""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.output()
            if answers(self.port) and len(self.children()) >= children:
                return
            time.sleep(0.05)
        raise AssertionError(f"serve did not come up in 120 s:\n{self.output()}")

    def end(self) -> None:
        """SIGKILL every process this server started that still runs; never a pid reused."""
        for pid, start in self.seen.items():
            if alive(pid) and start is not None and started_at(pid) == start:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self.process.wait()
        self.log.close()


def started_at(pid: int) -> str | None:
    """When the process started (clock ticks since boot), which tells a reused pid apart."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except FileNotFoundError:
        return None


def answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (an orphan's zombie may wait for its reaper)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_until_gone(pids: set[int]) -> None:
    """Until none of the processes runs; fails after DEADLINE."""
    deadline = time.monotonic() + DEADLINE
    while any(alive(pid) for pid in pids):
        assert time.monotonic() < deadline, f"still running after {DEADLINE} s: {pids}"
        time.sleep(0.05)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'serve.db'}"


@pytest.fixture
def serve(sqlite_url: str) -> Iterator[Callable[..., Serve]]:
    """Start servers on the test database; every process they started is ended after."""
    started: list[Serve] = []

    def start(port: int, *args: str) -> Serve:
        started.append(Serve(sqlite_url, port, *args))
        return started[-1]

    yield start
    for server in started:
        server.end()


def test_children_exit_when_the_supervisor_is_killed_and_the_port_is_free_again(
    serve: Callable[..., Serve],
) -> None:
    port = free_port()
    supervisor = serve(port, "--workers", "2")
    supervisor.wait_until_serving(2)
    children = supervisor.children()

    supervisor.process.send_signal(signal.SIGKILL)  # as the OOM killer would
    supervisor.process.wait()

    wait_until_gone(children)
    successor = serve(port)
    successor.wait_until_serving(0)
    assert answers(port)


EVENT = b'{"event": "client", "id": "held", "name": "Held over a shutdown"}\n'


def hold_a_request(port: int) -> socket.socket:
    """A POST /admin/events whose body is not sent yet, once the app is waiting for it."""
    conn = socket.create_connection(("127.0.0.1", port))
    conn.settimeout(120)  # only so that a broken server fails the test instead of hanging it
    conn.sendall(
        b"POST /admin/events HTTP/1.1\r\nHost: test\r\n"
        + f"Authorization: Bearer {ADMIN_TOKEN}\r\n".encode()
        + b"Content-Type: application/x-ndjson\r\n"
        + f"Content-Length: {len(EVENT)}\r\n".encode()
        + b"Expect: 100-continue\r\n\r\n"
    )
    # The server sends 100 Continue once the app asks for the body: the request is in flight.
    assert conn.recv(1024).startswith(b"HTTP/1.1 100 Continue")
    return conn


def finish_the_request(conn: socket.socket) -> bytes:
    conn.sendall(EVENT)
    response = b""
    while chunk := conn.recv(65536):
        response += chunk
    conn.close()
    return response


@pytest.mark.parametrize(
    ("workers", "signum"),
    [("2", signal.SIGTERM), ("2", signal.SIGINT), ("1", signal.SIGTERM), ("1", signal.SIGINT)],
)
def test_a_signal_stops_everything_after_the_request_in_flight_with_status_0(
    serve: Callable[..., Serve], workers: str, signum: int
) -> None:
    port = free_port()
    supervisor = serve(port, "--workers", workers)
    supervisor.wait_until_serving(0 if workers == "1" else int(workers))
    children = supervisor.children()
    held = hold_a_request(port)

    supervisor.process.send_signal(signum)
    response = finish_the_request(held)

    assert response.startswith(b"HTTP/1.1 200 "), response
    assert b'"applied":1' in response, response
    assert supervisor.process.wait() == 0
    wait_until_gone(children)
    assert not answers(port)
    # Every process ran its shutdown (the booking thread stopped after its batch), none was
    # killed when a grace period ran out.
    output = supervisor.output()
    for pid in children or {supervisor.process.pid}:
        assert f"Finished server process [{pid}]" in output, output


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_on_a_busy_port_says_so_in_one_line(sqlite_url: str, workers: str) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "clientstats",
                "serve",
                "--port",
                str(port),
                "--workers",
                workers,
            ],
            env=server_env(sqlite_url),
            capture_output=True,
            timeout=120,  # only so that a hanging server fails the test instead of hanging it
        )
    assert result.stderr.decode() == (
        f"clientstats: cannot listen on 127.0.0.1:{port}: address already in use\n"
    )
    assert result.stdout == b""
    assert result.returncode == 1
