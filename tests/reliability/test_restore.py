"""A database restored from a backup, and deployments sharing one Redis, never serve lost figures.

On PostgreSQL + Redis: a backup (pg_dump), a booking whose figures reach the shared cache,
the backup restored, another booking. Every answer afterwards, from the server that ran
throughout and from one started after the restore, has the figures the database holds.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.api.conftest import donation as donation_event
from tests.api.conftest import get_stats, http, new_client_events, post_events, run_cli
from tests.conftest import POSTGRES_URL, RunningServer, postgres_schema, schema_url
from tests.reliability.tcp_proxy import REDIS_URL, delete_cache_keys, redis_client, require_redis

CLIENT = "restored"


@pytest.fixture
def shared_redis() -> Iterator[redis.Redis]:
    require_redis()
    client = redis_client()
    delete_cache_keys(client, [CLIENT])
    yield client
    delete_cache_keys(client, [CLIENT])
    client.close()


def _psql(*args: str, stdin: bytes | None = None) -> None:
    subprocess.run(
        ["psql", POSTGRES_URL, "-v", "ON_ERROR_STOP=1", "-q", *args],
        input=stdin,
        check=True,
        capture_output=True,
    )


def _dump(schema: str, path: Path) -> None:
    subprocess.run(
        ["pg_dump", POSTGRES_URL, "--schema", schema, "--file", str(path)],
        check=True,
        capture_output=True,
    )


def _restore(schema: str, path: Path) -> None:
    _psql("-c", f"DROP SCHEMA {schema} CASCADE")
    _psql("--file", str(path))


def _figures(server: RunningServer) -> dict[str, Any]:
    response = get_stats(server.base_url, CLIENT)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _until(server: RunningServer, donated: int) -> dict[str, Any]:
    """The server's figures once they show `donated` (a booking is visible within a second)."""
    deadline = time.monotonic() + 5
    while True:
        body = _figures(server)
        if body["donated_amount_in_cents"] == donated or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


def test_a_restore_never_brings_back_a_cached_booking_it_removed(
    shared_redis: redis.Redis, start_server: Any, tmp_path: Path
) -> None:
    with postgres_schema() as schema:
        url = schema_url(schema)
        first = start_server(url, CLIENTSTATS_REDIS_URL=REDIS_URL)
        events = new_client_events(CLIENT, requested=100_000)
        project = events[1]["id"]
        assert post_events(first.base_url, events).status_code == 200
        assert _figures(first)["donated_amount_in_cents"] == 0
        backup = tmp_path / "backup.sql"
        _dump(schema, backup)

        assert (
            post_events(first.base_url, [donation_event("lost", project, 1_100)]).status_code == 200
        )
        assert _until(first, 1_100)["donated_amount_in_cents"] == 1_100  # now in Redis too

        _restore(schema, backup)
        assert (
            post_events(first.base_url, [donation_event("kept", project, 700)]).status_code == 200
        )

        # The booking the restore removed is gone everywhere: in the server that cached it,
        # and in a new one that has only the shared cache to go by.
        assert _until(first, 700)["donated_amount_in_cents"] == 700
        second = start_server(url, CLIENTSTATS_REDIS_URL=REDIS_URL)
        assert _figures(second)["donated_amount_in_cents"] == 700
        for _ in range(20):
            assert _figures(first)["donated_amount_in_cents"] == 700
            assert _figures(second)["donated_amount_in_cents"] == 700
        verified = run_cli(url, "verify", "--url", first.base_url, CLIENTSTATS_REDIS_URL=REDIS_URL)
        assert verified.returncode == 0, verified.stdout.decode() + verified.stderr.decode()


def test_two_deployments_sharing_one_redis_database_serve_their_own_figures(
    shared_redis: redis.Redis, start_server: Any
) -> None:
    with postgres_schema() as one, postgres_schema() as other:
        servers = []
        for schema, amount in ((one, 300), (other, 900)):
            server = start_server(schema_url(schema), CLIENTSTATS_REDIS_URL=REDIS_URL)
            events = new_client_events(CLIENT, requested=100_000)
            # The same client and the same history length in both: only the amount differs.
            booked = post_events(
                server.base_url, [*events, donation_event("d", events[1]["id"], amount)]
            )
            assert booked.status_code == 200, booked.text
            servers.append((server, amount))
        for _ in range(10):
            for server, amount in servers:
                assert _figures(server)["donated_amount_in_cents"] == amount
        # A server that starts cold takes from the shared cache only what is its own.
        for schema, amount in ((one, 300), (other, 900)):
            cold = start_server(schema_url(schema), CLIENTSTATS_REDIS_URL=REDIS_URL)
            assert _figures(cold)["donated_amount_in_cents"] == amount
            assert http().get(f"{cold.base_url}/health/ready").json()["redis"] == "ok"
