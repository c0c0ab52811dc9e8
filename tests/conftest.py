"""Shared fixtures: databases (SQLite and PostgreSQL), engines and real running servers."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, create_engine, text

from clientstats.storage.database import make_engine
from clientstats.storage.schema import ensure_schema

POSTGRES_URL = os.environ.get(
    "CLIENTSTATS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
ADMIN_TOKEN = "test-admin-token-0123456789abcdef"
_postgres_state: dict[str, str | None] = {}


def _postgres_unreachable() -> str | None:
    """None if the test PostgreSQL answers, else why not."""
    if "reason" not in _postgres_state:
        try:
            probe = create_engine(POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://"))
            with probe.connect() as conn:
                conn.execute(text("SELECT 1"))
            probe.dispose()
            _postgres_state["reason"] = None
        except Exception as exc:
            _postgres_state["reason"] = f"PostgreSQL at {POSTGRES_URL} unreachable: {exc}"
    return _postgres_state["reason"]


def require_postgres() -> None:
    """Skip outside CI when PostgreSQL is unreachable; under CI that is a failure."""
    reason = _postgres_unreachable()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def schema_url(schema: str) -> str:
    """The test PostgreSQL URL with `schema` first on the search path."""
    return f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"


@contextlib.contextmanager
def postgres_schema() -> Iterator[str]:
    """A fresh, empty PostgreSQL schema (skips or fails like require_postgres); dropped after."""
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://"))
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield schema
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@contextlib.contextmanager
def fresh_database(kind: str, directory: Path) -> Iterator[str]:
    """A new, empty database: a SQLite file in `directory`, or a PostgreSQL schema."""
    if kind == "sqlite":
        yield f"sqlite:///{directory / f'clientstats-{uuid.uuid4().hex[:8]}.db'}"
        return
    with postgres_schema() as schema:
        yield schema_url(schema)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database of each kind: a SQLite file, or a PostgreSQL schema."""
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on a fresh database with the current schema."""
    eng = make_engine(database_url)
    ensure_schema(eng)
    yield eng
    eng.dispose()


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(database_url: str, **extra: str) -> dict[str, str]:
    """The environment of a test server process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLIENTSTATS_")}
    env.update(
        CLIENTSTATS_DATABASE_URL=database_url,
        CLIENTSTATS_ADMIN_TOKEN=ADMIN_TOKEN,
        CLIENTSTATS_FRESHNESS_POLL_INTERVAL="0.1",
        **extra,
    )
    return env


class RunningServer:
    """A `clientstats serve` process on a free port."""

    def __init__(self, database_url: str, **env: str) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "clientstats", "serve", "--port", str(self.port)],
            env=server_env(database_url, **env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self._wait_until_live()

    def _wait_until_live(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self.process.stdout.read().decode() if self.process.stdout else ""
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{output}")
            try:
                if httpx.get(f"{self.base_url}/health/live", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError("server did not come up within 30 s")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def start_server() -> Iterator[Callable[..., RunningServer]]:
    """Start real servers on a database; all are stopped after the test."""
    servers: list[RunningServer] = []

    def start(database_url: str, **env: str) -> RunningServer:
        server = RunningServer(database_url, **env)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
