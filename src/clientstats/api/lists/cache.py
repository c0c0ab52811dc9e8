"""Rendered list pages kept per process, served only while the client's version is current."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

MAX_ENTRIES = 4096


@dataclass(frozen=True, slots=True)
class RenderedPage:
    """A list response as sent: its body, tag and what decides whether it may be reused."""

    body: bytes
    etag: str
    version: int | None  # the client's version in the snapshot it was read from
    private: bool
    expires_at: float


class PageCache:
    """A bounded LRU of rendered pages, keyed by client and the canonical request."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, ...], RenderedPage] = OrderedDict()

    def get(self, key: tuple[str, ...], version: int | None, now: float) -> RenderedPage | None:
        """The page if it was read at `version` and has not expired."""
        entry = self._entries.get(key)
        if entry is None or version is None or entry.version != version:
            return None
        if entry.expires_at <= now:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry

    def put(self, key: tuple[str, ...], entry: RenderedPage) -> None:
        """Keep a page; the least recently used one goes when full."""
        if entry.version is None:
            return
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
