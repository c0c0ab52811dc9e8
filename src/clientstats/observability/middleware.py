"""ASGI middleware around the whole app: request ids, HTTP metrics and the access log.

It wraps the statistics fast path too, so it must stay cheap: the route of a path is
worked out once and remembered, counting is a few dict updates, and with metrics and the
access log off it only adds the request id.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from random import getrandbits
from typing import Any

from clientstats.observability.access_log import AccessLog
from clientstats.observability.http_tallies import BUCKETS, HttpTallies, QuickOks
from clientstats.observability.prepared import Prepared

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

HEADER = b"x-request-id"
# A request id from the outside is passed on only if it is short and printable ASCII
# without spaces, quotes or backslashes: it goes into headers and JSON log lines as it is.
_SANE_ID = re.compile(rb"[\x21\x23-\x5b\x5d-\x7e]{1,128}")
# uuid4: random bits with the version (4) and variant (RFC 4122) bits set.
_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)
MAX_REMEMBERED_PATHS = 10_000


@dataclass(frozen=True, slots=True)
class RouteInfo:
    """What the metrics and the log say about a path: its route template and its client."""

    label: str  # the route template, so label values stay bounded
    client: str | None  # the client permalink the path names, if any


def new_request_id() -> bytes:
    """A uuid4 in hex (not for secrets: the ids only tell requests apart)."""
    return b"%032x" % (getrandbits(128) & _UUID4_CLEAR | _UUID4_SET)


# Request headers that can change an answer prepared for a plain GET.
_NOT_PLAIN = frozenset({b"if-none-match", b"authorization"})
# A response this fast lands in the first latency bucket (bounds are `le`).
_QUICK = BUCKETS[0]


def request_id_of(headers: list[tuple[bytes, bytes]]) -> bytes:
    """The request's own X-Request-ID if it sent a sane one, else a new one."""
    for name, value in headers:
        if name == HEADER:
            if _SANE_ID.fullmatch(value):
                return bytes(value)
            break
    return new_request_id()


class Observability:
    """Adds X-Request-ID to every response; counts and logs each one when asked to."""

    def __init__(
        self,
        app: ASGIApp,
        describe: Callable[[str], RouteInfo],
        *,
        tallies: HttpTallies | None,
        access_log: AccessLog | None,
        answer: Callable[[Scope], tuple[Message, Message] | None] | None = None,
        prepared: Mapping[str, Prepared] | None = None,
    ) -> None:
        self.app = app
        self.describe = describe
        self.tallies = tallies
        self.access_log = access_log
        # The cached responses (start and body message) of the app's fast paths, looked up
        # without awaiting them: a hit skips the app's layers and the wrapped `send`.
        self.answer = answer
        # Answers to plain GETs the fast paths prepared: sent without calling anything.
        self.prepared: Mapping[str, Prepared] = {} if prepared is None else prepared
        self.observing = tallies is not None or access_log is not None
        # Per path: its route, and where its fast 200s are counted (with metrics on).
        self._routes: dict[str, tuple[RouteInfo, QuickOks | None]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        prepared = self.prepared.get(scope["path"])
        if (
            prepared is not None
            and scope["method"] == "GET"
            and prepared.until > time.time()
            and prepared.source.changes_seen == prepared.seen
        ):
            # Inline, not calls: this is every plain statistics hit.
            request_id = None
            for name, value in scope["headers"]:
                if name in _NOT_PLAIN:
                    break
                if name == HEADER and request_id is None:  # the first counts, as in request_id_of
                    request_id = bytes(value) if _SANE_ID.fullmatch(value) else new_request_id()
            else:
                if request_id is None:
                    request_id = new_request_id()
                prepared.hits.count += 1
                opening: Message = {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [*prepared.headers, (HEADER, request_id)],
                }
                try:
                    await send(opening)
                    await send(prepared.body)
                finally:
                    if self.observing:
                        seconds = time.perf_counter() - started
                        known = self._routes.get(scope["path"])
                        quick = None if known is None else known[1]
                        if known is None or quick is None or seconds > _QUICK:
                            self._observe(scope, 200, seconds, request_id)
                        else:
                            quick.count += 1
                            quick.seconds += seconds
                            if self.access_log is not None:
                                self._log(scope, known[0], 200, seconds, request_id)
                return
        await self._answer(scope, receive, send, started)

    async def _answer(self, scope: Scope, receive: Receive, send: Send, started: float) -> None:
        """Every request but a prepared answer: a fast path's cached answer, or the app's.

        Not part of `__call__`: the closure below would cost every prepared answer its cells.
        """
        request_id = request_id_of(scope["headers"])
        id_header = (HEADER, request_id)
        answer = None if self.answer is None else self.answer(scope)
        if answer is not None:
            start, body = answer
            status = start["status"]
            try:
                # A new message: the fast paths send the same prepared one to every request.
                headers = [*start["headers"], id_header]
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send(body)
            finally:
                if self.observing:
                    self._observe(scope, status, time.perf_counter() - started, request_id)
            return
        status = 500  # if the app fails before it starts a response

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message["headers"], id_header]}
            await send(message)

        if not self.observing:
            await self.app(scope, receive, send_with_id)
            return
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self._observe(scope, status, time.perf_counter() - started, request_id)

    def _observe(self, scope: Scope, status: int, seconds: float, request_id: bytes) -> None:
        """Count the response and write its access log line."""
        known = self._routes.get(scope["path"])
        info = self._describe(scope["path"]) if known is None else known[0]
        if self.tallies is not None:
            self.tallies.record(info.label, status, seconds)
        if self.access_log is not None:
            self._log(scope, info, status, seconds, request_id)

    def _log(
        self, scope: Scope, info: RouteInfo, status: int, seconds: float, request_id: bytes
    ) -> None:
        assert self.access_log is not None
        self.access_log.write(
            time.time() - seconds,
            scope["method"],
            scope["path"],
            status,
            seconds,
            info.client,
            request_id,
        )

    def _describe(self, path: str) -> RouteInfo:
        if len(self._routes) >= MAX_REMEMBERED_PATHS:
            self._routes.clear()  # arbitrary paths from the outside cannot grow it for ever
        info = self.describe(path)
        quick = None if self.tallies is None else self.tallies.quick_oks(info.label)
        self._routes[path] = (info, quick)
        return info
