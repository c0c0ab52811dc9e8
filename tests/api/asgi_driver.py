"""Drive an ASGI app in-process: its lifespan, and requests seen as the raw messages it sends."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

ASGIApp = Any


@dataclass(frozen=True)
class Answer:
    """What the app sent: the status, the headers in order and the whole body."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: bytes) -> bytes | None:
        found = [value for key, value in self.headers if key == name]
        return found[0] if found else None

    def without(self, name: bytes) -> Answer:
        """The same answer without the headers of this name."""
        return Answer(self.status, [h for h in self.headers if h[0] != name], self.body)


@contextlib.asynccontextmanager
async def running(app: ASGIApp) -> AsyncIterator[None]:
    """The app between its lifespan's startup and shutdown."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    task = asyncio.create_task(app(scope, inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    started = await outbox.get()
    assert started["type"] == "lifespan.startup.complete", started
    try:
        yield
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await outbox.get()
        await task


async def call(
    app: ASGIApp,
    method: str,
    target: str,
    headers: Iterable[tuple[str, str]] = (),
    *,
    body: bytes = b"",
    host: str | None = "testserver",
) -> Answer:
    """One HTTP request as uvicorn would pass it on (Host first, header names lower-cased)."""
    path, _, query = target.partition("?")
    raw = [(b"host", host.encode())] if host is not None else []
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": unquote(path),
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": raw,
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
    }
    messages: list[dict[str, Any]] = []
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.Event().wait()  # no more: the client waits for the answer
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    await app(scope, receive, send)
    start = messages[0]
    assert start["type"] == "http.response.start"
    headers_sent = [(bytes(k), bytes(v)) for k, v in start["headers"]]
    content = b"".join(m.get("body", b"") for m in messages[1:])
    return Answer(start["status"], headers_sent, content)
