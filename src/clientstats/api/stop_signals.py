"""Noticing that the server was told to stop, whichever supervisor started it.

On SIGTERM or SIGINT, uvicorn stops accepting connections and then waits for the open
ones to finish before it runs the application's shutdown: an event stream never finishes
by itself, so the process would never exit. The application therefore watches the stop
signals too (uvicorn's own handler keeps running after ours), the same under
`clientstats serve`, uvicorn's worker processes or gunicorn's uvicorn workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextlib.contextmanager
def on_stop_signal(callback: Callable[[], None]) -> Iterator[None]:
    """Run `callback` on the running event loop when a stop signal arrives, then pass it on."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may handle signals; its owner stops us some other way
        return
    loop = asyncio.get_running_loop()
    previous: dict[int, Any] = {}

    def handler(signum: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(callback)
        before = previous[signum]
        if callable(before):
            before(signum, frame)
        elif before == signal.SIG_DFL:
            signal.signal(signum, before)
            signal.raise_signal(signum)

    for signum in STOP_SIGNALS:
        previous[signum] = signal.signal(signum, handler)
    try:
        yield
    finally:
        for number, before in previous.items():
            # The server may have put its own handlers back already; leave those alone.
            if signal.getsignal(number) is handler:
                signal.signal(number, before)
