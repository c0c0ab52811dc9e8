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

Message = dict[str, object]

HEARTBEAT: Message = {"type": "http.response.body", "body": b": keep-alive\n\n", "more_body": True}
# Versions whose figures equal the current ones that a reconnect may name: a few suffice.
_MAX_ALIASES = 32
_MAX_ATTEMPTS = 3  # loads per change before waiting for the next one (see _refresh)
# Streams woken per turn of the event loop: between turns, other requests get their turn.
_BATCH = 256
# The streams take turns for their heartbeat: a fifteenth of them each fifteenth of the
# interval, so that no moment wakes them all at once.
_BEAT_SLICES = 15


def encode_event(entry: CachedResponse) -> bytes:
    """The `statistics` event of a rendered response; its id is the figures' version token."""
    return b"event: statistics\nid: %d\ndata: %s\n\n" % (entry.version, entry.body)


def _body(chunk: bytes) -> Message:
    """An ASGI body message of an open stream; one per event, shared by every subscriber."""
    return {"type": "http.response.body", "body": chunk, "more_body": True}


class Subscriber:
    """One open stream: the next message to send, and whether it has ended.

    Waiting costs one future, no timer and no task of its own: heartbeats come from the
    hub's single clock, so a change wakes each subscriber once and nothing else.
    """

    __slots__ = ("_loop", "_pending", "_waiter", "closed", "owner", "permalink", "slot")

    def __init__(self, permalink: str, *, owner: bool, slot: int = 0) -> None:
        self.permalink = permalink
        self.owner = owner  # authenticated as the client itself (may read private figures)
        self.slot = slot  # its turn for heartbeats
        self.closed = False
        self._loop = asyncio.get_running_loop()
        self._pending: Message | None = None
        self._waiter: asyncio.Future[None] | None = None

    def deliver(self, message: Message) -> None:
        """Replace whatever is not sent yet with `message` (the latest figures win)."""
        self._pending = message
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def beat(self) -> None:
        """A heartbeat, unless something is about to be sent anyway."""
        if self._pending is None:
            self.deliver(HEARTBEAT)

    def close(self) -> None:
        """End the stream after the send in progress, if any."""
        self.closed = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def next_message(self) -> Message | None:
        """The next body message to send (the latest event or a heartbeat); None once closed."""
        if self._pending is None and not self.closed:
            waiter = self._waiter = self._loop.create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        if self.closed:
            return None
        message, self._pending = self._pending, None
        return message


@dataclass(eq=False)
class _Topic:
    """The subscribers of one client and the figures they were sent last."""

    permalink: str
    subscribers: set[Subscriber] = field(default_factory=set)
    entry: CachedResponse | None = None
    event: Message = field(default_factory=dict)
    same_figures: set[str] = field(default_factory=set)  # event ids with these figures
    refreshing: bool = False
    again: bool = False  # a change arrived during a refresh: load once more after it


class StreamHub:
    """The subscribers of one process, grouped by client."""

    def __init__(
        self,
        live: LiveStatistics,
        *,
        max_subscribers: int,
        heartbeat: float = 15.0,
        retry_delay: float = 1.0,
    ) -> None:
        self.live = live
        self.max_subscribers = max_subscribers
        self.heartbeat = heartbeat
        self.retry_delay = retry_delay
        self._clock: asyncio.Task[None] | None = None
        self._slots = 0
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
            for receiver in self._install(topic, entry):
                receiver.deliver(topic.event)
        if not self._is_current(topic.entry):
            self._refresh(topic)  # a change this hub had no subscriber for when it was reported
        self._slots = (self._slots + 1) % _BEAT_SLICES
        subscriber = Subscriber(entry.permalink, owner=owner, slot=self._slots)
        topic.subscribers.add(subscriber)
        if self._clock is None:
            self._clock = asyncio.get_running_loop().create_task(self._beat_forever())
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
        if self._clock is not None:
            self._clock.cancel()
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

    def _install(self, topic: _Topic, entry: CachedResponse) -> list[Subscriber]:
        """Make `entry` the topic's figures; the subscribers to tell if the figures changed."""
        old = topic.entry
        if old is not None and old.version == entry.version:
            return []
        topic.entry = entry
        if entry.private:  # turned private: only the client's own credentials may go on
            for subscriber in [s for s in topic.subscribers if not s.owner]:
                subscriber.close()
        topic.event = _body(encode_event(entry))  # new subscribers get the current version's id
        if old is not None and old.body == entry.body:
            if len(topic.same_figures) < _MAX_ALIASES:
                topic.same_figures.add(str(entry.version))
            return []  # a new version with the same figures: nothing to tell anyone
        topic.same_figures = {str(entry.version)}
        return list(topic.subscribers)

    async def _tell(self, receivers: list[Subscriber], message: Message) -> None:
        """Hand `message` to the receivers, a batch per turn of the event loop."""
        for start in range(0, len(receivers), _BATCH):
            if start:
                await asyncio.sleep(0)
            for receiver in receivers[start : start + _BATCH]:
                receiver.deliver(message)

    async def _beat_forever(self) -> None:
        """A comment on every stream once per heartbeat interval, so proxies keep them open."""
        turn = 0
        while True:
            await asyncio.sleep(self.heartbeat / _BEAT_SLICES)
            turn = (turn + 1) % _BEAT_SLICES
            for topic in self._topics.values():
                for subscriber in topic.subscribers:
                    if subscriber.slot == turn:
                        subscriber.beat()

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
                await self._tell(self._install(topic, entry), topic.event)
                attempts += 1
                # A load that joined one begun before the change returns older figures.
                if not topic.again and (self._is_current(entry) or attempts >= _MAX_ATTEMPTS):
                    break
        finally:
            topic.refreshing = False
            if not topic.subscribers and self._topics.get(topic.permalink) is topic:
                del self._topics[topic.permalink]
