"""The baseline of bench_cache_hit.py: a minimal raw ASGI app answering one fixed response.

It sends the pre-serialized body and headers that `clientstats serve` sent for the same
request, under exactly the server options `clientstats serve` uses (uvicorn, httptools,
uvloop, access log off, log level info, one worker). It is the ceiling a cache hit of the
statistics endpoint can reach on this server stack: no routing, no cache lookup, no header
building per request.

Run by bench_cache_hit.py as `python benchmarks/raw_asgi.py --port P --response FILE`, where
FILE is JSON: {"body": "<text>", "headers": [["name", "value"], ...]}.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Message, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]


def make_app(body: bytes, headers: list[tuple[bytes, bytes]]) -> ASGIApp:
    """An ASGI app that answers every HTTP request with `body` and `headers`."""
    start = {"type": "http.response.start", "status": 200, "headers": headers}
    content = {"type": "http.response.body", "body": body}

    async def app(
        scope: Message,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await send(start)
        await send(content)

    return app


def main() -> None:
    """Serve the recorded response with the server options of `clientstats serve`."""
    from clientstats.serving import listen, serve_in_this_process

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--response", type=Path, required=True)
    args = parser.parse_args()
    recorded = json.loads(args.response.read_text())
    headers = [(name.encode(), value.encode()) for name, value in recorded["headers"]]
    # What `clientstats serve` calls for one process, so the server stack is identical.
    serve_in_this_process(
        make_app(recorded["body"].encode(), headers), listen(args.host, args.port)
    )


if __name__ == "__main__":
    main()
