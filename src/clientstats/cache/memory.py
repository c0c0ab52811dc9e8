"""The in-process statistics cache: a dict, bounded by the number of clients."""

from __future__ import annotations

from clientstats.cache.base import CachedResponse


class InProcessCache:
    """A per-process cache; safe to use from the event loop and from worker threads."""

    def __init__(self) -> None:
        self._entries: dict[str, CachedResponse] = {}

    def get(self, permalink: str) -> CachedResponse | None:
        return self._entries.get(permalink)

    def put(self, entry: CachedResponse) -> None:
        self._entries[entry.permalink] = entry

    def discard(self, permalink: str) -> None:
        self._entries.pop(permalink, None)
