"""`GET /metrics`: the Prometheus metrics, behind the admin bearer token."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from anyio import to_thread
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response

from clientstats.api.admin import require_admin
from clientstats.errors import NotFound
from clientstats.observability.metrics import Metrics, PendingRequests
from clientstats.services.blocking import run_blocking
from clientstats.services.client_requests import pending_requests

log = logging.getLogger(__name__)


async def get_metrics(request: Request) -> Response:
    """Every metric of the server; the pending requests are read now, within the timeout."""
    require_admin(request)
    metrics: Metrics | None = request.app.state.metrics
    if metrics is None:
        raise NotFound("Metrics are off (CLIENTSTATS_METRICS=false)")
    pending = await _pending(request, metrics)
    metrics.flush()  # this process's counts up to now
    # Reading the other processes' files is file I/O: off the event loop.
    body = await to_thread.run_sync(metrics.exposition, pending)
    return Response(body, media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})


async def _pending(request: Request, metrics: Metrics) -> PendingRequests | None:
    """The pending requests; None (and one more error counted) if the database fails us."""
    engine = request.app.state.engine
    timeout = request.app.state.settings.database_timeout
    try:
        count, age = await run_blocking(
            timeout, lambda: pending_requests(engine, now=datetime.now(UTC))
        )
    except Exception as exc:
        # The scrape still answers: the other metrics say what is wrong.
        log.warning("metrics: pending requests unavailable: %s", type(exc).__name__)
        metrics.pending_errors.inc()
        return None
    return PendingRequests(count=count, oldest_age=age)
