"""The shared statistics cache in Redis: one key per client and version token.

A key names the version its response was computed at, so a booking (which gives the client
a new version token) makes every process look for a new key; stale keys simply expire with
the TTL. Tokens are random and never repeat, so a key computed before a database restore,
or by another deployment sharing this Redis database, is never asked for again.
When Redis fails, the fault is logged once, the cache is skipped for a few seconds at a
time, and it is used again as soon as Redis answers.
"""

from __future__ import annotations

import logging
import threading
import time

import orjson
import redis

from clientstats.cache.base import CachedResponse
from clientstats.observability.tallies import REDIS_ERRORS

log = logging.getLogger(__name__)

# v2: the version is a random token (v1 keys held counters, which repeat after a restore).
KEY_PREFIX = "clientstats:stats:v2:"
RETRY_AFTER_SECONDS = 2.0


class RedisCache:
    """SharedStatisticsCache on a Redis server."""

    def __init__(self, url: str, *, timeout: float) -> None:
        self.client = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, retry_on_timeout=False
        )
        self._lock = threading.Lock()
        self._skip_until = 0.0
        self._failing = False

    def _available(self) -> bool:
        return time.monotonic() >= self._skip_until

    def _failed(self, exc: Exception) -> None:
        REDIS_ERRORS.add(type(exc).__name__)
        with self._lock:
            self._skip_until = time.monotonic() + RETRY_AFTER_SECONDS
            if not self._failing:
                log.warning("Redis cache unavailable, serving from the database: %s", exc)
            self._failing = True

    def _succeeded(self) -> None:
        if self._failing:
            with self._lock:
                if self._failing:
                    log.warning("Redis cache available again")
                self._failing = False

    def fetch(self, permalink: str, version: int) -> CachedResponse | None:
        if not self._available():
            return None
        try:
            raw = self.client.get(f"{KEY_PREFIX}{permalink}:{version}")
        except redis.RedisError as exc:
            self._failed(exc)
            return None
        self._succeeded()
        if not isinstance(raw, bytes):
            return None
        try:
            data = orjson.loads(raw)
            return CachedResponse(
                permalink=permalink,
                version=version,
                body=data["body"].encode(),
                etag=data["etag"].encode(),
                expires_at=float(data["expires_at"]),
                private=bool(data["private"]),
            )
        except (ValueError, TypeError, KeyError, AttributeError):
            return None  # not a value this code wrote: a miss, recomputed and overwritten

    def store(self, entry: CachedResponse) -> None:
        ttl = int(entry.expires_at - time.time())
        if ttl <= 0 or not self._available():
            return
        value = orjson.dumps(
            {
                "body": entry.body.decode(),
                "etag": entry.etag.decode(),
                "expires_at": entry.expires_at,
                "private": entry.private,
            }
        )
        try:
            self.client.set(f"{KEY_PREFIX}{entry.permalink}:{entry.version}", value, ex=ttl)
        except redis.RedisError as exc:
            self._failed(exc)
            return
        self._succeeded()

    def ping(self) -> bool:
        """Whether Redis answers right now (for readiness)."""
        try:
            return bool(self.client.ping())
        except redis.RedisError:
            return False
