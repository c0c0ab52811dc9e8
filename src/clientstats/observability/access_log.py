"""The access log: one JSON object per response, one per line, on stderr."""

from __future__ import annotations

import asyncio
import os
import time

import orjson

# Lines are written together up to this size: at most PIPE_BUF bytes, a write to a pipe
# (a container's or journald's stderr) is never interleaved with another process's.
BATCH_BYTES = 4096
# A line waits at most this long (seconds) for the lines written with it...
BATCH_SECONDS = 0.05
# ...or until this many wait (then they go out at once, in writes of at most BATCH_BYTES).
BATCH_LINES = 64
MAX_REMEMBERED = 10_000
_LINE = b'{"time":"%s.%03dZ","method":%s,%s,"status":%d,"duration_ms":%.3f,"request_id":"%s"}\n'

# What a response leaves to be formatted: arrival (epoch seconds), method, the JSON of its
# path and client, status, duration (seconds), request id.
_Entry = tuple[float, str, bytes, int, float, bytes]


class AccessLog:
    """Formats a line per response and writes them to a file descriptor (stderr by default).

    Cheap, as it runs for every cache hit: no logging machinery, the JSON of a path (and of
    its client) is made once per distinct path, and on the event loop a response only leaves
    its fields; the lines are formatted and written together, at the latest BATCH_SECONDS
    after the first of them, a batch of lines at a time.
    """

    def __init__(self, fd: int = 2) -> None:
        self.fd = fd
        self._second = -1
        self._second_text = b""
        # The client of a path is worked out from the path alone, so the path is the key.
        self._fragments: dict[str, bytes] = {}
        self._methods: dict[str, bytes] = {}
        self._pending: list[_Entry] = []

    def write(
        self,
        started: float,
        method: str,
        path: str,
        status: int,
        seconds: float,
        client: str | None,
        request_id: bytes,
    ) -> None:
        """Log one request; `started` is its arrival (epoch seconds), `seconds` its duration."""
        fragment = self._fragments.get(path)
        if fragment is None:
            fragment = self._fragment(path, client)
        entry = (started, method, fragment, status, seconds, request_id)
        pending = self._pending
        if not pending:
            try:
                asyncio.get_running_loop().call_later(BATCH_SECONDS, self.flush)
            except RuntimeError:  # no event loop: write at once
                os.write(self.fd, self._line(entry))
                return
        pending.append(entry)
        if len(pending) >= BATCH_LINES:
            self.flush()  # the scheduled flush finds the next batch

    def _fragment(self, path: str, client: str | None) -> bytes:
        if len(self._fragments) >= MAX_REMEMBERED:
            self._fragments.clear()  # arbitrary paths from the outside cannot grow it for ever
        encoded = orjson.dumps({"path": path, "client": client})[1:-1]
        self._fragments[path] = encoded
        return encoded

    def _line(self, entry: _Entry) -> bytes:
        started, method, fragment, status, seconds, request_id = entry
        second = int(started)
        if second != self._second:
            self._second = second
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)).encode()
        encoded_method = self._methods.get(method)
        if encoded_method is None:
            encoded_method = orjson.dumps(method)
            if len(self._methods) < 64:  # methods are few, unless a client invents them
                self._methods[method] = encoded_method
        return _LINE % (
            self._second_text,
            int(started * 1000) % 1000,
            encoded_method,
            fragment,
            status,
            seconds * 1000,
            request_id,  # printable ASCII without quotes or backslashes (see middleware)
        )

    def flush(self) -> None:
        """Format and write the lines not written yet, at most BATCH_BYTES per write."""
        if not self._pending:
            return
        entries, self._pending = self._pending, []
        chunk: list[bytes] = []
        size = 0
        for entry in entries:
            line = self._line(entry)
            if chunk and size + len(line) > BATCH_BYTES:
                os.write(self.fd, b"".join(chunk))
                chunk, size = [], 0
            chunk.append(line)
            size += len(line)
        os.write(self.fd, b"".join(chunk))
