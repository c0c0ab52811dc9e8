"""The HTTP side of the drill-down lists: routes, visibility, caching, ETag/304 and CORS."""

from __future__ import annotations

import re
import time
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from clientstats.api.errors import JSON, handle_clientstats_error
from clientstats.api.lists.cache import PageCache, RenderedPage
from clientstats.api.lists.fast_path import ListFastPath
from clientstats.api.lists.links import base_url
from clientstats.api.lists.messages import explain
from clientstats.api.lists.pagination import decode_cursor, envelope, fingerprint
from clientstats.api.lists.resources import RESOURCES, Context, Resource
from clientstats.api.statistics_endpoint import (
    LOCALES,
    PREFLIGHT_HEADERS,
    cache_control,
    etag_matches,
    max_age_cap,
    stated_max_age,
)
from clientstats.domain.list_query import ListQueryInvalid, parse_list_query, positive_id
from clientstats.errors import BadRequest, ClientstatsError, NotFound
from clientstats.services.blocking import run_blocking
from clientstats.services.credentials import Authenticator
from clientstats.services.listing import ClientInfo, Page, client_or_raise, in_snapshot
from clientstats.services.live_statistics import etag_for

_PERMALINK = re.compile(r"[A-Za-z0-9_-]{1,64}")
_KEY = re.compile(r"[A-Za-z0-9_-]{1,128}")
_PUBLIC_HEADERS = {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": "ETag"}
_ID_NAMES = {"project_id": "Project", "need_id": "Need", "fund_id": "MatchingFund"}


def _locale(request: Request) -> str:
    locale = str(request.path_params["locale"])
    if locale not in LOCALES:
        raise NotFound(f"Unknown locale {locale}")
    return locale


def _permalink(request: Request) -> str | None:
    raw = request.path_params.get("client_id")
    if raw is None:
        return None
    if not _PERMALINK.fullmatch(str(raw)):
        raise NotFound(f"Couldn't find Client with permalink={raw}")
    return str(raw).lower()


def _ids(request: Request) -> dict[str, int]:
    ids = {}
    for name, label in _ID_NAMES.items():
        raw = request.path_params.get(name)
        if raw is not None:
            value = positive_id(str(raw))
            if value is None:
                raise NotFound(f"Couldn't find {label} with id={raw}")
            ids[name] = value
    return ids


async def _authorize(request: Request, permalink: str) -> None:
    """Only the client's own credentials open its private resources; another client's: 404."""
    request.state.private = True  # its answers, errors too, carry no CORS header
    authenticator: Authenticator = request.app.state.authenticator
    timeout = request.app.state.settings.database_timeout
    header = request.headers.get("authorization")
    # The version before the stored hash is read: a password issued after that read gives
    # the client a newer one, so the fast path stops taking these credentials.
    known = request.app.state.live.versions.get(permalink)
    client_id = await authenticator.authenticate(header, database_timeout=timeout)
    if client_id != permalink:
        raise NotFound(f"Couldn't find Client with permalink={permalink}")
    if known is not None and header is not None:
        fast: ListFastPath = request.app.state.list_fast_path
        fast.remember_credentials(permalink, known.version, header)


def _render(resource: Resource, ctx: Context, client: ClientInfo | None, found: Any) -> bytes:
    if isinstance(found, Page):
        for item in found.items:
            item["links"] = resource.links(ctx, client, item)
        assert ctx.query is not None
        current = ctx.query.page
        body = envelope(
            found,
            ctx.query,
            current_page=current,
            self_url=ctx.self_url,
            url=ctx.list_url,
            list_id=ctx.list_id,
        )
        return orjson.dumps(body)
    found["links"] = resource.links(ctx, client, found)
    return orjson.dumps(found)


def _compute(request: Request, resource: Resource, ctx: Context, now: float) -> RenderedPage:
    engine = request.app.state.engine
    ttl = request.app.state.live.ttl

    def read(conn: Any) -> RenderedPage:
        client = client_or_raise(conn, ctx.permalink) if ctx.permalink is not None else None
        found = resource.read(conn, client, ctx)
        body = _render(resource, ctx, client, found)
        private = resource.credentials_always or bool(client and client.statistics_private)
        version = None if client is None else client.version
        return RenderedPage(body, etag_for(body).decode(), version, private, now + ttl)

    return in_snapshot(engine, read)


def _context(request: Request, resource: Resource, locale: str, permalink: str | None) -> Context:
    base = base_url(request, request.app.state.settings)
    api = f"{base}/{locale}/api_v4"
    path = request.url.path
    query = list_id = None
    after = None
    page = 1
    if resource.spec is not None:
        params = dict(request.query_params)
        query = parse_list_query(params, resource.spec, length=len(request.url.query))
        list_id = fingerprint(path.removesuffix(".json").lower(), query)
        if query.cursor is not None:
            after, page = decode_cursor(query.cursor, list_id)
            query = query.at_page(page)
    key = request.path_params.get("key")
    if key is not None and not _KEY.fullmatch(str(key)):
        raise NotFound(f"Couldn't find Donation with key={key}")
    self_url = f"{base}{path}" + (f"?{request.url.query}" if request.url.query else "")
    return Context(
        api=api,
        permalink=permalink,
        ids=_ids(request),
        key=None if key is None else str(key),
        query=query,
        after=after,
        self_url=self_url,
        list_url=f"{base}{path}",
        list_id=list_id or "",
    )


def _respond(request: Request, page: RenderedPage, now: float) -> Response:
    settings = request.app.state.settings
    cap = max_age_cap(request.app.state.live.ttl, settings.http_max_age)
    max_age = stated_max_age(page.expires_at, now, cap)
    headers = {
        "ETag": page.etag,
        "Cache-Control": cache_control(private=page.private, max_age=max_age).decode(),
    }
    if not page.private:
        headers.update(_PUBLIC_HEADERS)
    condition = request.headers.get("if-none-match")
    if condition is not None and etag_matches(condition.encode("latin-1"), page.etag.encode()):
        return Response(status_code=304, headers=headers)
    if request.method == "HEAD":
        headers["Content-Length"] = str(len(page.body))
        return Response(b"", media_type=JSON, headers=headers)
    return Response(page.body, media_type=JSON, headers=headers)


async def serve(request: Request, resource: Resource) -> Response:
    """Answer one read of a drill-down resource; errors of public ones allow any origin too."""
    try:
        return await _serve(request, resource)
    except ClientstatsError as exc:
        response = await handle_clientstats_error(request, exc)
        if not getattr(request.state, "private", False):
            response.headers.update(_PUBLIC_HEADERS)
        return response


async def _serve(request: Request, resource: Resource) -> Response:
    locale = _locale(request)
    if request.method == "OPTIONS":
        headers = {k.decode(): v.decode() for k, v in PREFLIGHT_HEADERS}
        return Response(status_code=204, headers=headers)
    permalink = _permalink(request)
    try:
        ctx = _context(request, resource, locale, permalink)
    except ListQueryInvalid as invalid:
        message, errors = explain(invalid, locale)
        raise BadRequest(message, errors=errors) from None
    if resource.credentials_always and permalink is not None:
        await _authorize(request, permalink)
    cache: PageCache = request.app.state.page_cache
    live = request.app.state.live
    now = time.time()
    key = (resource.name, ctx.self_url)
    page = None
    if permalink is not None:
        known = live.versions.get(permalink)
        page = cache.get(key, None if known is None else known.version, now)
    if page is None:
        timeout = request.app.state.settings.database_timeout
        page = await run_blocking(timeout, lambda: _compute(request, resource, ctx, now))
        cache.put(key, page)
    if page.private and not resource.credentials_always and permalink is not None:
        await _authorize(request, permalink)
    if permalink is not None:
        fast: ListFastPath = request.app.state.list_fast_path
        fast.remember_page(request.scope, permalink, page)
    return _respond(request, page, now)


def _endpoint(resource: Resource) -> Any:
    async def endpoint(request: Request) -> Response:
        return await serve(request, resource)

    endpoint.__doc__ = f"GET the {resource.name.replace('_', ' ')} (drill-down)."
    return endpoint


ROUTES: list[Route] = [
    Route(f"/{{locale}}/api_v4{path}{suffix}", _endpoint(resource), methods=["GET", "OPTIONS"])
    for path, resource in RESOURCES.items()
    for suffix in (".json", "")
]
