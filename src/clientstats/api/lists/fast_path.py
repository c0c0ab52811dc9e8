"""Cached drill-down pages, answered before the request reaches Starlette.

A page is found by the raw request it answered: path, query string and whatever the links in
its body were built from (scheme, Host, the server address and, when trusted, the forwarded
headers), unless the public URL fixes them. It is served only while its client's version is
the one it was read at and its TTL has not run out; a private page only for an Authorization
header that opened it before at the client's current version (issuing credentials gives the
client a new version, so a changed password takes effect with the next read of the change
feed). Anything else (a miss, an expired or stale page, unknown credentials, OPTIONS)
goes on to the Starlette route, which answers as before and fills this cache. A hit sends
the same status, headers and body as that route.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

from clientstats.api.errors import JSON
from clientstats.api.lists.cache import MAX_ENTRIES, RenderedPage
from clientstats.api.statistics_endpoint import (
    Answer,
    Scope,
    cache_control,
    etag_matches,
    max_age_cap,
    stated_max_age,
)
from clientstats.config import Settings
from clientstats.services.live_statistics import LiveStatistics

_CORS = [(b"access-control-allow-origin", b"*"), (b"access-control-expose-headers", b"ETag")]
_CONTENT_TYPE = (b"content-type", JSON.encode())
_EMPTY_BODY = {"type": "http.response.body", "body": b""}
_READS = frozenset(("GET", "HEAD"))
# Distinct Authorization headers remembered per client: each needed the right password.
MAX_CREDENTIALS_PER_CLIENT = 16
_MAX_CLIENTS_WITH_CREDENTIALS = 100_000

Key = tuple[Any, ...]
# What a hit needs of a request: its page's key, its Authorization and If-None-Match headers.
Asked = tuple[Key, bytes | None, bytes | None]


def request_reader(settings: Settings) -> Callable[[Scope], Asked]:
    """The function reading a request's page key and headers in one pass over its headers.

    The key is what the page's bytes depend on besides the data: the path and query string,
    and what its links are built from unless the public URL fixes them. Of each header the
    first counts, as Starlette's `request.headers.get` takes it.
    """
    fixed = bool(settings.public_url)
    trusted = settings.trust_forwarded_headers

    def read(scope: Scope) -> Asked:
        host = proto = forwarded_host = authorization = if_none_match = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value if authorization is None else authorization
            elif name == b"if-none-match":
                if_none_match = value if if_none_match is None else if_none_match
            elif name == b"host":
                host = value if host is None else host
            elif trusted and name == b"x-forwarded-proto":
                proto = value if proto is None else proto
            elif trusted and name == b"x-forwarded-host":
                forwarded_host = value if forwarded_host is None else forwarded_host
        if fixed:
            return (scope["path"], scope["query_string"]), authorization, if_none_match
        key = (
            scope["path"],
            scope["query_string"],
            scope.get("scheme"),
            scope.get("server"),
            host,
            proto,
            forwarded_host,
        )
        return key, authorization, if_none_match

    return read


def _digest(authorization: bytes) -> bytes:
    """What is kept of an Authorization header that opened pages: a hash, not the password.

    BLAKE2b: collision resistant like SHA-256, and about twice as fast on a short header.
    """
    return hashlib.blake2b(authorization, digest_size=32).digest()


class FastPage:
    """A rendered page with its response headers, built once (the max-age once a second)."""

    __slots__ = (
        "body_message",
        "etag",
        "expires_at",
        "freshness",
        "page",
        "permalink",
        "private",
        "starts",
        "version",
    )

    def __init__(self, page: RenderedPage, permalink: str) -> None:
        self.page = page
        self.permalink = permalink
        # Copied out of the page: a hit reads them without a second attribute lookup.
        self.version = page.version
        self.private = page.private
        self.expires_at = page.expires_at
        self.etag = page.etag.encode()
        self.body_message = {"type": "http.response.body", "body": page.body}
        self.freshness: dict[int, list[tuple[bytes, bytes]]] = {}
        self.starts: dict[int, dict[str, object]] = {}

    def freshness_headers(self, max_age: int) -> list[tuple[bytes, bytes]]:
        """ETag, Cache-Control and (public pages) CORS: what a 200 and a 304 share."""
        headers = self.freshness.get(max_age)
        if headers is None:
            private = self.private
            headers = [
                (b"etag", self.etag),
                (b"cache-control", cache_control(private=private, max_age=max_age)),
            ]
            if not private:
                headers += _CORS
            self.freshness.clear()  # max-age only counts down: the older ones are done
            self.freshness[max_age] = headers
        return headers

    def start(self, max_age: int) -> dict[str, object]:
        """The start message of a 200 (GET and HEAD alike) at this max-age."""
        message = self.starts.get(max_age)
        if message is None:
            length = (b"content-length", b"%d" % len(self.page.body))
            headers = [*self.freshness_headers(max_age), length, _CONTENT_TYPE]
            message = {"type": "http.response.start", "status": 200, "headers": headers}
            self.starts.clear()
            self.starts[max_age] = message
        return message


class ListFastPath:
    """Cached list pages, answered by `answer` from the outermost middleware.

    Not a layer of its own: the outermost middleware asks `answer` before it calls the app,
    so a request that reaches the Starlette routes has already missed here.
    """

    def __init__(
        self,
        live: Callable[[], LiveStatistics],
        settings: Settings,
        *,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        self.live = live
        self.max_entries = max_entries
        self.read = request_reader(settings)
        self.http_max_age = settings.http_max_age
        self._live: LiveStatistics | None = None
        self._cap = 0  # the highest max-age stated, once the live statistics are known
        self._pages: dict[Key, FastPage] = {}
        # permalink -> (the client's version, digests of the Authorization headers that
        # opened its private pages at that version).
        self._credentials: dict[str, tuple[int, set[bytes]]] = {}
        self.hits = 0  # plain int for the metrics: a hit must stay a few dict lookups

    def remember_page(self, scope: Scope, permalink: str, page: RenderedPage) -> None:
        """Serve `page` for requests like this one while it is current (the slow path calls it)."""
        if page.version is None:
            return
        key = self.read(scope)[0]
        if key not in self._pages and len(self._pages) >= self.max_entries:
            del self._pages[next(iter(self._pages))]  # the oldest one goes
        self._pages[key] = FastPage(page, permalink)

    def remember_credentials(self, permalink: str, version: int, authorization: str) -> None:
        """These credentials opened the client's pages while it was at `version`."""
        digest = _digest(authorization.encode("latin-1"))
        known = self._credentials.get(permalink)
        if known is None or known[0] != version or len(known[1]) >= MAX_CREDENTIALS_PER_CLIENT:
            if len(self._credentials) >= _MAX_CLIENTS_WITH_CREDENTIALS:
                self._credentials.clear()
            known = self._credentials[permalink] = (version, set())
        known[1].add(digest)

    def answer(self, scope: Scope) -> Answer | None:
        """The response of a cached page, without awaiting anything; None passes it on."""
        if scope["method"] not in _READS:
            return None
        key, authorization, if_none_match = self.read(scope)
        entry = self._pages.get(key)
        if entry is None:
            return None
        # Inline, not methods: this is every cached page's path.
        live = self._live
        if live is None:
            live = self._live = self.live()
            self._cap = max_age_cap(live.ttl, self.http_max_age)
        known = live.versions.get(entry.permalink)
        now = time.time()
        if known is None or known.version != entry.version or entry.expires_at <= now:
            return None
        if entry.private and not self._opened(entry.permalink, known.version, authorization):
            return None
        self.hits += 1
        max_age = stated_max_age(entry.expires_at, now, self._cap)
        if if_none_match is not None and etag_matches(if_none_match, entry.etag):
            headers = entry.freshness_headers(max_age)
            return {"type": "http.response.start", "status": 304, "headers": headers}, _EMPTY_BODY
        body = _EMPTY_BODY if scope["method"] == "HEAD" else entry.body_message
        return entry.start(max_age), body

    def _opened(self, permalink: str, version: int, authorization: bytes | None) -> bool:
        """Whether this Authorization header opened the client's pages at its version."""
        opened = self._credentials.get(permalink)
        if authorization is None or opened is None or opened[0] != version:
            return False
        return _digest(authorization) in opened[1]
