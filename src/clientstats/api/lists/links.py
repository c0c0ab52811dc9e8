"""Absolute URLs for the links of the lists: the public URL setting, or the request's own."""

from __future__ import annotations

import re
from urllib.parse import urlencode

from starlette.requests import Request

from clientstats.config import Settings

# A host name or address with an optional port: anything else in Host is not put into links.
_HOST = re.compile(r"[A-Za-z0-9.\-]{1,253}(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](:[0-9]{1,5})?")


def base_url(request: Request, settings: Settings) -> str:
    """scheme://host[:port] that links start with.

    CLIENTSTATS_PUBLIC_URL wins; else the request's scheme and Host, or X-Forwarded-Proto and
    X-Forwarded-Host when CLIENTSTATS_TRUST_FORWARDED_HEADERS says a proxy sets them.
    """
    if settings.public_url:
        return settings.public_url.rstrip("/")
    scheme = request.url.scheme
    host = request.headers.get("host") or f"{request.url.hostname}:{request.url.port}"
    if settings.trust_forwarded_headers:
        scheme = _first(request.headers.get("x-forwarded-proto")) or scheme
        host = _first(request.headers.get("x-forwarded-host")) or host
    if scheme not in ("http", "https"):
        scheme = "http"
    if not _HOST.fullmatch(host):
        host = f"{request.url.hostname}:{request.url.port}"
    return f"{scheme}://{host}"


def _first(value: str | None) -> str | None:
    """The first proxy's value of a comma-separated forwarded header."""
    if not value:
        return None
    return value.split(",")[0].strip() or None


def link(rel: str, href: str) -> dict[str, str]:
    """One entry of a `links` array."""
    return {"rel": rel, "href": href}


def with_query(url: str, params: dict[str, str]) -> str:
    """A URL with these query parameters (in this order)."""
    return f"{url}?{urlencode(params)}" if params else url
