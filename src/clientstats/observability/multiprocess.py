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
from pathlib import Path

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
PREFIX = "clientstats-metrics-"  # then the supervising process's pid


def remove_abandoned(parent: str | None = None) -> None:
    """Remove the directories of supervisors that are gone (killed before they could)."""
    for path in Path(parent or tempfile.gettempdir()).glob(f"{PREFIX}*-*"):
        pid = path.name.removeprefix(PREFIX).split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


@contextlib.contextmanager
def multiprocess_directory() -> Iterator[str]:
    """A fresh private PROMETHEUS_MULTIPROC_DIR for the processes started inside; removed after.

    Fresh, so no file of an earlier run (or another server) is summed in; only the process
    that made it removes it (forked children unwind through here too). A supervisor killed
    outright cannot: the next one to start removes what it left.
    """
    owner = os.getpid()
    remove_abandoned()
    path = tempfile.mkdtemp(prefix=f"{PREFIX}{owner}-")
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
