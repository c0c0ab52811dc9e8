"""Liveness and readiness probes: the database is checked, Redis is reported but not required."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.conftest import RunningServer, postgres_schema
from tests.reliability.tcp_proxy import (
    TcpProxy,
    redis_address,
    redis_url_via,
    require_redis,
    schema_url,
)

JSON_UTF8 = "application/json; charset=utf-8"


def test_live_answers_200(tmp_path: Path) -> None:
    running = RunningServer(f"sqlite:///{tmp_path / 'clientstats.db'}")
    try:
        live = httpx.get(f"{running.base_url}/health/live", timeout=10)
        ready = httpx.get(f"{running.base_url}/health/ready", timeout=10)
    finally:
        running.stop()
    assert live.status_code == 200
    assert live.headers["content-type"] == JSON_UTF8
    assert live.json() == {"status": "ok"}
    assert ready.status_code == 200
    assert ready.headers["content-type"] == JSON_UTF8
    assert ready.json() == {"status": "ok", "database": "ok"}  # no Redis configured, none named


def test_ready_reports_redis_and_stays_ready_while_only_redis_is_down() -> None:
    require_redis()
    with postgres_schema() as schema, TcpProxy(*redis_address()) as proxy:
        running = RunningServer(schema_url(schema), CLIENTSTATS_REDIS_URL=redis_url_via(proxy.port))
        try:
            ready = f"{running.base_url}/health/ready"
            up = httpx.get(ready, timeout=10)
            assert up.status_code == 200
            assert up.headers["content-type"] == JSON_UTF8
            assert up.json() == {"status": "ok", "database": "ok", "redis": "ok"}

            proxy.refuse()
            down = httpx.get(ready, timeout=10)
            assert down.status_code == 200, down.text
            assert down.json() == {"status": "ok", "database": "ok", "redis": "unavailable"}
            live = httpx.get(f"{running.base_url}/health/live", timeout=10)
            assert live.status_code == 200

            proxy.resume()
            back = httpx.get(ready, timeout=10)
            assert back.status_code == 200
            assert back.json() == {"status": "ok", "database": "ok", "redis": "ok"}
        finally:
            running.stop()
