"""Chunks of an import's lines: order, numbering, when the helper thread reads, and errors."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime

import pytest

from clientstats.services.line_chunks import SWITCH_INTERVAL_S, LineChunks, Numbered


def parse(lines: Numbered, now: datetime) -> list[str]:
    return [raw.decode().upper() for _, raw in lines]


class Source:
    """Lines that record which thread read each of them and how many were read."""

    def __init__(self, count: int, fail_at: int | None = None) -> None:
        self.count = count
        self.fail_at = fail_at
        self.read = 0
        self.readers: set[str] = set()

    def __iter__(self) -> Iterator[bytes]:
        for number in range(1, self.count + 1):
            if number == self.fail_at:
                raise OSError(f"cannot read line {number}")
            self.read = number
            self.readers.add(threading.current_thread().name)
            yield f"line {number}".encode()


@pytest.mark.parametrize("ahead", [False, True])
def test_every_line_once_in_order_with_its_number(ahead: bool) -> None:
    source = Source(10)
    with LineChunks(source, 4, parse, ahead=ahead) as chunks:
        got = [(chunk.lines, chunk.parsed, chunk.last_line) for chunk in chunks]
    assert [len(lines) for lines, _, _ in got] == [4, 4, 2]
    assert [last for _, _, last in got] == [4, 8, 10]
    numbered = [pair for lines, _, _ in got for pair in lines]
    assert numbered == [(n, f"line {n}".encode()) for n in range(1, 11)]
    assert [text for _, parsed, _ in got for text in parsed] == [f"LINE {n}" for n in range(1, 11)]


def test_in_order_mode_reads_a_chunk_only_when_asked_for_it_in_this_thread() -> None:
    source = Source(10)
    with LineChunks(source, 4, parse, ahead=False) as chunks:
        iterator = iter(chunks)
        next(iterator)
        chunks.read_next()  # nothing to start: reading waits for the next step
        assert source.read == 4
        next(iterator)
        assert source.read == 8
    assert source.readers == {threading.current_thread().name}


def test_ahead_the_next_chunk_is_read_in_the_helper_only_after_read_next() -> None:
    source = Source(12)
    with LineChunks(source, 4, parse, ahead=True) as chunks:
        iterator = iter(chunks)
        first = next(iterator)
        assert first.last_line == 4
        # The helper waits: the importer is still booking this chunk.
        assert source.read == 4
        chunks.read_next()
        second = next(iterator)
        assert second.last_line == 8
        assert source.read == 8  # the third chunk waits for the next read_next
        third = next(iterator)  # moving on without read_next starts the read as well
        assert third.last_line == 12
        assert list(iterator) == []
    assert source.readers and threading.current_thread().name not in source.readers


def test_ahead_stopping_early_reads_no_further_chunk() -> None:
    source = Source(100)
    with LineChunks(source, 4, parse, ahead=True) as chunks:
        for chunk in chunks:
            assert chunk.last_line == 4
            break
        time.sleep(0.05)  # time enough for a read that stopping would have started
        assert source.read == 4
    assert source.read == 4


@pytest.mark.parametrize("ahead", [False, True])
def test_a_read_error_reaches_the_importer_after_the_chunks_before_it(ahead: bool) -> None:
    source = Source(20, fail_at=7)
    seen = []
    with (
        pytest.raises(OSError, match="cannot read line 7"),
        LineChunks(source, 4, parse, ahead=ahead) as chunks,
    ):
        for chunk in chunks:
            seen.append(chunk.last_line)
            chunks.read_next()
    assert seen == [4]


def test_ahead_shortens_the_switch_interval_only_while_it_runs() -> None:
    before = sys.getswitchinterval()
    with LineChunks(Source(3), 2, parse, ahead=True) as chunks:
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_S)
        assert sum(len(chunk.lines) for chunk in chunks) == 3
    assert sys.getswitchinterval() == before


def test_no_lines_no_chunks() -> None:
    for ahead in (False, True):
        with LineChunks([], 4, parse, ahead=ahead) as chunks:
            assert list(chunks) == []
