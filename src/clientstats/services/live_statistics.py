"""Statistics served from a cache that a booking anywhere makes fresh within a poll interval.

Every booking gives each client whose figures it may change a new version token, in the
same transaction (storage.change_feed). Each process reads the changes since its last look
every `poll_interval` seconds; a cached response is served only while its token is the
client's current one and its TTL has not run out.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Collection

import orjson
from sqlalchemy import Engine

from clientstats.cache.base import CachedResponse, SharedStatisticsCache, StatisticsCache
from clientstats.services.blocking import run_blocking
from clientstats.services.changes import ChangeReader
from clientstats.services.statistics import get_snapshot_or_raise
from clientstats.storage.change_feed import ClientVersion
from clientstats.storage.statistics_queries import ClientSnapshot

log = logging.getLogger(__name__)


def etag_for(body: bytes) -> bytes:
    """The strong ETag of a response body: the same body, the same tag, in every process."""
    return b'"' + hashlib.blake2b(body, digest_size=12).hexdigest().encode() + b'"'


def render(snapshot: ClientSnapshot, *, ttl: int, now: float) -> CachedResponse:
    """Serialize a snapshot once; every cache hit sends these exact bytes."""
    body = orjson.dumps(snapshot.statistics.as_response())
    etag = etag_for(body)
    return CachedResponse(
        permalink=snapshot.permalink,
        version=snapshot.version.version,
        body=body,
        etag=etag,
        expires_at=now + ttl,
        private=snapshot.version.statistics_private,
    )


class LiveStatistics:
    """The cached read side of the statistics endpoint."""

    def __init__(
        self,
        engine: Engine,
        cache: StatisticsCache,
        *,
        ttl: int,
        poll_interval: float,
        shared: SharedStatisticsCache | None = None,
        timeout: float = 5.0,
    ) -> None:
        self.timeout = timeout
        self.engine = engine
        self.cache = cache
        self.shared = shared
        self.ttl = ttl
        self.poll_interval = poll_interval
        self.versions: dict[str, ClientVersion] = {}
        self.changes = ChangeReader(engine)
        # Bumped whenever `versions` is read afresh: a load that began before must not
        # write back a version from the history that was replaced.
        self._generation = 0
        # Grows after every change of `versions` (in whichever thread made it): an answer
        # prepared while it had another value may be stale.
        self.changes_seen = 0
        self._loading: dict[str, asyncio.Future[CachedResponse]] = {}
        # Called on the event loop after a poll that found changes (the live stream's hub):
        # one change feed tells every consumer in the process what changed.
        self.on_changes: list[Callable[[Collection[str]], None]] = []
        # Plain counters for the metrics (bumped on the event loop): where misses of the
        # in-process cache were answered from, and when the change feed was last read.
        self.redis_hits = self.redis_misses = self.database_loads = 0
        self.last_feed_read: float | None = None  # time.monotonic() of the last good read

    def refresh_versions(self) -> Collection[str]:
        """Read the changes since the last look; entries of older versions stop being served.

        Returns the clients whose figures may have changed (every client after a full read).
        """
        changes = self.changes.read()
        self.last_feed_read = time.monotonic()
        if changes.everything:
            self.versions = changes.versions
            self._generation += 1
            self.changes_seen += 1
            return changes.versions.keys()
        for permalink, version in changes.versions.items():
            self._advance(permalink, version)
        return changes.versions.keys()

    def feed_age(self) -> float | None:
        """Seconds since the change feed was last read successfully; None before the first read."""
        last = self.last_feed_read
        return None if last is None else time.monotonic() - last

    def _advance(self, permalink: str, version: ClientVersion) -> None:
        known = self.versions.get(permalink)
        if known is None or known.changed_seq < version.changed_seq:
            self.versions[permalink] = version
            self.changes_seen += 1

    def fresh(self, permalink: str, now: float) -> CachedResponse | None:
        """The cached response if it is still current; no I/O, called on every request."""
        entry = self.cache.get(permalink)
        if entry is None or entry.expires_at <= now:
            return None
        known = self.versions.get(permalink)
        if known is None or entry.version != known.version:
            return None
        return entry

    async def load(self, permalink: str) -> CachedResponse:
        """Compute, render and cache a client's response; concurrent misses share one query."""
        pending = self._loading.get(permalink)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[CachedResponse] = asyncio.get_running_loop().create_future()
        self._loading[permalink] = future
        generation = self._generation
        try:
            entry, version, asked_redis = await run_blocking(
                self.timeout, lambda: self._compute(permalink)
            )
            self._count_load(from_database=version is not None, asked_redis=asked_redis)
            if version is not None and generation == self._generation:
                self._advance(permalink, version)
            self.cache.put(entry)
            future.set_result(entry)
            return entry
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters, if any, re-raise it themselves
            raise
        finally:
            del self._loading[permalink]

    def _count_load(self, *, from_database: bool, asked_redis: bool) -> None:
        if from_database:
            self.database_loads += 1
            self.redis_misses += asked_redis
        else:
            self.redis_hits += 1

    def _compute(self, permalink: str) -> tuple[CachedResponse, ClientVersion | None, bool]:
        """The response from the shared cache if it has the current version, else the database.

        The version is returned when the response was read from the database: it may be
        newer than the one this process knows. The flag says whether the shared cache was
        asked.
        """
        known = self.versions.get(permalink)
        now = time.time()
        asked = self.shared is not None and known is not None
        if self.shared is not None and known is not None:
            shared = self.shared.fetch(permalink, known.version)
            if shared is not None and shared.expires_at > now:
                return shared, None, True
        snapshot = get_snapshot_or_raise(self.engine, permalink)
        entry = render(snapshot, ttl=self.ttl, now=now)
        if self.shared is not None:
            self.shared.store(entry)
        return entry, snapshot.version, asked

    async def poll_forever(self) -> None:
        """Keep the versions current until cancelled; a failing poll is logged once per outage."""
        failing = False
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                changed = await run_blocking(self.timeout, self.refresh_versions)
                if changed:
                    for listener in self.on_changes:
                        listener(changed)
                if failing:
                    log.warning("statistics freshness polling recovered")
                failing = False
            except Exception:
                if not failing:
                    log.exception("statistics freshness polling failed; retrying")
                failing = True
