"""Per-request HTTP counters as plain ints: a response costs a few dict and list updates."""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict

# Upper bounds of the latency histogram, in seconds; a cache hit lands in the first ones.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class HttpTallies:
    """Responses by (route, status) and latency buckets by route; bumped on the event loop."""

    def __init__(self) -> None:
        self.responses: defaultdict[tuple[str, int], int] = defaultdict(int)
        # Per route: counts per bucket (not cumulative; the last is +Inf) and the sum of seconds.
        self.buckets: defaultdict[str, list[int]] = defaultdict(lambda: [0] * (len(BUCKETS) + 1))
        self.seconds: defaultdict[str, float] = defaultdict(float)

    def record(self, route: str, status: int, seconds: float) -> None:
        """Count one response of `route` with this status that took `seconds`."""
        self.responses[route, status] += 1
        # Prometheus buckets are `le`: a value equal to a bound belongs to that bucket.
        self.buckets[route][bisect_left(BUCKETS, seconds)] += 1
        self.seconds[route] += seconds
