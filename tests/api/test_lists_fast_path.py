"""Cached list pages from the fast path: the same bytes as the Starlette route, credentials at once.

The app runs in-process so that the same request can be put to the whole chain (where a
cached page is answered in front of Starlette) and to the Starlette side alone (the slow path).
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from clientstats.api.app import create_app
from clientstats.api.lists.fast_path import ListFastPath
from clientstats.api.stream import StreamEndpoint
from clientstats.config import Settings
from tests.api.asgi_driver import Answer, call, running
from tests.api.conftest import NDJSON, SEED_EVENTS, ndjson
from tests.conftest import ADMIN_TOKEN, server_env

REQUEST_ID = ("X-Request-ID", "fast-path-test")
Test = Callable[[Any, ListFastPath], Awaitable[None]]


def basic(username: str, password: str) -> tuple[str, str]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return ("Authorization", f"Basic {token}")


def cli_credentials(database_url: str, client: str) -> tuple[str, str]:
    """New credentials from `clientstats client credentials`, another process as in use."""
    out = subprocess.run(
        [sys.executable, "-m", "clientstats", "client", "credentials", client],
        env=server_env(database_url),
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout
    issued = json.loads(out)
    return basic(issued["username"], issued["password"])


def run_app(database_url: str, test: Test, **settings: Any) -> None:
    """Run `test` against a seeded in-process app on `database_url`."""
    config = Settings(
        database_url=database_url,
        admin_token=ADMIN_TOKEN,
        worker_in_process=False,
        freshness_poll_interval=0.1,
        metrics=False,
        **settings,
    )
    app = create_app(config)
    fast = find_fast_path(app)

    async def main() -> None:
        async with running(app):
            headers = [("Authorization", f"Bearer {ADMIN_TOKEN}"), ("Content-Type", NDJSON)]
            seeded = await call(app, "POST", "/admin/events", headers, body=ndjson(SEED_EVENTS))
            assert seeded.status == 200, seeded.body
            await asyncio.sleep(0.3)  # pages are kept once this process knows the versions
            await test(app, fast)

    asyncio.run(main())


def find_fast_path(app: Any) -> ListFastPath:
    fast: ListFastPath = starlette_side(app).app.state.list_fast_path
    return fast


def starlette_side(app: Any) -> Any:
    """What answers a request that no fast path answers: the stream endpoint and Starlette."""
    while not isinstance(app, StreamEndpoint):
        app = app.app
    return app


async def fast_and_slow(
    app: Any, fast: ListFastPath, method: str, target: str, headers: list[tuple[str, str]]
) -> tuple[Answer, Answer]:
    """The answer of the whole app (must be a fast-path hit) and of the Starlette side alone."""
    hits = fast.hits
    quick = await call(app, method, target, [*headers, REQUEST_ID])
    assert fast.hits == hits + 1, (method, target, "not answered by the fast path")
    assert quick.header(b"x-request-id") == REQUEST_ID[1].encode()
    slow = await call(starlette_side(app), method, target, headers)
    assert fast.hits == hits + 1
    return quick.without(b"x-request-id"), slow


def first(body: bytes, key: str) -> Any:
    return json.loads(body)["data"][0][key]


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Stop time.time (max-age counts whole seconds: both paths must see the same second)."""

    def freeze() -> None:
        now = time.time()
        monkeypatch.setattr(time, "time", lambda: now)

    return freeze


def test_every_resource_is_answered_with_the_same_bytes_as_the_slow_path(
    database_url: str, frozen_clock: Callable[[], None]
) -> None:
    async def test(app: Any, fast: ListFastPath) -> None:
        private = {"event": "client", "id": "acme", "statistics_private": True}
        headers = [("Authorization", f"Bearer {ADMIN_TOKEN}"), ("Content-Type", NDJSON)]
        assert (await call(app, "POST", "/admin/events", headers, body=ndjson([private]))).status
        vf = await asyncio.to_thread(cli_credentials, database_url, "volksfreund")
        acme = await asyncio.to_thread(cli_credentials, database_url, "acme")
        await asyncio.sleep(0.5)  # the change feed is read every 0.1 s
        frozen_clock()
        base = "/en/api_v4/clients/volksfreund"
        projects = await call(app, "GET", f"{base}/projects.json")
        project = first(projects.body, "id")
        funds = await call(app, "GET", f"{base}/matching_funds")
        donations = await call(app, "GET", f"{base}/client_donations", [vf])
        token = first(donations.body, "token")
        targets = [
            (base, []),
            (f"{base}.json", []),
            (f"{base}/projects?per_page=2&order=title:DESC", []),
            (f"{base}/projects/{project}.json", []),
            (f"{base}/pool", []),
            (f"{base}/pool/forwardings.json", []),
            (f"{base}/matching_funds", []),
            (f"{base}/matching_funds/{first(funds.body, 'id')}", []),
            ("/de/api_v4/clients/Volksfreund/client_donations?per_page=1", [vf]),
            (f"{base}/client_donations/{token}.json", [vf]),
            ("/en/api_v4/clients/acme/projects", [acme]),  # private statistics
            ("/en/api_v4/clients/acme", [acme]),
        ]
        for target, auth in targets:
            filled = await call(app, "GET", target, auth)
            assert filled.status == 200, (target, filled.body)
            etag = filled.header(b"etag")
            assert etag is not None
            private = bool(auth)
            expected = b"private, max-age=1200" if private else b"public, max-age=1200"
            assert filled.header(b"cache-control") == expected, target
            for method, extra in [
                ("GET", []),
                ("HEAD", []),
                ("GET", [("If-None-Match", etag.decode())]),
                ("HEAD", [("If-None-Match", f'"other", W/{etag.decode()}')]),
                ("GET", [("If-None-Match", '"other"')]),
            ]:
                quick, slow = await fast_and_slow(app, fast, method, target, [*auth, *extra])
                assert quick == slow, (method, target, extra)
                revalidated = extra and extra[0][1] != '"other"'
                assert quick.status == (304 if revalidated else 200)
                expected_body = b"" if method == "HEAD" or revalidated else filled.body
                assert quick.body == expected_body
                cors = quick.header(b"access-control-allow-origin")
                assert cors == (None if private else b"*"), target

    run_app(database_url, test)


def test_needs_of_a_project_are_never_cached(database_url: str) -> None:
    async def test(app: Any, fast: ListFastPath) -> None:
        target = "/en/api_v4/projects/1/needs"
        assert (await call(app, "GET", target)).status == 200
        assert (await call(app, "GET", target)).status == 200
        assert fast.hits == 0

    run_app(database_url, test)


def test_links_follow_the_host_so_each_host_has_its_own_page(database_url: str) -> None:
    async def test(app: Any, fast: ListFastPath) -> None:
        target = "/en/api_v4/clients/acme/projects"
        one = await call(app, "GET", target, host="one.example")
        await call(app, "GET", target, host="one.example")
        assert fast.hits == 1
        two = await call(app, "GET", target, host="two.example")
        assert fast.hits == 1  # a page with the other host's links is no hit
        assert b"http://one.example/" in one.body and b"two.example" not in one.body
        assert b"http://two.example/" in two.body and b"one.example" not in two.body
        forwarded = [("X-Forwarded-Host", "proxy.example"), ("X-Forwarded-Proto", "https")]
        three = await call(app, "GET", target, forwarded, host="one.example")
        assert b"proxy.example" not in three.body  # not trusted by default
        assert three.body == one.body

    run_app(database_url, test)


def test_trusted_forwarded_headers_have_their_own_pages(database_url: str) -> None:
    async def test(app: Any, fast: ListFastPath) -> None:
        target = "/en/api_v4/clients/acme/projects"
        plain = await call(app, "GET", target, host="one.example")
        forwarded = [("X-Forwarded-Host", "proxy.example"), ("X-Forwarded-Proto", "https")]
        via_proxy = await call(app, "GET", target, forwarded, host="one.example")
        assert fast.hits == 0
        assert b"https://proxy.example/" in via_proxy.body
        assert b"http://one.example/" in plain.body
        again = await call(app, "GET", target, forwarded, host="one.example")
        assert fast.hits == 1 and again.body == via_proxy.body

    run_app(database_url, test, trust_forwarded_headers=True)


def test_a_new_password_locks_the_old_one_out_of_cached_pages_within_a_second(
    database_url: str,
) -> None:
    async def test(app: Any, fast: ListFastPath) -> None:
        old = await asyncio.to_thread(cli_credentials, database_url, "volksfreund")
        acme = await asyncio.to_thread(cli_credentials, database_url, "acme")
        await asyncio.sleep(0.5)
        target = "/en/api_v4/clients/volksfreund/client_donations"
        assert (await call(app, "GET", target, [old])).status == 200
        assert (await call(app, "GET", target, [old])).status == 200
        assert fast.hits == 1
        new = await asyncio.to_thread(cli_credentials, database_url, "volksfreund")
        await asyncio.sleep(1.0)
        refused = await call(app, "GET", target, [old])
        assert refused.status == 401, refused.body
        assert refused.header(b"www-authenticate") is not None
        assert (await call(app, "GET", target, [new])).status == 200
        assert (await call(app, "GET", target, [new])).status == 200
        hits = fast.hits
        assert hits == 2  # the page is cached again, for the new password only
        assert (await call(app, "GET", target, [old])).status == 401
        assert (await call(app, "GET", target, [acme])).status == 404
        assert (await call(app, "GET", target)).status == 401
        bearer = ("Authorization", f"Bearer {ADMIN_TOKEN}")
        assert (await call(app, "GET", target, [bearer])).status == 401
        admin = basic("admin", ADMIN_TOKEN)
        assert (await call(app, "GET", target, [admin])).status == 401
        assert fast.hits == hits

    run_app(database_url, test)


def test_a_booking_makes_the_cached_page_stale_at_once(database_url: str) -> None:
    async def test(app: Any, fast: ListFastPath) -> None:
        target = "/en/api_v4/clients/acme/projects/2"
        before = await call(app, "GET", target)
        assert before.status == 200, before.body
        await call(app, "GET", target)
        assert fast.hits == 1
        donation = {
            "event": "donation",
            "token": "fast-path-booking",
            "channel": "platform",
            "receiver": {"type": "project", "id": 2},
            "amount_in_cents": 700,
        }
        headers = [("Authorization", f"Bearer {ADMIN_TOKEN}"), ("Content-Type", NDJSON)]
        booked = await call(app, "POST", "/admin/events", headers, body=ndjson([donation]))
        assert booked.status == 200, booked.body
        await asyncio.sleep(1.0)
        after = await call(app, "GET", target)
        assert fast.hits == 1
        donated = json.loads(after.body)["donated_amount_in_cents"]
        # 700 cents and as much again from volksfreund's fund, which matches on project 2
        assert donated == json.loads(before.body)["donated_amount_in_cents"] + 1400

    run_app(database_url, test)
