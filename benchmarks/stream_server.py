"""The server of bench_stream.py: what `clientstats serve` runs, plus database read counters.

It builds the app with `create_app` from the CLIENTSTATS_* settings and serves it with the
calls `clientstats serve` makes for one process (`serving.listen`,
`serving.serve_in_this_process`: uvicorn, httptools, uvloop, access log off). Two counters
are added, and nothing else changes:

- `statistics_reads`: calls of the function that reads a client's figures from the
  database (`get_snapshot_or_raise` as the live cache calls it on a miss);
- `statements`: every SQL statement the process sends (SQLAlchemy's
  `before_cursor_execute` on every engine), the change feed's polls included.

`GET /_bench/counters` answers them as JSON. Run by bench_stream.py as
`python benchmarks/stream_server.py --port P`.
"""

from __future__ import annotations

import argparse
import json
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

import clientstats.services.live_statistics as live_statistics
from clientstats.api.app import create_app
from clientstats.config import settings

Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Message, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]

COUNTS = {"statistics_reads": 0, "statements": 0}
_LOCK = threading.Lock()  # reads run in worker threads
_read_figures = live_statistics.get_snapshot_or_raise


def _counted_read(engine: Engine, permalink: str) -> Any:
    with _LOCK:
        COUNTS["statistics_reads"] += 1
    return _read_figures(engine, permalink)


def _count_statement(*_: Any) -> None:
    with _LOCK:
        COUNTS["statements"] += 1


def with_counters(app: ASGIApp) -> ASGIApp:
    """The app, with GET /_bench/counters in front of it."""

    async def counted(
        scope: Message,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] == "http" and scope["path"] == "/_bench/counters":
            with _LOCK:
                body = json.dumps(COUNTS).encode()
            headers = [(b"content-type", b"application/json")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await app(scope, receive, send)

    return counted


def main() -> None:
    """Serve the product app with counters, as `clientstats serve` serves it."""
    from clientstats.serving import listen, serve_in_this_process

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    live_statistics.get_snapshot_or_raise = _counted_read  # type: ignore[assignment]
    event.listen(Engine, "before_cursor_execute", _count_statement)
    sock = listen(args.host, args.port)
    serve_in_this_process(with_counters(create_app(settings())), sock)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
