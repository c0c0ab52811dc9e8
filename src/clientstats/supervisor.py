"""`serve --workers N`: gunicorn's arbiter over uvicorn worker processes that die with it.

gunicorn forks the workers (quick to start: everything is imported already), restarts one
that dies or hangs, stops them gracefully on SIGTERM, and gives up with a non-zero status
when they cannot start. What it does not do for uvicorn workers is notice that the arbiter
itself is gone: `UvicornWorker` only touches its heartbeat file and never compares its
parent pid, so after a SIGKILL of the arbiter (the OOM killer) they serve and book on,
holding the port. Each worker therefore asks Linux for SIGTERM when its parent dies.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from uvicorn_worker import UvicornWorker

from clientstats.observability.multiprocess import process_died
from clientstats.serving import UVICORN_OPTIONS

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# Seconds a worker may take to start on a loaded machine (and to stay silent at most before
# it counts as hung), and that a graceful stop waits for requests in flight.
WORKER_TIMEOUT = 30
KEEPALIVE = 5  # uvicorn's default for an idle keep-alive connection; gunicorn's is 2


def end_with_parent(parent: int) -> None:
    """Have Linux send this process SIGTERM when `parent`, its parent, dies."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:  # it died before the request was made: no signal will come
        os.kill(os.getpid(), signal.SIGTERM)


class ApiWorker(UvicornWorker):  # type: ignore[misc]
    """A uvicorn worker process with the options of `serve`, ending with its arbiter."""

    CONFIG_KWARGS = UVICORN_OPTIONS

    def init_signals(self) -> None:
        """gunicorn's signal setup, then the parent-death signal (SIGTERM: a graceful stop)."""
        super().init_signals()
        # The parent is the thread that forked this process: the arbiter's only, main thread.
        end_with_parent(self.ppid)


class _Arbiter(Arbiter):  # type: ignore[misc]
    def handle_int(self) -> None:
        """SIGINT stops gracefully, as SIGTERM does.

        gunicorn's quick stop sends the workers SIGQUIT, which uvicorn workers do not act
        on: they would serve on until killed when the grace period runs out, without their
        shutdown (the booking thread would not finish its batch).
        """
        self.handle_term()


def _child_exit(_arbiter: Any, worker: Any) -> None:
    """A worker is gone: its live gauges go with it (its counted totals stay)."""
    process_died(worker.pid)


class Supervisor(BaseApplication):  # type: ignore[misc]
    """gunicorn configured in code (no config file, no GUNICORN_CMD_ARGS) on a bound socket."""

    def __init__(self, build_app: Callable[[], Any], sock: socket.socket, *, workers: int) -> None:
        self.build_app = build_app
        self.options = {
            "bind": [f"fd://{sock.fileno()}"],
            "workers": workers,
            "worker_class": ApiWorker,
            "timeout": WORKER_TIMEOUT,
            "graceful_timeout": WORKER_TIMEOUT,
            "keepalive": KEEPALIVE,
            # A control socket at one shared default path would collide between servers.
            "control_socket_disable": True,
            "child_exit": _child_exit,
        }
        super().__init__()

    def load_config(self) -> None:
        """Apply the settings above to gunicorn's configuration."""
        for name, value in self.options.items():
            self.cfg.set(name, value)

    def load(self) -> Any:
        """The ASGI app, built in each worker process."""
        return self.build_app()

    def run(self) -> None:
        """Supervise the workers until SIGTERM or SIGINT; exits the process."""
        _Arbiter(self).run()
