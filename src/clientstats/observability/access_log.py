"""The access log: one JSON object per response, one per line, on stderr."""

from __future__ import annotations

import os
import time

import orjson


class AccessLog:
    """Writes each line with one `write` to a file descriptor (stderr by default).

    One system call per line and no logging machinery: a cache hit costs microseconds, and
    a line written whole is never interleaved with another process's on the same stderr.
    """

    def __init__(self, fd: int = 2) -> None:
        self.fd = fd
        self._second = -1
        self._second_text = ""

    def write(
        self,
        *,
        started: float,
        method: str,
        path: str,
        status: int,
        seconds: float,
        client: str | None,
        request_id: str,
    ) -> None:
        """Log one request; `started` is its arrival (epoch seconds), `seconds` its duration."""
        line = {
            "time": self._iso(started),
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
            "client": client,
            "request_id": request_id,
        }
        os.write(self.fd, orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE))

    def _iso(self, moment: float) -> str:
        """ISO 8601 in UTC with milliseconds; the seconds part is formatted once per second."""
        second = int(moment)
        if second != self._second:
            self._second = second
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._second_text}.{int((moment - second) * 1000):03d}Z"
