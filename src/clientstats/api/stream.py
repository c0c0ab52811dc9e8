"""The live statistics stream: Server-Sent Events with a client's figures, pushed on change.

`GET /{locale}/api_v4/clients/{client_id}/project_statistics/stream` has the visibility and
CORS of the statistics endpoint. It sends the current figures at once (unless
`Last-Event-ID` names them), the new ones after every change (through the process's
StreamHub), and a comment every heartbeat interval. Like the statistics endpoint it is a
bare ASGI handler in front of the Starlette app: an event reaches thousands of streams at
once, and each of them should cost one `send` straight to the server, not a pass through
the framework's wrappers.
"""

from __future__ import annotations

import asyncio
import logging
import random
import resource

from starlette.datastructures import State
from starlette.requests import Request
from starlette.responses import Response

from clientstats.api.errors import DATABASE_UNAVAILABLE, error_response
from clientstats.api.statistics_endpoint import (
    PREFLIGHT_HEADERS,
    ASGIApp,
    Receive,
    Scope,
    Send,
    route_for,
)
from clientstats.api.stream_hub import StreamHub, Subscriber
from clientstats.cache.base import CachedResponse
from clientstats.errors import ClientstatsError, NotFound, ServiceUnavailable
from clientstats.services.credentials import Authenticator

log = logging.getLogger(__name__)

SUFFIX = "/project_statistics/stream"
RETRY_AFTER_FULL = 10  # seconds a refused subscriber should wait (Retry-After)
_CORS = {"Access-Control-Allow-Origin": "*"}
_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-store"),
    # nginx would otherwise buffer the events until its buffer is full.
    (b"x-accel-buffering", b"no"),
]
_PREFLIGHT = {name.decode(): value.decode() for name, value in PREFLIGHT_HEADERS}
_PUBLIC_HEADERS = [*_HEADERS, (b"access-control-allow-origin", b"*")]
_PREFIX = ["api_v4", "clients"]


# Files a process needs besides its streams: database pool, other requests, its own files.
SPARE_FILES = 1024


def make_room_for(subscribers: int) -> None:
    """Raise the open-file limit (up to the hard limit) so the streams fit.

    Each stream is a socket. A process out of descriptors fails to accept any connection,
    also plain statistics requests, well before it would refuse streams with a 503.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = subscribers + SPARE_FILES
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return
    raised = wanted if hard == resource.RLIM_INFINITY else min(hard, wanted)
    if raised > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
    if raised < wanted:
        log.warning(
            "open files limited to %d: about %d streams fit, not "
            "CLIENTSTATS_STREAM_MAX_SUBSCRIBERS=%d (raise the hard limit, e.g. LimitNOFILE)",
            raised,
            raised - SPARE_FILES,
            subscribers,
        )


class EventStream(Response):
    """The open stream of one subscriber; it ends when the client leaves or the hub closes."""

    def __init__(self, hub: StreamHub, subscriber: Subscriber | None, *, private: bool) -> None:
        self.status_code = 200
        self.background = None
        self.raw_headers = list(_HEADERS if private else _PUBLIC_HEADERS)
        self.hub = hub
        self.subscriber = subscriber  # None answers HEAD: the headers alone

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        subscriber = self.subscriber
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        if subscriber is None:
            await send({"type": "http.response.body", "body": b""})
            return
        left = asyncio.ensure_future(_disconnected(receive))
        left.add_done_callback(lambda _: subscriber.close())
        try:
            # A reconnect delay of 1-5 s: clients of a restarted process come back spread out.
            retry = b"retry: %d\n\n" % random.randint(1000, 5000)
            await send({"type": "http.response.body", "body": retry, "more_body": True})
            while (message := await subscriber.next_message()) is not None:
                await send(message)
            await send({"type": "http.response.body", "body": b""})
        finally:
            left.cancel()
            self.hub.unsubscribe(subscriber)


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class StreamEndpoint:
    """ASGI middleware answering the stream paths; everything else passes on."""

    def __init__(self, app: ASGIApp, state: State) -> None:
        self.app = app
        self.state = state  # the Starlette app's: settings, stream_hub, authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        parts: list[str] = scope["path"].split("/") if scope["type"] == "http" else []
        # "", locale, "api_v4", "clients", client id, "project_statistics", "stream"
        if len(parts) != 7 or not scope["path"].endswith(SUFFIX) or parts[2:4] != _PREFIX:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await self.respond(request, parts[1], parts[4])
        except Exception:
            log.exception("unhandled error in the stream endpoint")
            response = error_response(500, "Something went wrong")
        await response(scope, receive, send)

    async def respond(self, request: Request, locale: str, client_id: str) -> Response:
        """The stream of a client's figures (GET), its headers (HEAD) or a CORS preflight."""
        route = route_for(f"/{locale}/api_v4/clients/{client_id}/project_statistics")
        if route is None:  # an empty client id
            return _refusal(NotFound(f"No route matches {request.url.path}"))
        if route.unknown_locale is not None:
            return _refusal(NotFound(route.unknown_locale))
        if request.method == "OPTIONS":
            return Response(status_code=204, headers=_PREFLIGHT)
        if request.method not in ("GET", "HEAD"):
            message = f"Method {request.method} not allowed"
            return error_response(405, message, headers={"Allow": "GET, HEAD, OPTIONS", **_CORS})
        if route.permalink is None:
            return _refusal(NotFound(route.not_found))
        hub: StreamHub = self.state.stream_hub
        if not hub.admit():
            message = "Too many open streams; retry later or poll the statistics"
            return _refusal(ServiceUnavailable(message), retry_after=RETRY_AFTER_FULL)
        try:
            return await self._open(request, hub, route.permalink)
        except BaseException:
            hub.release()
            raise

    async def _open(self, request: Request, hub: StreamHub, permalink: str) -> Response:
        """Check the client and its visibility, then subscribe (or answer HEAD)."""
        try:
            entry = await hub.current(permalink)
            refused = await self._refuse_private(request, entry) if entry.private else None
        except ClientstatsError as exc:
            hub.release()
            return _refusal(exc)
        except DATABASE_UNAVAILABLE as exc:
            log.warning("stream of %s unavailable: %s", permalink, type(exc).__name__)
            hub.release()
            unavailable = ServiceUnavailable("The database is not available; retry")
            return _refusal(unavailable, retry_after=1)
        if refused is not None or request.method == "HEAD":
            hub.release()
            return refused or EventStream(hub, None, private=entry.private)
        last_event_id = request.headers.get("last-event-id")
        # Private figures reach this point only with the client's own credentials.
        subscriber = hub.subscribe(entry, owner=entry.private, last_event_id=last_event_id)
        return EventStream(hub, subscriber, private=entry.private)

    async def _refuse_private(self, request: Request, entry: CachedResponse) -> Response | None:
        """Private figures: only the client's own credentials open the stream (else 401/404)."""
        authenticator: Authenticator = self.state.authenticator
        timeout = self.state.settings.database_timeout
        try:
            client_id = await authenticator.authenticate(
                request.headers.get("authorization"), database_timeout=timeout
            )
        except ClientstatsError as exc:
            challenge = {"WWW-Authenticate": 'Basic realm="clientstats"'}
            extra = challenge if exc.status_code == 401 else None
            return _refusal(exc, cors=False, headers=extra)
        except DATABASE_UNAVAILABLE:
            message = "The database is not available; retry"
            return _refusal(ServiceUnavailable(message), cors=False, retry_after=1)
        if client_id != entry.permalink:
            message = f"Couldn't find Client with permalink={entry.permalink}"
            return _refusal(NotFound(message), cors=False)
        return None


def _refusal(
    exc: ClientstatsError,
    *,
    cors: bool = True,
    retry_after: int | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    extra = {**(headers or {}), **(_CORS if cors else {})}
    wait = retry_after if retry_after is not None else exc.retry_after
    if wait is not None:
        extra["Retry-After"] = str(wait)
    return error_response(exc.status_code, exc.message, headers=extra)
