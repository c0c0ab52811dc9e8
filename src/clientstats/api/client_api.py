"""The client write API: pledges, forwarding requests and their state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from clientstats.api.errors import JSON
from clientstats.api.json_body import read_json
from clientstats.api.messages import SUMMARY, conflict_message, failure_reason, word_errors
from clientstats.api.statistics_endpoint import LOCALES
from clientstats.domain.requests import Problem, RequestKind, StoredRequest
from clientstats.errors import (
    Conflict,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)
from clientstats.services import client_requests
from clientstats.services.blocking import run_blocking
from clientstats.services.credentials import Authenticator
from clientstats.services.statistics import normalize_permalink

MAX_BODY_BYTES = 64 * 1024
_STATUS_PATHS = {
    RequestKind.PLEDGE: "donation_pledges",
    RequestKind.FORWARDING: "forwarding_requests",
}


def _locale(request: Request) -> str:
    locale = str(request.path_params["locale"])
    if locale not in LOCALES:
        raise NotFound(f"Unknown locale {locale}")
    return locale


async def _authorized_client(request: Request) -> str:
    """The authenticated client, which must be the one named in the URL (else 404)."""
    authenticator: Authenticator = request.app.state.authenticator
    header = request.headers.get("authorization")
    timeout = request.app.state.settings.database_timeout
    client_id = await authenticator.authenticate(header, database_timeout=timeout)
    named = normalize_permalink(str(request.path_params["client_id"]))
    if named != client_id:
        raise NotFound(f"Couldn't find Client with permalink={named}")
    return client_id


async def _json_body(request: Request, locale: str) -> dict[str, Any]:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise UnsupportedMediaType("Send the request body as application/json")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"The request body is larger than {MAX_BODY_BYTES} bytes")
    parsed = read_json(body)
    if not isinstance(parsed, dict):
        errors = word_errors({"body": [Problem("not_an_object")]}, locale)
        raise ValidationFailed(SUMMARY[locale], errors=errors)
    return parsed


def _is_number(raw: str) -> bool:
    # str.isdigit alone admits "²" (int() refuses it: a 500) and Arabic-Indic digits.
    return raw.isascii() and raw.isdigit()


def _project_id(request: Request) -> int | None:
    raw = request.path_params.get("project_id")
    if raw is None:
        return None
    if not _is_number(str(raw)) or not 1 <= int(raw) < 2**63:
        raise NotFound(f"Couldn't find Project with id={raw}")
    return int(raw)


async def _create(request: Request, kind: RequestKind) -> Response:
    locale = _locale(request)
    client_id = await _authorized_client(request)
    project_id = _project_id(request)
    body = await _json_body(request, locale)
    try:
        accepted = await run_blocking(
            request.app.state.settings.database_timeout,
            lambda: client_requests.accept(
                request.app.state.engine,
                client_id=client_id,
                kind=kind,
                project_id=project_id,
                body=body,
            ),
        )
    except client_requests.RequestInvalid as invalid:
        raise ValidationFailed(
            SUMMARY[locale], errors=word_errors(invalid.errors, locale)
        ) from None
    except client_requests.RequestConflict as conflict:
        raise Conflict(
            conflict_message(conflict.stored.client_reference, locale),
            links=[_location(request, locale, conflict.stored)],
        ) from None
    if accepted.created:
        request.app.state.wake_worker()
    body_out = {
        "status": "accepted",
        "status_code": 202,
        "links": [_location(request, locale, accepted.request)],
    }
    return Response(orjson.dumps(body_out), status_code=202, media_type=JSON)


def _location(request: Request, locale: str, stored: StoredRequest) -> dict[str, str]:
    """The link to a stored request's status endpoint."""
    href = (
        f"{str(request.base_url).rstrip('/')}/{locale}/api_v4/clients/{stored.client_id}/"
        f"{_STATUS_PATHS[stored.kind]}/{stored.id}.json"
    )
    return {"rel": "location", "href": href}


async def create_pledge(request: Request) -> Response:
    """POST a donation pledge to a project or to the client's pool."""
    return await _create(request, RequestKind.PLEDGE)


async def create_forwarding(request: Request) -> Response:
    """POST a forwarding request from the client's pool to a project."""
    return await _create(request, RequestKind.FORWARDING)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def status_body(found: StoredRequest, locale: str) -> dict[str, object]:
    """The state of a request as the status endpoints show it."""
    return {
        "id": found.id,
        "created_at": _iso(found.created_at),
        "updated_at": _iso(found.updated_at),
        "confirmed_at": _iso(found.confirmed_at),
        "failed_at": _iso(found.failed_at),
        "state": found.state.value,
        "failure_code": found.failure_code,
        "failure_reason": failure_reason(found.failure_code, locale),
        "links": [],
    }


async def _status(request: Request, kind: RequestKind) -> Response:
    locale = _locale(request)
    client_id = await _authorized_client(request)
    raw = str(request.path_params["request_id"])
    if not _is_number(raw) or int(raw) >= 2**63:
        raise NotFound(f"Couldn't find request with id={raw}")
    found = await run_blocking(
        request.app.state.settings.database_timeout,
        lambda: client_requests.get_or_raise(
            request.app.state.engine, client_id=client_id, kind=kind, request_id=int(raw)
        ),
    )
    return Response(orjson.dumps(status_body(found, locale)), media_type=JSON)


async def pledge_status(request: Request) -> Response:
    """GET the state of a donation pledge."""
    return await _status(request, RequestKind.PLEDGE)


async def forwarding_status(request: Request) -> Response:
    """GET the state of a forwarding request."""
    return await _status(request, RequestKind.FORWARDING)


def _both(path: str, endpoint: Any, method: str) -> list[Route]:
    base = "/{locale}/api_v4/clients/{client_id}"
    return [
        Route(f"{base}{path}.json", endpoint, methods=[method]),
        Route(f"{base}{path}", endpoint, methods=[method]),
    ]


ROUTES: list[Route] = [
    *_both("/projects/{project_id}/donation_pledges", create_pledge, "POST"),
    *_both("/pool/donation_pledges", create_pledge, "POST"),
    *_both("/projects/{project_id}/forwarding_requests", create_forwarding, "POST"),
    *_both("/donation_pledges/{request_id}", pledge_status, "GET"),
    *_both("/forwarding_requests/{request_id}", forwarding_status, "GET"),
]
