"""RedisCache: versioned keys with a TTL, and a Redis that fails behaves as an empty cache."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from clientstats.cache import redis_cache
from clientstats.cache.base import CachedResponse
from clientstats.cache.redis_cache import KEY_PREFIX, RedisCache
from tests.conftest import free_port
from tests.reliability.tcp_proxy import (
    REDIS_URL,
    TcpProxy,
    delete_cache_keys,
    redis_address,
    redis_client,
    redis_url_via,
    require_redis,
)

UNAVAILABLE = "Redis cache unavailable"


def entry(
    permalink: str, version: int = 1, *, ttl: float = 600, private: bool = False
) -> CachedResponse:
    """A rendered response of a client at a version."""
    body = b'{"donated_amount_in_cents":%d,"links":[]}' % version
    return CachedResponse(
        permalink=permalink,
        version=version,
        body=body,
        etag=b'"etag-%d"' % version,
        expires_at=time.time() + ttl,
        private=private,
    )


@pytest.fixture
def direct() -> Iterator[redis.Redis]:
    """A direct client of the test Redis; skips (or fails under CI) when it does not answer."""
    require_redis()
    client = redis_client()
    yield client
    client.close()


@pytest.fixture
def permalink(direct: redis.Redis) -> Iterator[str]:
    """A client permalink no other test uses; its keys are deleted afterwards."""
    name = f"rc-{uuid.uuid4().hex[:12]}"
    yield name
    delete_cache_keys(direct, [name])


def test_store_then_fetch_returns_the_same_entry(permalink: str) -> None:
    cache = RedisCache(REDIS_URL, timeout=2)
    stored = entry(permalink, 7, private=True)
    cache.store(stored)
    assert cache.fetch(permalink, 7) == stored
    assert cache.ping() is True


def test_the_configured_timeout_bounds_connecting_and_every_command() -> None:
    cache = RedisCache("redis://127.0.0.1:1/0", timeout=0.3)
    options = cache.client.connection_pool.connection_kwargs
    assert (options["socket_timeout"], options["socket_connect_timeout"]) == (0.3, 0.3)


def test_key_names_client_and_version_and_expires_with_the_entry(
    permalink: str, direct: redis.Redis
) -> None:
    cache = RedisCache(REDIS_URL, timeout=2)
    cache.store(entry(permalink, 3, ttl=300))
    key = f"{KEY_PREFIX}{permalink}:3"
    assert direct.exists(key) == 1
    assert 0 < direct.ttl(key) <= 300


def test_fetch_of_another_version_misses(permalink: str) -> None:
    cache = RedisCache(REDIS_URL, timeout=2)
    cache.store(entry(permalink, 4))
    assert cache.fetch(permalink, 5) is None
    assert cache.fetch(permalink, 3) is None
    assert cache.fetch(f"{permalink}-other", 4) is None
    assert cache.fetch(permalink, 4) is not None


def test_a_newer_version_does_not_replace_an_older_key(permalink: str) -> None:
    cache = RedisCache(REDIS_URL, timeout=2)
    cache.store(entry(permalink, 1))
    cache.store(entry(permalink, 2))
    first, second = cache.fetch(permalink, 1), cache.fetch(permalink, 2)
    assert first is not None and second is not None
    assert (first.version, second.version) == (1, 2)
    assert first.body != second.body


@pytest.mark.parametrize("value", [b"not json", b"[]", b'{"body": 1}', b'{"etag": "x"}'])
def test_a_value_this_code_did_not_write_is_a_miss(
    permalink: str, direct: redis.Redis, value: bytes
) -> None:
    direct.set(f"{KEY_PREFIX}{permalink}:1", value, ex=60)
    cache = RedisCache(REDIS_URL, timeout=2)
    assert cache.fetch(permalink, 1) is None
    fresh = entry(permalink, 1)
    cache.store(fresh)  # the next computation overwrites it
    assert cache.fetch(permalink, 1) == fresh


def test_an_expired_entry_is_not_stored(permalink: str, direct: redis.Redis) -> None:
    cache = RedisCache(REDIS_URL, timeout=2)
    cache.store(entry(permalink, 1, ttl=-5))
    assert direct.exists(f"{KEY_PREFIX}{permalink}:1") == 0
    assert cache.fetch(permalink, 1) is None


def test_unreachable_redis_behaves_as_empty_and_logs_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_cache, "RETRY_AFTER_SECONDS", 0.0)  # try Redis on every call
    cache = RedisCache(f"redis://127.0.0.1:{free_port()}/0", timeout=0.5)
    with caplog.at_level(logging.WARNING, logger=redis_cache.__name__):
        for version in range(1, 4):
            cache.store(entry("nobody", version))
            assert cache.fetch("nobody", version) is None
    assert cache.ping() is False
    warnings = [r for r in caplog.records if UNAVAILABLE in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in caplog.records]


def test_after_a_failure_redis_is_skipped_for_a_while(
    permalink: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_cache, "RETRY_AFTER_SECONDS", 60.0)
    with TcpProxy(*redis_address()) as proxy:
        cache = RedisCache(redis_url_via(proxy.port), timeout=0.5)
        cache.store(entry(permalink, 1))
        proxy.refuse()
        assert cache.fetch(permalink, 1) is None
        accepted = proxy.accepted
        proxy.resume()
        # Within RETRY_AFTER_SECONDS of a failure the cache does not even try: still a miss.
        assert cache.fetch(permalink, 1) is None
        assert proxy.accepted == accepted


def test_redis_is_used_again_once_it_answers(
    permalink: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_cache, "RETRY_AFTER_SECONDS", 0.0)
    with TcpProxy(*redis_address()) as proxy, caplog.at_level(logging.WARNING):
        cache = RedisCache(redis_url_via(proxy.port), timeout=0.5)
        stored = entry(permalink, 1)
        cache.store(stored)
        proxy.pause()
        assert cache.fetch(permalink, 1) is None  # a silent Redis times out, no exception
        proxy.refuse()
        assert cache.fetch(permalink, 1) is None
        cache.store(entry(permalink, 2))
        proxy.resume()
        assert cache.fetch(permalink, 1) == stored
        assert cache.fetch(permalink, 2) is None  # stored while Redis was down: skipped
        second = entry(permalink, 2)
        cache.store(second)
        assert cache.fetch(permalink, 2) == second
    messages = [r.getMessage() for r in caplog.records if r.name == redis_cache.__name__]
    assert sum(UNAVAILABLE in m for m in messages) == 1, messages
    assert sum("available again" in m for m in messages) == 1, messages
