"""The one place where errors become HTTP responses, in the platform's format."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Mapping
from http import HTTPStatus

import orjson
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from clientstats.errors import ClientstatsError

log = logging.getLogger(__name__)

JSON = "application/json; charset=utf-8"

# Names as the platform spells them; Python's own phrases differ for some (422).
_STATUS_NAMES = {
    401: ("unauthorized", "Unauthorized"),
    403: ("forbidden", "Forbidden"),
    404: ("not_found", "Record Not Found"),
    405: ("method_not_allowed", "Method Not Allowed"),
    409: ("conflict", "Conflict"),
    413: ("payload_too_large", "Payload Too Large"),
    415: ("unsupported_media_type", "Unsupported Media Type"),
    422: ("unprocessable_entity", "Cannot Process Submitted Data"),
    500: ("internal_server_error", "Internal Server Error"),
    503: ("service_unavailable", "Service Unavailable"),
}


def status_name(status_code: int) -> tuple[str, str]:
    """The snake_case status and the reason phrase for an HTTP status code."""
    if status_code in _STATUS_NAMES:
        return _STATUS_NAMES[status_code]
    phrase = HTTPStatus(status_code).phrase
    return phrase.lower().replace(" ", "_").replace("-", "_"), phrase


def error_body(
    status_code: int,
    message: str,
    *,
    errors: dict[str, list[str]] | None = None,
    backtrace: list[str] | None = None,
    reason: str | None = None,
    links: list[dict[str, str]] | None = None,
) -> bytes:
    """The JSON body of an error response."""
    status, default_reason = status_name(status_code)
    body: dict[str, object] = {
        "name": "GeneralError",
        "status": status,
        "status_code": status_code,
        "reason": reason or default_reason,
        "message": message,
    }
    if errors is not None:
        body["errors"] = errors
    if backtrace is not None:
        body["backtrace"] = backtrace
    body["links"] = links or []
    return orjson.dumps(body)


def error_response(
    status_code: int,
    message: str,
    *,
    errors: dict[str, list[str]] | None = None,
    headers: Mapping[str, str] | None = None,
    backtrace: list[str] | None = None,
    links: list[dict[str, str]] | None = None,
) -> Response:
    """An error response in the platform's format; no cache may keep it (nothing in it lasts)."""
    body = error_body(status_code, message, errors=errors, backtrace=backtrace, links=links)
    headers = {"Cache-Control": "no-store", **(headers or {})}
    return Response(body, status_code=status_code, media_type=JSON, headers=headers)


def _backtrace(request: Request, exc: BaseException) -> list[str] | None:
    if not getattr(request.app.state, "debug", False):
        return None
    return traceback.format_exception(exc)


async def handle_clientstats_error(request: Request, exc: Exception) -> Response:
    """Our own errors: their status and message as they are."""
    assert isinstance(exc, ClientstatsError)
    challenge = getattr(exc, "challenge", 'Basic realm="clientstats"')
    headers = {"WWW-Authenticate": challenge} if exc.status_code == 401 else {}
    if exc.retry_after is not None:
        headers["Retry-After"] = str(exc.retry_after)
    return error_response(
        exc.status_code,
        exc.message,
        errors=exc.errors,
        headers=headers,
        backtrace=_backtrace(request, exc),
        links=exc.links,
    )


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    """Routing errors (unknown path, wrong method) in the same format."""
    assert isinstance(exc, HTTPException)
    messages = {404: f"No route matches {request.url.path}", 405: "Method not allowed"}
    message = messages.get(exc.status_code, str(exc.detail))
    return error_response(exc.status_code, message, headers=exc.headers)


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    """A bug: logged with its traceback, answered without one (unless in debug mode)."""
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "Something went wrong", backtrace=_backtrace(request, exc))


async def handle_database_unavailable(request: Request, exc: Exception) -> Response:
    """The database cannot be reached or timed out: retryable, so 503, not 500."""
    log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
    return error_response(
        503,
        "The database is not available; retry",
        headers={"Retry-After": "1"},
        backtrace=_backtrace(request, exc),
    )


DATABASE_UNAVAILABLE = (OperationalError, InterfaceError, PoolTimeout)

EXCEPTION_HANDLERS = {
    OperationalError: handle_database_unavailable,
    InterfaceError: handle_database_unavailable,
    PoolTimeout: handle_database_unavailable,
    ClientstatsError: handle_clientstats_error,
    HTTPException: handle_http_exception,
    Exception: handle_unexpected,
}
