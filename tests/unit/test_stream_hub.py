"""The stream hub's fan-out, without a server: one load per change, latest figures win."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Any

import pytest

from clientstats.api.stream_hub import HEARTBEAT, StreamHub, Subscriber, encode_event
from clientstats.cache.base import CachedResponse
from clientstats.storage.change_feed import ClientVersion


def entry(version: int, donated: int, *, private: bool = False) -> CachedResponse:
    body = b'{"donated_amount_in_cents":%d}' % donated
    return CachedResponse("vf", version, body, b'"e"', 1e12, private)


class FakeLive:
    """What the hub uses of LiveStatistics: versions, the cache, loads and change reports."""

    def __init__(self, first: CachedResponse) -> None:
        self.versions = {"vf": ClientVersion(first.version, 1, first.private)}
        self.on_changes: list[Any] = []
        self.stored = first
        self.loads = 0
        self.next_loads: list[CachedResponse] = []  # what the coming loads return, in order

    def fresh(self, permalink: str, now: float) -> CachedResponse | None:
        known = self.versions[permalink].version
        return self.stored if self.stored.version == known else None

    async def load(self, permalink: str) -> CachedResponse:
        self.loads += 1
        await asyncio.sleep(0)
        loaded = self.next_loads.pop(0) if self.next_loads else self.stored
        self.stored = loaded
        return loaded

    def book(self, booked: CachedResponse) -> Collection[str]:
        """A change: a new version, as the change feed reports it."""
        self.versions["vf"] = ClientVersion(booked.version, booked.version, booked.private)
        self.next_loads.append(booked)
        return {"vf"}


def hub_with(
    first: CachedResponse, subscribers: int, heartbeat: float = 60
) -> tuple[FakeLive, StreamHub, list[Subscriber]]:
    live = FakeLive(first)
    hub = StreamHub(live, max_subscribers=1000, heartbeat=heartbeat)  # type: ignore[arg-type]
    subs = []
    for _ in range(subscribers):
        assert hub.admit()
        subs.append(hub.subscribe(first, owner=False, last_event_id=None))
    return live, hub, subs


async def body(subscriber: Subscriber) -> object:
    message = await subscriber.next_message()
    return None if message is None else message["body"]


async def nothing_for(subscriber: Subscriber, seconds: float = 0.05) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(subscriber.next_message(), seconds)


def test_one_load_per_change_and_the_same_bytes_for_every_subscriber() -> None:
    async def scenario() -> None:
        live, _, subs = hub_with(entry(1, 0), 600)  # more than one batch
        for sub in subs:
            assert await body(sub) == encode_event(entry(1, 0))
        for callback in live.on_changes:
            callback(live.book(entry(2, 500)))
        messages = [await sub.next_message() for sub in subs]
        assert live.loads == 1
        assert messages[0] is not None and messages[0]["body"] == encode_event(entry(2, 500))
        assert all(message is messages[0] for message in messages)  # encoded once, shared

    asyncio.run(scenario())


def test_a_slow_subscriber_skips_to_the_latest_figures() -> None:
    async def scenario() -> None:
        live, hub, (slow,) = hub_with(entry(1, 0), 1)
        await body(slow)
        for version in (2, 3, 4):
            hub.changed(live.book(entry(version, version * 100)))
            while hub._tasks:
                await asyncio.sleep(0)
        assert await body(slow) == encode_event(entry(4, 400))
        await nothing_for(slow)

    asyncio.run(scenario())


def test_a_new_version_with_the_same_figures_sends_nothing_and_counts_as_seen() -> None:
    async def scenario() -> None:
        live, hub, (sub,) = hub_with(entry(1, 100), 1)
        await body(sub)
        hub.changed(live.book(entry(2, 100)))
        await nothing_for(sub)
        assert live.loads == 1
        assert hub.admit()
        resumed = hub.subscribe(entry(2, 100), owner=False, last_event_id="1")
        await nothing_for(resumed)  # "1" has today's figures
        assert hub.admit()
        stale = hub.subscribe(entry(2, 100), owner=False, last_event_id="0")
        assert await body(stale) == encode_event(entry(2, 100))

    asyncio.run(scenario())


def test_a_load_that_returns_older_figures_is_repeated() -> None:
    async def scenario() -> None:
        live, hub, (sub,) = hub_with(entry(1, 0), 1)
        await body(sub)
        live.versions["vf"] = ClientVersion(2, 2, False)
        live.next_loads = [entry(1, 0), entry(2, 200)]  # the first joined a load begun earlier
        hub.changed({"vf"})
        assert await body(sub) == encode_event(entry(2, 200))
        assert live.loads == 2

    asyncio.run(scenario())


def test_turning_private_ends_every_stream_but_the_clients_own() -> None:
    async def scenario() -> None:
        live, hub, (public,) = hub_with(entry(1, 0), 1)
        assert hub.admit()
        own = hub.subscribe(entry(1, 0), owner=True, last_event_id=None)
        await body(public)
        await body(own)
        hub.changed(live.book(entry(2, 50, private=True)))
        assert await public.next_message() is None
        assert await body(own) == encode_event(entry(2, 50, private=True))

    asyncio.run(scenario())


def test_the_limit_and_closing() -> None:
    async def scenario() -> None:
        live = FakeLive(entry(1, 0))
        hub = StreamHub(live, max_subscribers=2)  # type: ignore[arg-type]
        assert hub.admit() and hub.admit() and not hub.admit()
        hub.release()
        sub = hub.subscribe(entry(1, 0), owner=False, last_event_id=None)
        hub.close()
        assert not hub.admit()
        assert await sub.next_message() is None
        hub.unsubscribe(sub)
        assert hub.count == 0


def test_every_stream_gets_a_heartbeat_each_interval() -> None:
    async def scenario() -> None:
        _, hub, subs = hub_with(entry(1, 0), 3, heartbeat=0.01)
        for sub in subs:
            await body(sub)
        for sub in subs:
            assert await sub.next_message() is HEARTBEAT
            assert await sub.next_message() is HEARTBEAT
        hub.close()

    asyncio.run(scenario())
