"""The embeddable widget: its page for an iframe, and its script and style for any page.

The files live in `clientstats/web/` and are read once. Each is served with a strong ETag;
a URL that names the file's current version (`?v=...`, as the widget's own page and
script do) may be cached for a year, the plain URLs that clients paste for an hour. The
page of a client is rendered once per client version, so a renamed client shows its new
name as soon as its figures would change, and a private or unknown client has none (404).
"""

from __future__ import annotations

import hashlib
import html
from dataclasses import dataclass
from importlib import resources
from string import Template

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from clientstats.api.statistics_endpoint import route_for
from clientstats.errors import NotFound
from clientstats.services.blocking import run_blocking
from clientstats.services.client_profile import get_public_profile_or_raise
from clientstats.services.live_statistics import LiveStatistics

_WEB = resources.files("clientstats") / "web"
MAX_REMEMBERED_PAGES = 10_000
YEAR, HOUR, PAGE_MAX_AGE = 31_536_000, 3_600, 300
# The widget loads nothing but its own files and figures, from this service only.
_PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'"
)


@dataclass(frozen=True, slots=True)
class Asset:
    """A file served as it is, with its validator."""

    body: bytes
    media_type: str
    etag: str
    version: str


def _asset(body: bytes, media_type: str) -> Asset:
    digest = hashlib.blake2b(body, digest_size=8).hexdigest()
    return Asset(body, media_type, f'"{digest}"', digest)


def _read(name: str) -> str:
    return (_WEB / name).read_text(encoding="utf-8")


def load_assets() -> dict[str, Asset]:
    """widget.css and widget.js; the script names the style's version so both cache long."""
    css = _asset(_read("widget.css").encode(), "text/css; charset=utf-8")
    script = _read("widget.js").replace("__CSS_VERSION__", css.version)
    js = _asset(script.encode(), "text/javascript; charset=utf-8")
    return {"widget.css": css, "widget.js": js}


ASSETS = load_assets()
_PAGE = Template(_read("widget.html"))


def _not_modified(request: Request, etag: str) -> bool:
    header = request.headers.get("if-none-match")
    if header is None:
        return False
    tags = [tag.strip().removeprefix("W/") for tag in header.split(",")]
    return "*" in tags or etag in tags


def _send(request: Request, body: bytes, media_type: str, etag: str, cache: str) -> Response:
    headers = {"ETag": etag, "Cache-Control": cache, "X-Content-Type-Options": "nosniff"}
    if media_type.startswith("text/html"):
        headers["Content-Security-Policy"] = _PAGE_POLICY
    if _not_modified(request, etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


async def get_asset(request: Request) -> Response:
    """/widget.js or /widget.css."""
    asset = ASSETS[request.url.path.rsplit("/", 1)[1]]
    long_lived = request.query_params.get("v") == asset.version
    cache = f"public, max-age={YEAR}, immutable" if long_lived else f"public, max-age={HOUR}"
    return _send(request, asset.body, asset.media_type, asset.etag, cache)


@dataclass(frozen=True, slots=True)
class _Page:
    version: int  # the client's version when it was rendered
    body: bytes
    etag: str


def _pages(request: Request) -> dict[tuple[str, str], _Page]:
    """The rendered pages of this app, by locale and client."""
    pages: dict[tuple[str, str], _Page] | None = getattr(request.app.state, "widget_pages", None)
    if pages is None:
        pages = request.app.state.widget_pages = {}
    return pages


async def get_page(request: Request) -> Response:
    """The widget page of a public client, for an iframe."""
    locale = str(request.path_params["locale"])
    # The statistics path of the same client decides what the client id may be.
    route = route_for(
        "/{locale}/api_v4/clients/{client_id}/project_statistics".format(**request.path_params)
    )
    assert route is not None
    if route.unknown_locale is not None:
        raise NotFound(route.unknown_locale)
    if route.permalink is None:
        raise NotFound(route.not_found)
    permalink = route.permalink
    live: LiveStatistics = request.app.state.live
    known = live.versions.get(permalink)
    page = _pages(request).get((locale, permalink))
    if page is None or known is None or page.version != known.version:
        page = await _render(request, locale, permalink)
    return _send(request, page.body, "text/html; charset=utf-8", page.etag, _page_cache())


def _page_cache() -> str:
    return f"public, max-age={PAGE_MAX_AGE}"


async def _render(request: Request, locale: str, permalink: str) -> _Page:
    engine = request.app.state.engine
    timeout = request.app.state.settings.database_timeout
    profile = await run_blocking(timeout, lambda: get_public_profile_or_raise(engine, permalink))
    body = _PAGE.substitute(
        lang=locale,
        client=html.escape(profile.permalink),
        name=html.escape(profile.name),
        css=f"../../widget.css?v={ASSETS['widget.css'].version}",
        js=f"../../widget.js?v={ASSETS['widget.js'].version}",
    ).encode()
    page = _Page(profile.version, body, f'"{hashlib.blake2b(body, digest_size=12).hexdigest()}"')
    pages = _pages(request)
    if len(pages) >= MAX_REMEMBERED_PAGES:
        pages.clear()  # arbitrary client ids from the outside cannot grow it for ever
    pages[(locale, profile.permalink)] = page
    return page


ROUTES = [
    Route("/widget.js", get_asset, methods=["GET", "HEAD"]),
    Route("/widget.css", get_asset, methods=["GET", "HEAD"]),
    Route("/{locale}/widget/{client_id}", get_page, methods=["GET", "HEAD"]),
]
