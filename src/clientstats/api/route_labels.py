"""The route template and client of a request path, for the metrics and the access log."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from starlette.routing import BaseRoute, Match

from clientstats.api.statistics_endpoint import match_path
from clientstats.api.stream import SUFFIX as STREAM_SUFFIX
from clientstats.observability.middleware import RouteInfo

STATISTICS = "/{locale}/api_v4/clients/{client_id}/project_statistics"
STREAM = "/{locale}/api_v4/clients/{client_id}/project_statistics/stream"
UNMATCHED = "unmatched"  # every path no route answers: one label, however many such paths


def _client(client_id: object) -> str | None:
    """The permalink a path names, lower-cased as clients are matched; None if it cannot be one."""
    if not isinstance(client_id, str) or not 1 <= len(client_id) <= 64:
        return None
    if not all(c.isascii() and (c.isalnum() or c in "_-") for c in client_id):
        return None
    return client_id.lower()


def describer(routes: Sequence[BaseRoute]) -> Callable[[str], RouteInfo]:
    """The function from a path to its RouteInfo, for the app with these Starlette routes."""

    def describe(path: str) -> RouteInfo:
        statistics = match_path(path)
        if statistics is not None:
            return RouteInfo(STATISTICS, _client(statistics[1]))
        parts = path.split("/")
        if len(parts) == 7 and path.endswith(STREAM_SUFFIX) and parts[2:4] == ["api_v4", "clients"]:
            return RouteInfo(STREAM, _client(parts[4]))
        scope = {"type": "http", "path": path, "root_path": "", "method": "GET", "headers": []}
        for route in routes:
            matched, child = route.matches(scope)
            if matched is not Match.NONE:
                client = child.get("path_params", {}).get("client_id")
                return RouteInfo(getattr(route, "path", UNMATCHED), _client(client))
        return RouteInfo(UNMATCHED, None)

    return describe
