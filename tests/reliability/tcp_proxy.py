"""A threaded TCP proxy for fault tests, plus the helpers they share (Redis, schemas, logs)."""

from __future__ import annotations

import os
import select
import socket
import struct
import threading
from contextlib import suppress
from types import TracebackType
from typing import IO
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from sqlalchemy.engine import make_url

from clientstats.cache.redis_cache import KEY_PREFIX
from tests.conftest import POSTGRES_URL

REDIS_URL = os.environ.get("CLIENTSTATS_TEST_REDIS_URL", "redis://127.0.0.1:6379/3")
_redis_state: dict[str, str | None] = {}

FORWARD, PAUSED, REFUSING = "forward", "paused", "refusing"


def _redis_unreachable() -> str | None:
    """None if the test Redis answers, else why not."""
    if "reason" not in _redis_state:
        try:
            client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
            client.ping()
            client.close()
            _redis_state["reason"] = None
        except Exception as exc:
            _redis_state["reason"] = f"Redis at {REDIS_URL} unreachable: {exc}"
    return _redis_state["reason"]


def require_redis() -> None:
    """Skip outside CI when Redis is unreachable; under CI that is a failure."""
    reason = _redis_unreachable()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def redis_client() -> redis.Redis:
    """A direct client of the test Redis (not through any proxy)."""
    return redis.Redis.from_url(REDIS_URL, socket_timeout=5, socket_connect_timeout=5)


def redis_address() -> tuple[str, int]:
    """Host and port of the test Redis, for a proxy in front of it."""
    parts = urlsplit(REDIS_URL)
    return parts.hostname or "127.0.0.1", parts.port or 6379


def redis_url_via(port: int) -> str:
    """The test Redis URL (same database number) through a proxy on `port`."""
    return urlunsplit(urlsplit(REDIS_URL)._replace(netloc=f"127.0.0.1:{port}"))


def delete_cache_keys(client: redis.Redis, permalinks: list[str]) -> None:
    """Delete the statistics keys of these clients, and nothing else."""
    for permalink in permalinks:
        keys = list(client.scan_iter(match=f"{KEY_PREFIX}{permalink}:*", count=1000))
        if keys:
            client.delete(*keys)


def cache_versions(client: redis.Redis, permalink: str) -> set[int]:
    """The versions of a client's statistics that the shared cache holds."""
    prefix = f"{KEY_PREFIX}{permalink}:"
    return {
        int(key.decode().removeprefix(prefix))
        for key in client.scan_iter(match=f"{prefix}*", count=1000)
    }


def schema_url(schema: str, *, port: int | None = None) -> str:
    """The test PostgreSQL URL of a schema, optionally through a proxy on `port`."""
    url = make_url(POSTGRES_URL)
    if port is not None:
        url = url.set(host="127.0.0.1", port=port)
    return f"{url.render_as_string(hide_password=False)}?options=-csearch_path%3D{schema}"


def postgres_address() -> tuple[str, int]:
    """Host and port of the test PostgreSQL, for a proxy in front of it."""
    url = make_url(POSTGRES_URL)
    return url.host or "127.0.0.1", url.port or 5432


class OutputLog:
    """Reads a child process's output in a thread, so that a full pipe never blocks it."""

    def __init__(self, stream: IO[bytes] | None) -> None:
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[bytes] | None) -> None:
        if stream is None:
            return
        for line in stream:
            with self._lock:
                self._lines.append(line.decode(errors="replace"))

    def lines(self) -> list[str]:
        """Every line read so far."""
        with self._lock:
            return list(self._lines)

    def text(self) -> str:
        """Everything read so far."""
        return "".join(self.lines())


def _reset(sock: socket.socket) -> None:
    """Close with a TCP reset, as a crashed or restarted server's kernel would."""
    with suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target; can pause traffic, drop and refuse connections.

    - `pause()`: new connections are accepted and existing ones kept, but no byte is
      relayed in either direction (a hung server); `resume()` relays again.
    - `refuse()`: every open connection is reset and new ones are reset at once (a server
      that is down); `resume()` accepts again.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self.mode = FORWARD
        self.accepted = 0
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, name="tcp-proxy", daemon=True)
        self._thread.start()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def connections(self) -> int:
        """How many proxied connections are open right now."""
        with self._lock:
            return len(self._pairs)

    def pause(self) -> None:
        """Stop relaying bytes; connections stay open and new ones are accepted."""
        self.mode = PAUSED

    def refuse(self) -> None:
        """Reset every open connection and every new one."""
        self.mode = REFUSING
        self.drop_all()

    def resume(self) -> None:
        """Relay normally again."""
        self.mode = FORWARD

    def drop_all(self) -> None:
        """Reset every open connection on both sides."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for client, upstream in pairs:
            _reset(client)
            _reset(upstream)

    def close(self) -> None:
        """Stop listening and drop every connection."""
        self._stopping.set()
        self._thread.join(timeout=5)
        self._listener.close()
        self.drop_all()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            if self.mode == REFUSING:
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                self._pairs.append((client, upstream))
            threading.Thread(
                target=self._relay, args=(client, upstream), name="tcp-proxy-relay", daemon=True
            ).start()

    def _relay(self, client: socket.socket, upstream: socket.socket) -> None:
        peers = {client: upstream, upstream: client}
        try:
            while not self._stopping.is_set():
                if self.mode != FORWARD:
                    # Leave bytes unread in the kernel: the other side sees a silent peer.
                    self._stopping.wait(0.02)
                    if self.mode == REFUSING:
                        return
                    continue
                readable, _, _ = select.select(list(peers), [], [], 0.05)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    peers[sock].sendall(data)
        except (OSError, ValueError):
            return
        finally:
            with self._lock:
                if (client, upstream) in self._pairs:
                    self._pairs.remove((client, upstream))
                    client.close()
                    upstream.close()
