"""The private directory where the processes of `serve --workers N` keep their metrics.

Stdlib only: the directory must be named before prometheus_client is imported, since it
chooses between in-memory and file-backed values at import.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"


@contextlib.contextmanager
def multiprocess_directory() -> Iterator[str]:
    """A fresh private PROMETHEUS_MULTIPROC_DIR for the processes started inside; removed after.

    Fresh, so no file of an earlier run (or another server) is summed in; only the process
    that made it removes it (forked children unwind through here too).
    """
    owner = os.getpid()
    path = tempfile.mkdtemp(prefix="clientstats-metrics-")
    os.environ[MULTIPROCESS_DIR] = path
    try:
        yield path
    finally:
        if os.getpid() == owner:
            shutil.rmtree(path, ignore_errors=True)
            os.environ.pop(MULTIPROCESS_DIR, None)


def process_died(pid: int) -> None:
    """Drop a dead process's live gauges; its counters stay in the sums."""
    if MULTIPROCESS_DIR in os.environ:
        from prometheus_client.multiprocess import mark_process_dead

        mark_process_dead(pid)  # type: ignore[no-untyped-call]
