"""The statistics endpoint as a bare ASGI handler: a cache hit is a dict lookup.

It sits in front of the Starlette app and answers only paths shaped like
`/{locale}/api_v4/clients/{client_id}/project_statistics[.json]`; everything else passes on.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from clientstats.api.errors import DATABASE_UNAVAILABLE, JSON, error_body
from clientstats.cache.base import CachedResponse
from clientstats.errors import ClientstatsError
from clientstats.observability.prepared import HitCounter, Prepared, PreparedAnswers
from clientstats.services.credentials import Authenticator
from clientstats.services.live_statistics import LiveStatistics
from clientstats.services.statistics import normalize_permalink

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
# A response ready to send: its start message (without X-Request-ID) and its body message.
Answer = tuple[Message, Message]

log = logging.getLogger(__name__)

LOCALES = frozenset({"de", "en"})
_SUFFIXES = ("/project_statistics.json", "/project_statistics")
_CONTENT_TYPE = (b"content-type", JSON.encode())
_CORS = (b"access-control-allow-origin", b"*")
_EXPOSE = (b"access-control-expose-headers", b"ETag")
_ALLOW = (b"allow", b"GET, HEAD, OPTIONS")
_EMPTY_BODY = {"type": "http.response.body", "body": b""}
_CHALLENGE = (b"www-authenticate", b'Basic realm="clientstats"')
_NO_STORE = (b"cache-control", b"no-store")
# A browser script may send If-None-Match (and, for a private client, Authorization) itself.
PREFLIGHT_HEADERS = [
    _CORS,
    (b"access-control-allow-methods", b"GET, HEAD"),
    (b"access-control-allow-headers", b"If-None-Match, Authorization, Last-Event-ID"),
    (b"access-control-max-age", b"86400"),
    _ALLOW,
]
# Permalinks are [a-z0-9_-]{1,64}; ASCII only, so e.g. the Kelvin sign is no "k".
_PERMALINK = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_REMEMBERED_PATHS = 10_000
_UNSEEN: Any = object()


def match_path(path: str) -> tuple[str, str] | None:
    """(locale, client_id) if the path is a statistics path, else None."""
    if not path.endswith(_SUFFIXES):
        return None
    parts = path.split("/")
    if len(parts) != 6 or parts[0] or parts[2] != "api_v4" or parts[3] != "clients" or not parts[4]:
        return None
    return parts[1], parts[4]


@dataclass(frozen=True, slots=True)
class Route:
    """What a statistics path asks for; worked out once per distinct path."""

    unknown_locale: str | None  # the 404 message if the locale is not served
    permalink: str | None  # the client's permalink, lower-cased; None if it cannot be one
    not_found: str  # the 404 message for this client, naming it as the path does


def route_for(path: str) -> Route | None:
    """The Route of a statistics path, None for every other path."""
    matched = match_path(path)
    if matched is None:
        return None
    locale, client_id = matched
    valid = _PERMALINK.fullmatch(client_id) is not None
    normalized = normalize_permalink(client_id)
    return Route(
        unknown_locale=None if locale in LOCALES else f"Unknown locale {locale}",
        # No client has such a permalink; the database never sees it (PostgreSQL refuses NUL).
        permalink=normalized if valid else None,
        # Lower-casing maps e.g. the Kelvin sign to "k": name what was asked for, not an
        # existing client it resembles.
        not_found=f"Couldn't find Client with permalink={normalized if valid else client_id}",
    )


def _header(scope: Scope, wanted: bytes) -> bytes | None:
    for name, value in scope["headers"]:
        if name == wanted:
            return bytes(value)
    return None


def etag_matches(header: bytes, etag: bytes) -> bool:
    if header.strip() == b"*":
        return True
    # If-None-Match compares weakly (RFC 9110 §13.1.2): W/"x" matches "x".
    return any(candidate.strip().removeprefix(b"W/") == etag for candidate in header.split(b","))


class StatisticsEndpoint:
    """ASGI middleware serving the statistics endpoint from the live cache."""

    def __init__(
        self,
        app: ASGIApp,
        live: Callable[[], LiveStatistics],
        authenticator: Callable[[], Authenticator],
        *,
        http_max_age: int | None = None,
    ) -> None:
        self.app = app
        self.live = live
        self.authenticator = authenticator
        self.http_max_age = http_max_age
        self._live: LiveStatistics | None = None
        self._routes: dict[str, Route | None] = {}
        # Plain ints, read by the metrics exporter: a hit must stay a dict lookup. The hits
        # of prepared answers are counted by the middleware that sends them.
        self.hits = HitCounter()
        self.process_misses = 0
        # Answers to plain GETs of public statistics, sent by the outermost middleware.
        self.prepared = PreparedAnswers()

    @property
    def process_hits(self) -> int:
        """Responses served from this process's cache, by either path."""
        return self.hits.count

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        route = self._routes.get(path, _UNSEEN)
        if route is _UNSEEN:
            route = self._remember(path)
        if route is None:
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        if route.unknown_locale is not None:
            await _send_error(send, 404, route.unknown_locale, method)
        elif method == "OPTIONS":
            await send_preflight(send)
        elif method != "GET" and method != "HEAD":
            await _send_error(send, 405, f"Method {method} not allowed", method, (_ALLOW,))
        elif route.permalink is None:
            await _send_error(send, 404, route.not_found, method)
        else:
            await self._serve(scope, send, route.permalink, method)

    def answer(self, scope: Scope) -> Answer | None:
        """The response of a cache hit on public statistics, without awaiting anything.

        None for everything else (other paths, misses, private statistics, other methods).
        The outermost middleware asks this first; `__call__` answers all requests on its own
        (hits too, when called directly) and counts the misses.
        """
        path = scope["path"]
        route = self._routes.get(path, _UNSEEN)
        if route is _UNSEEN:
            route = self._remember(path)
        if route is None or route.permalink is None or route.unknown_locale is not None:
            return None
        method = scope["method"]
        if method != "GET" and method != "HEAD":
            return None
        live = self._live
        if live is None:
            live = self._live = self.live()
        seen = live.changes_seen  # before the lookup: a change after it ends the prepared one
        now = time.time()
        entry = live.fresh(route.permalink, now)
        if entry is None or entry.private:
            return None
        self.hits.count += 1
        cap = max_age_cap(live.ttl, self.http_max_age)
        answer = _hit(scope, entry, now, method, cap)
        start, body = answer
        if method == "GET" and start["status"] == 200:
            # A GET with If-None-Match or Authorization comes here while the prepared answer
            # is still good (only plain GETs are sent from it): keep that one.
            kept = self.prepared.get(path)
            if kept is None or kept.seen != seen or kept.until <= now:
                until = _max_age_until(entry, now, cap)
                kept = Prepared(start["headers"], body, until, live, seen, self.hits)
                self.prepared.keep(path, kept)
        return answer

    def _remember(self, path: str) -> Route | None:
        if len(self._routes) >= MAX_REMEMBERED_PATHS:
            self._routes.clear()  # arbitrary paths from the outside cannot grow it for ever
        route = self._routes[path] = route_for(path)
        return route

    async def _serve(self, scope: Scope, send: Send, permalink: str, method: str) -> None:
        live = self._live
        if live is None:
            live = self._live = self.live()
        now = time.time()
        entry = live.fresh(permalink, now)
        if entry is not None:
            self.hits.count += 1
        else:
            self.process_misses += 1
            try:
                entry = await live.load(permalink)
            except ClientstatsError as exc:
                await _send_error(send, exc.status_code, exc.message, method)
                return
            except DATABASE_UNAVAILABLE as exc:
                # One line per failed request; the poller logs the outage itself once.
                log.warning("statistics of %s unavailable: %s", permalink, type(exc).__name__)
                await _send_error(send, 503, "The database is not available; retry", method)
                return
            except Exception:
                await _send_unexpected(send, method)
                return
            now = time.time()
        if entry.private and not await self._authorized(scope, send, permalink, method):
            return
        cap = max_age_cap(live.ttl, self.http_max_age)
        await _send_hit(scope, send, entry, now, method, cap)

    async def _authorized(self, scope: Scope, send: Send, permalink: str, method: str) -> bool:
        """Private statistics: only the client's own credentials open them."""
        header = _header(scope, b"authorization")
        try:
            client_id = await self.authenticator().authenticate(
                None if header is None else header.decode("latin-1"),
                database_timeout=self.live().timeout,
            )
        except ClientstatsError as exc:
            extra = [_CHALLENGE] if exc.status_code == 401 else []
            if exc.retry_after is not None:
                extra.append((b"retry-after", b"%d" % exc.retry_after))
            await _send_error(send, exc.status_code, exc.message, method, tuple(extra), cors=False)
            return False
        except DATABASE_UNAVAILABLE:
            message = "The database is not available; retry"
            await _send_error(send, 503, message, method, cors=False)
            return False
        except Exception:
            await _send_unexpected(send, method)
            return False
        if client_id != permalink:
            message = f"Couldn't find Client with permalink={permalink}"
            await _send_error(send, 404, message, method, cors=False)
            return False
        return True


def max_age_cap(ttl: int, http_max_age: int | None) -> int:
    """The highest max-age a response states: the TTL, or the configured HTTP max-age."""
    return ttl if http_max_age is None else min(ttl, http_max_age)


def stated_max_age(expires_at: float, now: float, cap: int) -> int:
    """The max-age of a response sent at `now`: the time left, rounded up so the last second
    is not max-age=0, never above `cap` (clocks differ between processes)."""
    return min(cap, max(0, math.ceil(expires_at - now)))


def cache_control(*, private: bool, max_age: int) -> bytes:
    """`max-age` for downstream caches; 0 makes every one of them revalidate (`no-cache`)."""
    scope = b"private" if private else b"public"
    if max_age <= 0:
        return scope + b", no-cache"
    return b"%s, max-age=%d" % (scope, max_age)


def _freshness_headers(entry: CachedResponse, max_age: int) -> list[tuple[bytes, bytes]]:
    """ETag, Cache-Control and (for public statistics) CORS: what a 200 and a 304 share."""
    headers = [
        entry.etag_header,
        (b"cache-control", cache_control(private=entry.private, max_age=max_age)),
    ]
    if not entry.private:
        headers += (_CORS, _EXPOSE)
    return headers


def _start_message(entry: CachedResponse, max_age: int) -> dict[str, object]:
    """The start of a 200 for `entry` at this max-age, built once per entry and second."""
    message = entry.start_messages.get(max_age)
    if message is None:
        headers = [*_freshness_headers(entry, max_age), _CONTENT_TYPE, entry.length_header]
        message = {"type": "http.response.start", "status": 200, "headers": headers}
        entry.start_messages.clear()  # max-age only counts down: the older ones are done
        entry.start_messages[max_age] = message
    return message


def _max_age_until(entry: CachedResponse, now: float, cap: int) -> float:
    """When the max-age a response sent at `now` states would change (or its TTL ends)."""
    stated = stated_max_age(entry.expires_at, now, cap)
    if stated == 0:
        return entry.expires_at  # "no-cache" until the end
    # max-age = m holds while expires_at - t > m - 1 (ceil, then capped at m when m == cap).
    return entry.expires_at - stated + 1


def _hit(scope: Scope, entry: CachedResponse, now: float, method: str, cap: int) -> Answer:
    max_age = stated_max_age(entry.expires_at, now, cap)
    header = _header(scope, b"if-none-match")
    if header is not None and etag_matches(header, entry.etag):
        headers = _freshness_headers(entry, max_age)
        return {"type": "http.response.start", "status": 304, "headers": headers}, _EMPTY_BODY
    return _start_message(entry, max_age), _EMPTY_BODY if method == "HEAD" else entry.body_message


async def _send_hit(
    scope: Scope, send: Send, entry: CachedResponse, now: float, method: str, cap: int
) -> None:
    start, body = _hit(scope, entry, now, method, cap)
    await send(start)
    await send(body)


async def _send_unexpected(send: Send, method: str) -> None:
    """A bug: logged with its traceback, answered in the error format (not a plain-text page)."""
    log.exception("unhandled error in the statistics endpoint")
    await _send_error(send, 500, "Something went wrong", method)


async def send_preflight(send: Send) -> None:
    """A CORS preflight (or plain OPTIONS) of a public read endpoint: 204, no body."""
    await send({"type": "http.response.start", "status": 204, "headers": PREFLIGHT_HEADERS})
    await send(_EMPTY_BODY)


async def _send_error(
    send: Send,
    status: int,
    message: str,
    method: str,
    extra: tuple[tuple[bytes, bytes], ...] = (),
    *,
    cors: bool = True,
) -> None:
    body = error_body(status, message)
    headers = [_CONTENT_TYPE, (b"content-length", b"%d" % len(body)), _NO_STORE, *extra]
    if cors:
        headers.append(_CORS)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})
