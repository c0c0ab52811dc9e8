"""Prepared answers: a plain GET of public statistics is sent by the outermost middleware.

The app runs in-process so that each request can be traced to the path that answered it:
the prepared answer (counted in its HitCounter, the app's fast path not asked) or the
statistics endpoint's lookup.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clientstats.api.app import create_app
from clientstats.api.statistics_endpoint import (
    StatisticsEndpoint,
    _max_age_until,
    stated_max_age,
)
from clientstats.cache.base import CachedResponse
from clientstats.config import Settings
from tests.api.asgi_driver import Answer, call, running
from tests.api.conftest import NDJSON, SEED_EVENTS, donation, ndjson, new_client_events
from tests.conftest import ADMIN_TOKEN

ADMIN = [("Authorization", f"Bearer {ADMIN_TOKEN}"), ("Content-Type", NDJSON)]


class Traced:
    """The app, with a count of the requests its fast-path lookup was asked about."""

    def __init__(self, database_url: str) -> None:
        config = Settings(
            database_url=database_url,
            admin_token=ADMIN_TOKEN,
            worker_in_process=False,
            freshness_poll_interval=0.05,
            metrics=True,
        )
        self.app: Any = create_app(config)
        statistics = self.app.app
        assert isinstance(statistics, StatisticsEndpoint)
        self.statistics = statistics
        self.lookups = 0
        lookup = self.app.answer

        def counted(scope: Any) -> Any:
            self.lookups += 1
            return lookup(scope)

        self.app.answer = counted

    async def get(self, target: str, headers: list[tuple[str, str]] | None = None) -> Answer:
        return await call(self.app, "GET", target, headers or [])

    async def post_events(self, events: list[dict[str, Any]]) -> None:
        posted = await call(self.app, "POST", "/admin/events", ADMIN, body=ndjson(events))
        assert posted.status == 200, posted.body


def run(database_url: str, test: Any) -> None:
    traced = Traced(database_url)

    async def main() -> None:
        async with running(traced.app):
            await traced.post_events(SEED_EVENTS)
            await asyncio.sleep(0.3)  # this process knows the versions of the seeded clients
            await test(traced)

    asyncio.run(main())


def figures(answer: Answer) -> dict[str, int]:
    body: dict[str, int] = json.loads(answer.body)
    return body


def test_a_plain_get_after_a_hit_is_the_same_answer_sent_without_a_lookup(
    database_url: str,
) -> None:
    target = "/de/api_v4/clients/volksfreund/project_statistics.json"

    async def test(traced: Traced) -> None:
        miss = await traced.get(target)
        hit = await traced.get(target)  # answered by the lookup, which prepares the answer
        lookups, hits = traced.lookups, traced.statistics.process_hits
        prepared = await traced.get(target, [("X-Request-ID", "given-id")])
        assert traced.lookups == lookups, "the prepared answer was not used"
        assert traced.statistics.process_hits == hits + 1  # still counted as a process hit
        assert prepared.header(b"x-request-id") == b"given-id"
        assert hit.header(b"x-request-id") != miss.header(b"x-request-id")
        for answer in (miss, hit):
            assert answer.status == prepared.status == 200
            assert answer.body == prepared.body
            # The same headers, but max-age may have counted down a second in between.
            same = answer.without(b"x-request-id").without(b"cache-control")
            assert (
                same.headers == prepared.without(b"x-request-id").without(b"cache-control").headers
            )
        assert (prepared.header(b"cache-control") or b"").startswith(b"public, max-age=")
        names = [name for name, _ in prepared.headers]
        assert names == [name for name, _ in hit.headers]
        assert prepared.header(b"etag") == hit.header(b"etag")
        assert prepared.header(b"access-control-allow-origin") == b"*"

    run(database_url, test)


def test_requests_that_can_change_the_answer_take_the_full_way(database_url: str) -> None:
    target = "/en/api_v4/clients/volksfreund/project_statistics"

    async def test(traced: Traced) -> None:
        await traced.get(target)
        first = await traced.get(target)
        etag = first.header(b"etag")
        assert etag is not None
        lookups = traced.lookups
        revalidated = await traced.get(target, [("If-None-Match", etag.decode())])
        assert revalidated.status == 304 and revalidated.body == b""
        head = await call(traced.app, "HEAD", target)
        assert head.status == 200 and head.body == b""
        authorized = await traced.get(target, [("Authorization", "Basic eDp5")])
        assert authorized.status == 200 and authorized.body == first.body
        assert traced.lookups == lookups + 3  # none of them was sent prepared

    run(database_url, test)


def test_a_booking_ends_the_prepared_answer_at_the_next_poll(database_url: str) -> None:
    events = new_client_events("prepared-client", requested=100_000)
    target = "/en/api_v4/clients/prepared-client/project_statistics.json"

    async def test(traced: Traced) -> None:
        await traced.post_events(events)
        await asyncio.sleep(0.3)
        await traced.get(target)
        before = await traced.get(target)
        lookups = traced.lookups
        assert (await traced.get(target)).body == before.body and traced.lookups == lookups
        live = traced.statistics.live()
        seen = live.changes_seen
        await traced.post_events([donation("prepared-d1", events[1]["id"], 2500)])
        for _ in range(40):  # the change feed is read every 0.05 s
            await asyncio.sleep(0.05)
            if live.changes_seen != seen:
                break
        assert live.changes_seen != seen, "the poll did not see the booking"
        lookups = traced.lookups
        after = await traced.get(target)
        assert figures(after)["donated_amount_in_cents"] == 2500
        assert figures(before)["donated_amount_in_cents"] == 0
        assert traced.lookups == lookups + 1  # the stale prepared answer was not sent

    run(database_url, test)


def test_a_change_anywhere_makes_every_prepared_answer_look_again(database_url: str) -> None:
    target = "/de/api_v4/clients/volksfreund/project_statistics"

    async def test(traced: Traced) -> None:
        for _ in range(3):
            await traced.get(target)
        lookups = traced.lookups
        traced.statistics.live().changes_seen += 1  # as a poll in another thread would
        again = await traced.get(target)
        assert again.status == 200
        assert traced.lookups == lookups + 1
        await traced.get(target)
        assert traced.lookups == lookups + 1  # prepared again by that lookup

    run(database_url, test)


def _entry(expires_at: float) -> CachedResponse:
    return CachedResponse(
        permalink="c", version=1, body=b"{}", etag=b'"e"', expires_at=expires_at, private=False
    )


@given(
    expires_at=st.floats(min_value=1e9, max_value=2e9),
    left=st.floats(min_value=1e-3, max_value=3600),
    cap=st.integers(min_value=0, max_value=3600),
    step=st.floats(min_value=0, max_value=1),
)
def test_a_prepared_answer_ends_when_its_max_age_would_change(
    expires_at: float, left: float, cap: int, step: float
) -> None:
    now = expires_at - left
    until = _max_age_until(_entry(expires_at), now, cap)
    assert now < until <= expires_at
    stated = stated_max_age(expires_at, now, cap)
    inside = now + max(0.0, until - now - 1e-5) * step  # short of `until` beyond rounding
    assert stated_max_age(expires_at, inside, cap) == stated
    if until < expires_at:  # a moment later (beyond float rounding) it says one second less
        assert stated_max_age(expires_at, until + 1e-5, cap) == stated - 1


@pytest.mark.parametrize("cap", [0, 60])
def test_the_last_second_before_expiry_is_prepared_up_to_expiry(cap: int) -> None:
    assert _max_age_until(_entry(1000.0), 999.5, cap) == 1000.0
