"""The access log: one JSON object per response, one per line, on stderr."""

from __future__ import annotations

import asyncio
import os
import time

import orjson

# Lines are written together up to this size: at most PIPE_BUF bytes, a write to a pipe
# (a container's or journald's stderr) is never interleaved with another process's.
BATCH_BYTES = 4096
# A line waits at most this long (seconds) for the lines written with it.
BATCH_SECONDS = 0.05
MAX_REMEMBERED = 10_000
_LINE = b'{"time":"%s.%03dZ","method":%s,%s,"status":%d,"duration_ms":%.3f,"request_id":"%s"}\n'


class AccessLog:
    """Formats a line per response and writes them to a file descriptor (stderr by default).

    Cheap, as it runs for every cache hit: no logging machinery, the JSON of a path (and of
    its client) is made once per distinct path, and on the event loop the lines go out
    together, at the latest BATCH_SECONDS after the first of them, in one `write`.
    """

    def __init__(self, fd: int = 2) -> None:
        self.fd = fd
        self._second = -1
        self._second_text = b""
        # The client of a path is worked out from the path alone, so the path is the key.
        self._fragments: dict[str, bytes] = {}
        self._methods: dict[str, bytes] = {}
        self._pending: list[bytes] = []
        self._pending_bytes = 0

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
        second = int(started)
        if second != self._second:
            self._second = second
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)).encode()
        fragment = self._fragments.get(path)
        if fragment is None:
            fragment = self._fragment(path, client)
        encoded_method = self._methods.get(method)
        if encoded_method is None:
            encoded_method = orjson.dumps(method)
            if len(self._methods) < 64:  # methods are few, unless a client invents them
                self._methods[method] = encoded_method
        line = _LINE % (
            self._second_text,
            int(started * 1000) % 1000,
            encoded_method,
            fragment,
            status,
            seconds * 1000,
            request_id,  # printable ASCII without quotes or backslashes (see middleware)
        )
        pending = self._pending
        if not pending:
            try:
                asyncio.get_running_loop().call_later(BATCH_SECONDS, self.flush)
            except RuntimeError:  # no event loop: write at once
                os.write(self.fd, line)
                return
        elif self._pending_bytes + len(line) > BATCH_BYTES:
            self.flush()
            pending = self._pending  # a new batch; the scheduled flush will write it
        pending.append(line)
        self._pending_bytes += len(line)

    def _fragment(self, path: str, client: str | None) -> bytes:
        if len(self._fragments) >= MAX_REMEMBERED:
            self._fragments.clear()  # arbitrary paths from the outside cannot grow it for ever
        encoded = orjson.dumps({"path": path, "client": client})[1:-1]
        self._fragments[path] = encoded
        return encoded

    def flush(self) -> None:
        """Write the lines not written yet."""
        if self._pending:
            lines, self._pending, self._pending_bytes = self._pending, [], 0
            os.write(self.fd, b"".join(lines))
