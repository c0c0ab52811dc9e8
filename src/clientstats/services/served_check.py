"""Checking what is served against the verified figures: the shared cache and a running server.

`verify` recomputes every figure from the ledger and compares it with the aggregates; the
answers people get come from caches in front of those. The shared cache holds a response
per client and version token, and only the current token's entry can be served, so that is
the one checked. A running server is asked over HTTP like any user would; a booking made
while it is asked is allowed for by comparing with the figures of the same moment.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from sqlalchemy import Engine

from clientstats.cache.base import CachedResponse, SharedStatisticsCache
from clientstats.errors import ClientstatsError
from clientstats.services.live_statistics import etag_for
from clientstats.services.statistics import get_snapshot_or_raise
from clientstats.services.verification import Verified
from clientstats.storage.statistics_queries import ClientSnapshot

HTTP_TIMEOUT = 10.0
# A server sees a booking within a second; give a moving client this long to agree.
SETTLE_SECONDS = 3.0


@dataclass(frozen=True, slots=True)
class ServedDifference:
    """An answer that is served, or could be, and does not match the ledger."""

    client_id: str
    where: str
    detail: str


def _cache_problem(entry: CachedResponse, verified: Verified) -> str | None:
    try:
        body = orjson.loads(entry.body)
    except orjson.JSONDecodeError:
        return "its body is not JSON"
    expected = verified.statistics.as_response()
    if body != expected:
        return f"serves {_brief(body)}, the ledger says {_brief(expected)}"
    if entry.private != verified.version.statistics_private:
        return f"is marked {'private' if entry.private else 'public'}, the client is not"
    if entry.etag != etag_for(entry.body):
        return "its ETag does not belong to its body"
    return None


def check_shared_cache(
    shared: SharedStatisticsCache, verified: dict[str, Verified]
) -> list[ServedDifference]:
    """Compare each client's servable shared-cache entry (its current token's) with the ledger."""
    found = []
    for permalink, figures in sorted(verified.items()):
        entry = shared.fetch(permalink, figures.version.version)
        if entry is None:
            continue
        problem = _cache_problem(entry, figures)
        if problem is not None:
            found.append(ServedDifference(permalink, "shared cache", problem))
    return found


def _brief(body: object) -> str:
    if not isinstance(body, dict):
        return repr(body)
    return ", ".join(f"{k}={v}" for k, v in body.items() if k != "links")


def http_fetcher(base_url: str) -> Callable[[str], tuple[int, bytes]]:
    """GET a client's statistics from a running server: (status, body)."""
    base = base_url.rstrip("/")

    def fetch(permalink: str) -> tuple[int, bytes]:
        url = f"{base}/de/api_v4/clients/{permalink}/project_statistics.json"
        request = urllib.request.Request(url, headers={"accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ClientstatsError(f"cannot ask {base}: {reason}") from None

    return fetch


def check_server(
    engine: Engine,
    fetch: Callable[[str], tuple[int, bytes]],
    verified: dict[str, Verified],
    *,
    where: str,
) -> tuple[list[ServedDifference], int]:
    """Compare a server's answer for every public client; (differences, private ones skipped)."""
    found, skipped = [], 0
    for permalink, figures in sorted(verified.items()):
        if figures.version.statistics_private:
            skipped += 1  # it answers only with the client's own credentials
            continue
        problem = _server_problem(engine, fetch, permalink, figures)
        if problem is not None:
            found.append(ServedDifference(permalink, where, problem))
    return found, skipped


def _server_problem(
    engine: Engine, fetch: Callable[[str], tuple[int, bytes]], permalink: str, figures: Verified
) -> str | None:
    expected = figures.statistics.as_response()
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        status, raw = fetch(permalink)
        served = _parsed(raw) if status == 200 else None
        if served == expected:
            return None
        # Booked since the figures were verified? Then the answer must match the figures
        # of now, once the server has seen the booking.
        current: ClientSnapshot = get_snapshot_or_raise(engine, permalink)
        if current.version.version != figures.version.version:
            expected = current.statistics.as_response()
            if served == expected:
                return None
        if time.monotonic() >= deadline:
            if status != 200:
                return f"answers {status}: {raw[:200].decode(errors='replace')}"
            return f"serves {_brief(served)}, the ledger says {_brief(expected)}"
        time.sleep(0.25)


def _parsed(raw: bytes) -> object:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw[:200]
