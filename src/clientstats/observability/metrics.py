"""The Prometheus metrics: the plain counters of `tallies` moved into prometheus_client.

Hot paths only bump ints (see `tallies`, `http_tallies`). Every second, at each scrape and
at shutdown, `Metrics.flush` adds what was counted since the last flush to
prometheus_client's metrics. With `PROMETHEUS_MULTIPROC_DIR` set (`serve --workers N`),
prometheus_client keeps those in per-process files in that directory and a scrape sums
every process's, so whichever process answers `/metrics` reports the whole server; the
others' counts are at most one flush interval old. Without it, the metrics live in a
registry of this app.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from clientstats.observability import tallies
from clientstats.observability.http_tallies import BUCKETS, HttpTallies
from clientstats.observability.multiprocess import MULTIPROCESS_DIR

FLUSH_INTERVAL = 1.0  # seconds: how old another process's counts may be in a scrape

Counts = Mapping[tuple[str, ...], int]

# `_created` series would double every counter's output for a figure nobody asked for
# (and multiprocess mode has none): one shape in both modes.
disable_created_metrics()  # type: ignore[no-untyped-call]


@dataclass(frozen=True, slots=True)
class Observed:
    """What the app counted itself, read at each flush."""

    cache_hits: Counts  # by level: process, redis, database
    cache_misses: Counts  # by level: process, redis
    feed_age: float | None  # seconds since the change feed was last read successfully
    list_hits: int = 0  # drill-down list pages answered from the process's page cache


@dataclass(frozen=True, slots=True)
class PendingRequests:
    """The client requests waiting for a worker, read at scrape time."""

    count: int
    oldest_age: float  # seconds; 0 when none waits


class Metrics:
    """The metrics of one API process, fed from its plain counters."""

    def __init__(self, http: HttpTallies, observe: Callable[[], Observed]) -> None:
        self.http = http
        self.observe = observe
        self.multiprocess = MULTIPROCESS_DIR in os.environ
        self.registry = registry = CollectorRegistry()
        self.responses = Counter(
            "clientstats_http_requests",
            "HTTP responses by route template and status",
            ["route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "clientstats_http_request_duration_seconds",
            "Time from a request's arrival to its response's last byte, by route template",
            ["route"],
            buckets=BUCKETS,
            registry=registry,
        )
        self.cache_hits = Counter(
            "clientstats_statistics_cache_hits",
            "Statistics answers by the level that had them (database: computed by a query)",
            ["level"],
            registry=registry,
        )
        self.cache_misses = Counter(
            "clientstats_statistics_cache_misses",
            "Statistics lookups a cache level could not answer",
            ["level"],
            registry=registry,
        )
        self.list_hits = Counter(
            "clientstats_list_cache_hits",
            "Drill-down list responses answered from the process's page cache",
            registry=registry,
        )
        self.bookings = Counter(
            "clientstats_bookings",
            "Client requests booked by the worker, by kind and outcome (or failure code)",
            ["kind", "outcome"],
            registry=registry,
        )
        self.import_lines = Counter(
            "clientstats_import_lines",
            "Ledger event lines uploaded to /admin/events, by outcome",
            ["outcome"],
            registry=registry,
        )
        self.database_errors = Counter(
            "clientstats_database_errors",
            "Errors raised by the database driver, by kind",
            ["kind"],
            registry=registry,
        )
        self.redis_errors = Counter(
            "clientstats_redis_errors",
            "Errors talking to Redis, by kind",
            ["kind"],
            registry=registry,
        )
        self.pending_errors = Counter(
            "clientstats_pending_requests_errors",
            "Scrapes whose pending-requests query failed or timed out",
            registry=registry,
        )
        self.feed_age = Gauge(
            "clientstats_freshness_feed_age_seconds",
            "Seconds since the process last read the change feed (worst live process)",
            registry=registry,
            multiprocess_mode="livemax",
        )
        self._flushed: dict[tuple[object, tuple[str, ...]], float] = {}

    def flush(self) -> None:
        """Add what was counted since the last flush to the Prometheus metrics."""
        http = self.http
        http.fold()
        responses: Counts = {
            (route, str(status)): n for (route, status), n in list(http.responses.items())
        }
        self._add(self.responses, responses)
        for route, counts in list(http.buckets.items()):
            self._add_observations(route, counts, http.seconds[route])
        observed = self.observe()
        self._add(self.cache_hits, observed.cache_hits)
        self._add(self.cache_misses, observed.cache_misses)
        self._add(self.list_hits, {(): observed.list_hits})
        self._add(self.bookings, tallies.BOOKINGS.snapshot())
        self._add(self.import_lines, tallies.IMPORT_LINES.snapshot())
        self._add(self.database_errors, tallies.DATABASE_ERRORS.snapshot())
        self._add(self.redis_errors, tallies.REDIS_ERRORS.snapshot())
        if observed.feed_age is not None:
            self.feed_age.set(observed.feed_age)

    def _delta(self, metric: object, labels: tuple[str, ...], total: float) -> float:
        key = (metric, labels)
        delta = total - self._flushed.get(key, 0)
        self._flushed[key] = total
        return delta

    def _add(self, counter: Counter, counts: Counts) -> None:
        for labels, total in counts.items():
            delta = self._delta(counter, labels, total)
            if delta:
                (counter.labels(*labels) if labels else counter).inc(delta)

    def _add_observations(self, route: str, counts: list[int], seconds: float) -> None:
        """Add bucket counts gathered in bulk; prometheus_client observes one value at a time.

        A histogram child keeps one value per bucket (`_buckets`, not cumulative) and one
        for the sum (`_sum`), in memory or in the multiprocess files alike.
        """
        child: Any = self.latency.labels(route)
        for index, total in enumerate(list(counts)):
            delta = self._delta(self.latency, (route, str(index)), total)
            if delta:
                child._buckets[index].inc(delta)
        delta_seconds = self._delta(self.latency, (route, "sum"), seconds)
        if delta_seconds:
            child._sum.inc(delta_seconds)

    async def flush_forever(self) -> None:
        """Flush every FLUSH_INTERVAL seconds until cancelled."""
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            self.flush()

    def exposition(self, pending: PendingRequests | None) -> bytes:
        """The metrics in the Prometheus text format (of every process in multiprocess mode).

        Call `flush` first, on the event loop (where the counters are bumped); this part
        may run in a thread, as it reads the other processes' files.
        """
        source: Any = (
            MultiProcessCollector(None, os.environ[MULTIPROCESS_DIR])  # type: ignore[no-untyped-call]
            if self.multiprocess
            else self.registry
        )
        return generate_latest(_Scrape(source, _pending_families(pending)))


def _pending_families(pending: PendingRequests | None) -> list[Metric]:
    if pending is None:
        return []
    count = GaugeMetricFamily(
        "clientstats_pending_requests", "Client requests waiting for a worker", pending.count
    )
    age = GaugeMetricFamily(
        "clientstats_pending_requests_oldest_age_seconds",
        "Age of the oldest client request waiting for a worker (0 when none waits)",
        pending.oldest_age,
    )
    return [count, age]


class _Scrape(CollectorRegistry):
    """The stored metrics followed by the ones computed for this scrape."""

    def __init__(self, source: Any, extra: Iterable[Metric]) -> None:
        super().__init__(auto_describe=False)
        self.source = source
        self.extra = list(extra)

    def collect(self) -> Iterator[Metric]:
        yield from self.source.collect()
        yield from self.extra
