"""How `clientstats serve` runs the API: uvicorn in this process, or N supervised processes.

The socket is bound and listening before any server code runs, so a busy port is one line
of error, not a server's log of starting and stopping again, and every process of
`--workers N` accepts from that one socket.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import sys
from typing import Any

from clientstats.config import Settings
from clientstats.errors import ClientstatsError

# The options of every API process: the fastest event loop and HTTP parser, no access log.
UVICORN_OPTIONS: dict[str, Any] = {
    "loop": "uvloop" if sys.platform != "win32" else "asyncio",
    "http": "httptools",
    "access_log": False,
}
BACKLOG = 2048  # uvicorn's and gunicorn's default


class CannotListen(ClientstatsError):
    """The address to serve on is taken, not this machine's, or not allowed."""


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on host:port, or CannotListen saying why not."""
    ipv6 = ":" in host
    sock = socket.socket(socket.AF_INET6 if ipv6 else socket.AF_INET)
    try:
        if sys.platform != "win32":  # there it would let two servers share the port
            # A restart may bind while the last run's connections linger in TIME_WAIT.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        where = f"[{host}]:{port}" if ipv6 else f"{host}:{port}"
        reason = (exc.strerror or str(exc)).lower()
        raise CannotListen(f"cannot listen on {where}: {reason}") from exc
    return sock


def run(config: Settings, sock: socket.socket, *, workers: int) -> None:
    """Serve on `sock` until SIGTERM or SIGINT, which let the requests in flight finish."""
    if workers == 1:
        from clientstats.api.app import create_app

        serve_in_this_process(create_app(config), sock)
        return
    from clientstats.observability.multiprocess import multiprocess_directory

    # The processes keep their metrics in files there, summed by whichever answers a scrape.
    with multiprocess_directory() if config.metrics else contextlib.nullcontext():
        # Imported only now: prometheus_client picks file-backed metrics at import.
        from clientstats.api.app import create_app
        from clientstats.supervisor import Supervisor

        # Each process builds its own app (engine, caches, booking thread) after the fork.
        Supervisor(lambda: create_app(config), sock, workers=workers).run()


def serve_in_this_process(app: Any, sock: socket.socket) -> None:
    """Serve `app` with uvicorn in this process until SIGTERM or SIGINT; exits 0 then."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, log_level="info", **UVICORN_OPTIONS))
    # Once stopped, uvicorn raises the stop signal again with the handler it found; let that
    # be KeyboardInterrupt for SIGTERM too, so that a stop asked for exits 0 (as --workers N).
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.default_int_handler)
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[sock])
    if not server.started:
        sys.exit(3)  # the app failed to start; uvicorn has logged why (uvicorn's own status)
