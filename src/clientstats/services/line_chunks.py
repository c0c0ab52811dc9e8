"""An import's lines in numbered, parsed chunks; on request, the next chunk parsed meanwhile.

On PostgreSQL a batch's rows, aggregates and commit are the server's work: the importer only
waits for it, in the driver, without holding the interpreter's lock. Reading and parsing
the next chunk (JSON decoding and the checks of every field, about a fifth of an import's
CPU time) can then run in a helper thread at no cost to the batch. It must start only then:
started any earlier it would take turns on the interpreter with the booking of the current
batch, finish sooner, and leave nothing to do while the server works.

So a chunk is read in the helper thread once the importer calls `read_next` (just before
it sends the current batch's writes) or moves on to the next chunk, whichever comes first.
Lines are read by one thread at a time, in order; a chunk's time (`now`) is taken when it is
parsed; an error reading the lines reaches the importer when it asks for that chunk.

On SQLite the database's work runs in the importing thread itself, releasing the lock row
by row; a parsing thread would keep it waiting for the lock after every row. There the
chunks are read in the importing thread, when asked for (`ahead=False`).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from types import TracebackType
from typing import Generic, TypeVar

Parsed = TypeVar("Parsed")
Numbered = list[tuple[int, bytes]]

# How long the helper thread may keep the interpreter before the importing thread, back
# from the database, gets it (Python's default is 5 ms; a batch makes a few dozen waits).
SWITCH_INTERVAL_S = 0.0005


@dataclass(frozen=True, slots=True)
class Chunk(Generic[Parsed]):
    """Consecutive numbered lines, what they parsed to, and the time they were parsed."""

    lines: Numbered
    parsed: list[Parsed]
    now: datetime

    @property
    def last_line(self) -> int:
        return self.lines[-1][0]


class LineChunks(Generic[Parsed]):
    """Iterate over chunks of `size` lines; use as a context manager (it may own a thread)."""

    def __init__(
        self,
        lines: Iterable[bytes],
        size: int,
        parse: Callable[[Numbered, datetime], list[Parsed]],
        *,
        ahead: bool,
    ) -> None:
        self._numbered = enumerate(lines, start=1)
        self._size = size
        self._parse = parse
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="import-parse") if ahead else None
        self._go = threading.Event()
        self._stopped = False
        self._next: Future[Chunk[Parsed] | None] | None = None
        self._switch_interval = sys.getswitchinterval()

    def __enter__(self) -> LineChunks[Parsed]:
        if self._pool is not None:
            sys.setswitchinterval(SWITCH_INTERVAL_S)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stopped = True
        self._go.set()  # a waiting read returns without reading
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            sys.setswitchinterval(self._switch_interval)

    def read_next(self) -> None:
        """Let the helper thread read and parse the next chunk now (nothing without one)."""
        self._go.set()

    def __iter__(self) -> Iterator[Chunk[Parsed]]:
        if self._pool is None:
            while (chunk := self._read()) is not None:
                yield chunk
            return
        self._next = self._pool.submit(self._read)
        while (chunk := self._next.result()) is not None:
            self._go = go = threading.Event()
            self._next = self._pool.submit(self._read_when_asked, go)
            yield chunk  # closed here (the importer stopped): the read waits for __exit__
            go.set()

    def _read_when_asked(self, go: threading.Event) -> Chunk[Parsed] | None:
        go.wait()
        return None if self._stopped else self._read()

    def _read(self) -> Chunk[Parsed] | None:
        lines = list(islice(self._numbered, self._size))
        if not lines:
            return None
        now = datetime.now(UTC)
        return Chunk(lines, self._parse(lines, now), now)
