"""The access log: one JSON object per response, one per line, on stderr."""

from __future__ import annotations

import asyncio
import os
import time

import orjson

# Lines are written together up to this size: at most PIPE_BUF bytes, a write to a pipe
# (a container's or journald's stderr) is never interleaved with another process's.
BATCH_BYTES = 4096


class AccessLog:
    """Formats a line per response and writes them to a file descriptor (stderr by default).

    No logging machinery, and on the event loop the lines of one loop iteration go out in
    one `write` at its end (whole lines, none held longer): under load a line per request
    would otherwise be a system call per request.
    """

    def __init__(self, fd: int = 2) -> None:
        self.fd = fd
        self._second = -1
        self._second_text = ""
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
        request_id: str,
    ) -> None:
        """Log one request; `started` is its arrival (epoch seconds), `seconds` its duration."""
        line = orjson.dumps(
            {
                "time": self._iso(started),
                "method": method,
                "path": path,
                "status": status,
                "duration_ms": round(seconds * 1000, 3),
                "client": client,
                "request_id": request_id,
            },
            option=orjson.OPT_APPEND_NEWLINE,
        )
        if self._pending_bytes + len(line) > BATCH_BYTES:
            self.flush()
        if not self._pending:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # no event loop: write at once
                os.write(self.fd, line)
                return
        self._pending.append(line)
        self._pending_bytes += len(line)

    def flush(self) -> None:
        """Write the lines not written yet."""
        if self._pending:
            lines, self._pending, self._pending_bytes = self._pending, [], 0
            os.write(self.fd, b"".join(lines))

    def _iso(self, moment: float) -> str:
        """ISO 8601 in UTC with milliseconds; the seconds part is formatted once per second."""
        second = int(moment)
        if second != self._second:
            self._second = second
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._second_text}.{int((moment - second) * 1000):03d}Z"
