"""Fan-out of live figures: one read per change per process, the same bytes to every subscriber.

Per client with open streams the hub keeps the figures it sent last, encoded once as a
Server-Sent Event. The change feed (LiveStatistics.on_changes) tells it which clients may
have changed; it then loads each such client's figures once (LiveStatistics.load, shared
with concurrent statistics requests) and hands the new event to every subscriber. A
subscriber holds at most one undelivered event, so a slow reader skips to the latest
figures instead of queueing old ones, and the hub never waits for any socket.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection
from dataclasses import dataclass, field

from clientstats.cache.base import CachedResponse
from clientstats.services.live_statistics import LiveStatistics

log = logging.getLogger(__name__)

HEARTBEAT = b": keep-alive\n\n"
# Versions whose figures equal the current ones that a reconnect may name: a few suffice.
_MAX_ALIASES = 32
_MAX_ATTEMPTS = 3  # loads per change before waiting for the next one (see _refresh)


def encode_event(entry: CachedResponse) -> bytes:
    """The `statistics` event of a rendered response; its id is the figures' version token."""
    return b"event: statistics\nid: %d\ndata: %s\n\n" % (entry.version, entry.body)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class Subscriber:
    """One open stream: the next bytes to write, and whether it has ended."""

    __slots__ = ("_pending", "_waiter", "closed", "owner", "permalink")

    def __init__(self, permalink: str, *, owner: bool) -> None:
        self.permalink = permalink
        self.owner = owner  # authenticated as the client itself (may read private figures)
        self.closed = False
        self._pending: bytes | None = None
        self._waiter: asyncio.Future[None] | None = None

    def deliver(self, chunk: bytes) -> None:
        """Replace whatever is not written yet with `chunk` (the latest figures win)."""
        self._pending = chunk
        if self._waiter is not None:
            _wake(self._waiter)

    def close(self) -> None:
        """End the stream after the write in progress, if any."""
        self.closed = True
        if self._waiter is not None:
            _wake(self._waiter)

    async def next_chunk(self, heartbeat: float) -> bytes | None:
        """The latest event; a heartbeat after `heartbeat` seconds of quiet; None once closed."""
        if self._pending is None and not self.closed:
            loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            # One timer per quiet wait: cheaper than a task per subscriber around wait_for.
            timer = loop.call_later(heartbeat, _wake, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
        if self.closed:
            return None
        chunk, self._pending = self._pending, None
        return HEARTBEAT if chunk is None else chunk


@dataclass(eq=False)
class _Topic:
    """The subscribers of one client and the figures they were sent last."""

    permalink: str
    subscribers: set[Subscriber] = field(default_factory=set)
    entry: CachedResponse | None = None
    event: bytes = b""
    same_figures: set[str] = field(default_factory=set)  # event ids with these figures
    refreshing: bool = False
    again: bool = False  # a change arrived during a refresh: load once more after it


class StreamHub:
    """The subscribers of one process, grouped by client."""

    def __init__(
        self, live: LiveStatistics, *, max_subscribers: int, retry_delay: float = 1.0
    ) -> None:
        self.live = live
        self.max_subscribers = max_subscribers
        self.retry_delay = retry_delay
        self.count = 0  # admitted streams, including those still being set up
        self.closing = False
        self._topics: dict[str, _Topic] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        live.on_changes.append(self.changed)

    def admit(self) -> bool:
        """Reserve a place for a new stream; False when full or shutting down."""
        if self.closing or self.count >= self.max_subscribers:
            return False
        self.count += 1
        return True

    def release(self) -> None:
        """Give back a place reserved by `admit` that did not become a subscriber."""
        self.count -= 1

    async def current(self, permalink: str) -> CachedResponse:
        """The client's current figures: the hub's own if current, else the live cache's."""
        topic = self._topics.get(permalink)
        if topic is not None and topic.entry is not None and self._is_current(topic.entry):
            return topic.entry
        return self.live.fresh(permalink, time.time()) or await self.live.load(permalink)

    def subscribe(
        self, entry: CachedResponse, *, owner: bool, last_event_id: str | None
    ) -> Subscriber:
        """Add an admitted stream; it gets the figures first unless it has them already."""
        topic = self._topics.get(entry.permalink)
        if topic is None:
            topic = self._topics[entry.permalink] = _Topic(entry.permalink)
        if topic.entry is None or self._is_current(entry):
            self._install(topic, entry)
        if not self._is_current(topic.entry):
            self._refresh(topic)  # a change this hub had no subscriber for when it was reported
        subscriber = Subscriber(entry.permalink, owner=owner)
        topic.subscribers.add(subscriber)
        if last_event_id is None or last_event_id not in topic.same_figures:
            subscriber.deliver(topic.event)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Forget a stream that ended."""
        self.count -= 1
        topic = self._topics.get(subscriber.permalink)
        if topic is None:
            return
        topic.subscribers.discard(subscriber)
        if not topic.subscribers and not topic.refreshing:
            del self._topics[subscriber.permalink]

    def close(self) -> None:
        """End every stream and admit no new one (the server is shutting down)."""
        self.closing = True
        for topic in self._topics.values():
            for subscriber in topic.subscribers:
                subscriber.close()

    def changed(self, permalinks: Collection[str]) -> None:
        """The change feed's report: refresh the clients with subscribers whose figures moved."""
        topics = self._topics
        if len(topics) < len(permalinks):
            candidates = [t for p, t in topics.items() if p in permalinks]
        else:
            candidates = [topics[p] for p in permalinks if p in topics]
        for topic in candidates:
            if topic.entry is None or not self._is_current(topic.entry):
                self._refresh(topic)

    def _is_current(self, entry: CachedResponse | None) -> bool:
        known = self.live.versions.get(entry.permalink) if entry is not None else None
        return known is not None and entry is not None and known.version == entry.version

    def _install(self, topic: _Topic, entry: CachedResponse) -> None:
        """Make `entry` the topic's figures; an event to every subscriber if they changed."""
        old = topic.entry
        if old is not None and old.version == entry.version:
            return
        topic.entry = entry
        if entry.private:  # turned private: only the client's own credentials may go on
            for subscriber in [s for s in topic.subscribers if not s.owner]:
                subscriber.close()
        if old is not None and old.body == entry.body:
            if len(topic.same_figures) < _MAX_ALIASES:
                topic.same_figures.add(str(entry.version))
            return  # a new version with the same figures: nothing to tell anyone
        topic.event = encode_event(entry)
        topic.same_figures = {str(entry.version)}
        for subscriber in topic.subscribers:
            subscriber.deliver(topic.event)

    def _refresh(self, topic: _Topic) -> None:
        if topic.refreshing:
            topic.again = True
            return
        topic.refreshing = True
        task = asyncio.get_running_loop().create_task(self._refreshing(topic))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _refreshing(self, topic: _Topic) -> None:
        """Load until the topic is current; one load serves every change that came meanwhile."""
        attempts, failing = 0, False
        try:
            while topic.subscribers and not self.closing:
                topic.again = False
                try:
                    entry = await self.current(topic.permalink)
                except Exception as exc:
                    if not failing:
                        log.warning("live figures of %s unavailable: %r", topic.permalink, exc)
                    failing = True
                    await asyncio.sleep(self.retry_delay)
                    continue
                failing = False
                self._install(topic, entry)
                attempts += 1
                # A load that joined one begun before the change returns older figures.
                if not topic.again and (self._is_current(entry) or attempts >= _MAX_ATTEMPTS):
                    break
        finally:
            topic.refreshing = False
            if not topic.subscribers and self._topics.get(topic.permalink) is topic:
                del self._topics[topic.permalink]
