"""A small Server-Sent Events reader over real HTTP, for the stream tests."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx

# Generous: a loaded 2-core machine may take seconds; the tests wait for facts, not speed.
WAIT = 20.0


@dataclass
class Block:
    """One block of the stream: an event (with fields) or a comment."""

    fields: dict[str, str] = field(default_factory=dict)
    comments: list[str] = field(default_factory=list)

    @property
    def is_event(self) -> bool:
        return "data" in self.fields


class EventStream:
    """An open stream; blocks are read one at a time, as the server sends them."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.client = httpx.Client(timeout=httpx.Timeout(10, read=60))
        self.response = self.client.send(
            self.client.build_request("GET", url, headers=headers), stream=True
        )
        self._lines: Iterator[str] = self.response.iter_lines()
        self.ended = False

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.response.close()
        self.client.close()

    def block(self) -> Block | None:
        """The next block; None when the server ended the stream cleanly."""
        current = Block()
        for line in self._lines:
            if not line:
                if current.fields or current.comments:
                    return current
                continue
            if line.startswith(":"):
                current.comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            current.fields[name] = value.removeprefix(" ")
        self.ended = True
        return None

    def next_event(self, wait: float = WAIT) -> Block:
        """The next event (comments and retry hints skipped); fails after `wait` seconds."""
        event = self.read_until(lambda block: block.is_event, wait)
        assert event is not None, "the stream ended before an event"
        return event

    def read_until(self, done: Callable[[Block], bool], wait: float = WAIT) -> Block | None:
        """Read until a block satisfies `done` (returned); None if the stream ended first."""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            block = self.block()
            if block is None or done(block):
                return block
        raise AssertionError(f"nothing of the kind within {wait} s")

    def blocks_for(self, seconds: float) -> list[Block]:
        """Every block that arrives in the next `seconds` (the server's heartbeats keep it
        coming, so this returns soon after)."""
        deadline = time.monotonic() + seconds
        seen = []
        while time.monotonic() < deadline:
            block = self.block()
            if block is None:
                break
            seen.append(block)
        return seen
