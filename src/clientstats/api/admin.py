"""Operator endpoints: ledger events over HTTP, behind the admin bearer token."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from functools import partial

import orjson
from starlette.requests import Request
from starlette.responses import Response

from clientstats.api.errors import JSON
from clientstats.errors import Unauthenticated, UnsupportedMediaType, ValidationFailed
from clientstats.observability.tallies import count_import
from clientstats.services.blocking import run_blocking
from clientstats.services.importing import ImportReport, PlannerRefresh, apply_lines

NDJSON_TYPES = frozenset({"application/x-ndjson", "application/jsonl", "application/json-lines"})


class AdminUnauthenticated(Unauthenticated):
    """No valid admin token; the challenge names the bearer scheme (RFC 6750 §3), not Basic."""

    challenge = 'Bearer realm="clientstats admin"'


def require_admin(request: Request) -> None:
    """Let the request through only with the configured admin token, compared in constant time."""
    expected = request.app.state.settings.admin_token
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if not expected:
        raise AdminUnauthenticated("The admin API is disabled: CLIENTSTATS_ADMIN_TOKEN is not set")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), expected.encode()):
        raise AdminUnauthenticated("A valid admin bearer token is required")


async def _numbered_lines(request: Request) -> AsyncIterator[tuple[int, bytes]]:
    number = 0
    rest = b""
    async for chunk in request.stream():
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        for line in lines:
            number += 1
            yield number, line
    if rest:
        yield number + 1, rest


async def post_events(request: Request) -> Response:
    """Apply an NDJSON stream of ledger events; report every rejected line."""
    require_admin(request)
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in NDJSON_TYPES:
        raise UnsupportedMediaType("Send ledger events as application/x-ndjson")
    engine = request.app.state.engine
    batch_size = request.app.state.settings.import_batch_size
    # A batch may wait for the write lock behind other writers: allow it more than a read.
    timeout = 6 * request.app.state.settings.database_timeout
    report = ImportReport()
    refresh = PlannerRefresh()  # a large upload is a bulk load too
    chunk: list[tuple[int, bytes]] = []
    try:
        async for numbered in _numbered_lines(request):
            chunk.append(numbered)
            if len(chunk) >= batch_size:
                await run_blocking(timeout, partial(apply_lines, engine, chunk, report, refresh))
                chunk = []
        await run_blocking(timeout, partial(apply_lines, engine, chunk, report, refresh))
    finally:
        # From the summary, once per upload (also one cut short): never per line.
        count_import(report.summary())
    if not report.ok:
        problems = sorted(report.rejected + report.failures, key=lambda r: r.line)
        raise ValidationFailed(
            f"{len(report.rejected)} line(s) rejected, {len(report.failures)} forwarding(s) "
            f"failed; {report.applied} applied, {report.unchanged} unchanged, "
            f"{report.deferred} deferred",
            errors={f"line {p.line}": [p.reason] for p in problems},
        )
    body = {"status": "ok", "status_code": 200, **report.summary(), "links": []}
    return Response(orjson.dumps(body), media_type=JSON)
