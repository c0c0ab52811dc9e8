"""Liveness and readiness probes for process managers and load balancers."""

from __future__ import annotations

import orjson
from anyio import to_thread
from sqlalchemy import Engine, text
from starlette.requests import Request
from starlette.responses import Response

from clientstats.api.errors import JSON, error_response


async def live(request: Request) -> Response:
    """The process answers."""
    return Response(orjson.dumps({"status": "ok"}), media_type=JSON)


def _database_answers(engine: Engine) -> bool:
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


async def ready(request: Request) -> Response:
    """The database answers, so requests can be served."""
    if not await to_thread.run_sync(_database_answers, request.app.state.engine):
        return error_response(503, "The database does not answer")
    return Response(orjson.dumps({"status": "ok", "database": "ok"}), media_type=JSON)
