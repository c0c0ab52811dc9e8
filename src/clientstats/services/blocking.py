"""Running blocking database work from async code, bounded by the database timeout."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio
from anyio import to_thread

from clientstats.errors import ServiceUnavailable

T = TypeVar("T")


async def run_blocking(timeout: float, function: Callable[[], T]) -> T:
    """Run `function` in a worker thread; a 503 if it has not finished within `timeout`.

    A database that stops answering leaves its open connections waiting forever; the
    request must not. The abandoned thread finishes (or fails) on its own later.
    """
    try:
        with anyio.fail_after(timeout):
            return await to_thread.run_sync(function, abandon_on_cancel=True)
    except TimeoutError:
        raise ServiceUnavailable("The database did not answer in time; retry") from None
