"""Per-request HTTP counters as plain ints: a response costs a few dict and list updates."""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass

# Upper bounds of the latency histogram, in seconds; a cache hit lands in the first ones.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(slots=True)
class QuickOks:
    """200s of one route that took at most the first bucket's bound, kept apart.

    The prepared answers are counted here with two additions instead of a `record`; `fold`
    moves them into the tallies before they are read.
    """

    count: int = 0
    seconds: float = 0.0


class HttpTallies:
    """Responses by (route, status) and latency buckets by route; bumped on the event loop."""

    def __init__(self) -> None:
        self.responses: defaultdict[tuple[str, int], int] = defaultdict(int)
        # Per route: counts per bucket (not cumulative; the last is +Inf) and the sum of seconds.
        self.buckets: defaultdict[str, list[int]] = defaultdict(lambda: [0] * (len(BUCKETS) + 1))
        self.seconds: defaultdict[str, float] = defaultdict(float)
        self._quick: dict[str, QuickOks] = {}

    def record(self, route: str, status: int, seconds: float) -> None:
        """Count one response of `route` with this status that took `seconds`."""
        self.responses[route, status] += 1
        # Prometheus buckets are `le`: a value equal to a bound belongs to that bucket.
        self.buckets[route][bisect_left(BUCKETS, seconds)] += 1
        self.seconds[route] += seconds

    def quick_oks(self, route: str) -> QuickOks:
        """Where fast 200s of `route` may be counted (see QuickOks)."""
        return self._quick.setdefault(route, QuickOks())

    def fold(self) -> None:
        """Move the quick counts into `responses`, `buckets` and `seconds`."""
        for route, quick in self._quick.items():
            if quick.count:
                self.responses[route, 200] += quick.count
                self.buckets[route][0] += quick.count
                self.seconds[route] += quick.seconds
                quick.count, quick.seconds = 0, 0.0
