"""`clientstats verify` checks what is served too: the shared cache and, with --url, a server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from clientstats.cache.redis_cache import RedisCache
from clientstats.services.live_statistics import render
from clientstats.services.statistics import get_snapshot_or_raise
from clientstats.storage.database import make_engine
from tests.api.conftest import donation, get_stats, ndjson, new_client_events, run_cli
from tests.conftest import RunningServer
from tests.reliability.tcp_proxy import REDIS_URL, delete_cache_keys, redis_client, require_redis

CLIENT = "verified-served"


@pytest.fixture
def shared_redis() -> Iterator[redis.Redis]:
    require_redis()
    client = redis_client()
    delete_cache_keys(client, [CLIENT])
    yield client
    delete_cache_keys(client, [CLIENT])
    client.close()


@pytest.fixture
def ledger(tmp_path: Path) -> str:
    """A SQLite database with one client whose project got one donation."""
    url = f"sqlite:///{tmp_path / 'verify.db'}"
    events = new_client_events(CLIENT, requested=50_000)
    events.append(donation("v1", events[1]["id"], 1_500))
    result = run_cli(url, "import", "-", stdin=ndjson(events))
    assert result.returncode == 0, result.stderr.decode()
    return url


def _store_tampered(url: str) -> None:
    """Put figures into the shared cache that the ledger does not hold, under the current token."""
    engine = make_engine(url)
    snapshot = get_snapshot_or_raise(engine, CLIENT)
    engine.dispose()
    entry = render(snapshot, ttl=600, now=time.time())
    body = orjson.loads(entry.body)
    body["donated_amount_in_cents"] += 100
    tampered = type(entry)(
        permalink=entry.permalink,
        version=entry.version,
        body=orjson.dumps(body),
        etag=entry.etag,
        expires_at=entry.expires_at,
        private=entry.private,
    )
    RedisCache(REDIS_URL, timeout=2).store(tampered)


def _verify(url: str, *args: str) -> tuple[int, str]:
    result = run_cli(url, "verify", *args, CLIENTSTATS_REDIS_URL=REDIS_URL)
    return result.returncode, result.stdout.decode() + result.stderr.decode()


def test_verify_passes_when_the_shared_cache_holds_what_the_ledger_says(
    shared_redis: redis.Redis, ledger: str, start_server: Any
) -> None:
    server: RunningServer = start_server(ledger, CLIENTSTATS_REDIS_URL=REDIS_URL)
    assert get_stats(server.base_url, CLIENT).json()["donated_amount_in_cents"] == 1_500
    assert list(shared_redis.scan_iter(match=f"*{CLIENT}*"))  # the server stored its answer
    code, output = _verify(ledger, "--url", server.base_url)
    assert code == 0, output
    assert output.strip().splitlines()[-1].endswith(": 0 difference(s)")


def test_verify_finds_a_shared_cache_entry_that_differs_from_the_ledger(
    shared_redis: redis.Redis, ledger: str
) -> None:
    _store_tampered(ledger)
    code, output = _verify(ledger)
    assert code == 1, output
    assert f"{CLIENT} (shared cache): serves donated_amount_in_cents=1600" in output
    assert "the ledger says donated_amount_in_cents=1500" in output
    assert output.strip().splitlines()[-1].endswith(": 1 difference(s)")


def test_verify_url_finds_a_server_that_serves_other_figures(
    shared_redis: redis.Redis, ledger: str, start_server: Any
) -> None:
    _store_tampered(ledger)
    server: RunningServer = start_server(ledger, CLIENTSTATS_REDIS_URL=REDIS_URL)
    # A cold server trusts the shared cache: it serves what was put there.
    assert get_stats(server.base_url, CLIENT).json()["donated_amount_in_cents"] == 1_600
    result = run_cli(ledger, "verify", "--url", server.base_url)  # the database and the server only
    output = result.stdout.decode()
    assert result.returncode == 1, output
    assert f"{CLIENT} ({server.base_url}): serves donated_amount_in_cents=1600" in output


def test_verify_url_of_a_server_that_does_not_answer_is_one_line(ledger: str) -> None:
    result = run_cli(ledger, "verify", "--url", "http://127.0.0.1:1")
    assert result.returncode == 1
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("clientstats: cannot ask http://127.0.0.1:1")
