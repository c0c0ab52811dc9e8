"""Liveness and readiness probes for process managers and load balancers."""

from __future__ import annotations

import anyio
import orjson
from anyio import to_thread
from starlette.requests import Request
from starlette.responses import Response

from clientstats.api.errors import JSON, error_response
from clientstats.storage.database import database_answers


async def live(request: Request) -> Response:
    """The process answers."""
    return Response(orjson.dumps({"status": "ok"}), media_type=JSON)


async def ready(request: Request) -> Response:
    """The database answers, so requests can be served; Redis is reported, not required.

    Without Redis every process still answers correctly from its own cache and the
    database, so a Redis outage must not take all API processes out of a load balancer.
    """
    answers = False
    # A database that stops answering leaves its pooled connections hanging: give up in time.
    with anyio.move_on_after(request.app.state.settings.database_timeout):
        answers = await to_thread.run_sync(
            database_answers, request.app.state.engine, abandon_on_cancel=True
        )
    if not answers:
        return error_response(503, "The database does not answer")
    body: dict[str, str] = {"status": "ok", "database": "ok"}
    shared = getattr(request.app.state, "shared_cache", None)
    if shared is not None:
        body["redis"] = "ok" if await to_thread.run_sync(shared.ping) else "unavailable"
    return Response(orjson.dumps(body), media_type=JSON)
