"""Responses the outermost middleware sends on its own, for the plainest request of a path.

A fast path that answers a plain GET of a path from its cache (today: public statistics)
leaves that answer here too, with what bounds its validity: a time (the end of its TTL, or
the next second its max-age counts down to) and the change counter of its source as it was
before the answer was looked up. The next plain GET of that path is sent from here after a
dict lookup, a look at the clock and one integer comparison, without calling the app at all.

"Plain" means GET without If-None-Match or Authorization: those headers can change the answer
(a 304, private data), so such requests, HEAD and every other method take the full way.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol

Message = MutableMapping[str, Any]
MAX_PREPARED_PATHS = 10_000


class ChangeCounter(Protocol):
    """Whatever the prepared answers were made from: its counter grows on every change."""

    changes_seen: int


@dataclass(slots=True)
class HitCounter:
    """A plain int shared by the prepared answers of one fast path, read by the metrics."""

    count: int = 0


@dataclass(slots=True)
class Prepared:
    """One path's answer to a plain GET, current while `until` and `seen` hold."""

    headers: list[tuple[bytes, bytes]]  # of the start message, without X-Request-ID
    body: Message  # the http.response.body message
    until: float  # time.time() from which it must not be sent any more
    source: ChangeCounter
    seen: int  # source.changes_seen read before the answer was looked up
    hits: HitCounter


class PreparedAnswers(dict[str, Prepared]):
    """Prepared answers by path, bounded: paths come from the outside."""

    def keep(self, path: str, prepared: Prepared) -> None:
        if len(self) >= MAX_PREPARED_PATHS and path not in self:
            self.clear()
        self[path] = prepared
