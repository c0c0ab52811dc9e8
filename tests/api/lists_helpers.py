"""Helpers of the drill-down list tests: URLs, walking pages, a client with credentials."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from tests.api.conftest import http, new_client_events, post_events, unique_permalink
from tests.api.test_client_api import issue_credentials
from tests.conftest import RunningServer


def api(server: RunningServer, path: str, *, locale: str = "en") -> str:
    """The absolute URL of a path under /{locale}/api_v4."""
    return f"{server.base_url}/{locale}/api_v4{path}"


def get(url: str, **kwargs: Any) -> httpx.Response:
    """GET with the shared client."""
    return http().get(url, **kwargs)


def ok(url: str, **kwargs: Any) -> dict[str, Any]:
    """GET that must answer 200; the body."""
    response = get(url, **kwargs)
    assert response.status_code == 200, (url, response.text)
    body: dict[str, Any] = response.json()
    return body


def href(body: dict[str, Any], rel: str) -> str | None:
    """The href of a link by rel, or None."""
    found = [entry["href"] for entry in body["links"] if entry["rel"] == rel]
    assert len(found) <= 1
    return found[0] if found else None


def walk(url: str, **kwargs: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every page of a list from `url` on through its next links: (entries, envelopes)."""
    entries: list[dict[str, Any]] = []
    envelopes = []
    next_url: str | None = url
    while next_url is not None:
        body = ok(next_url, **kwargs)
        envelopes.append(body)
        entries += body["data"]
        next_url = href(body, "next")
    return entries, envelopes


@dataclass(frozen=True)
class OwnClient:
    """A client of its own on a shared server, with its API credentials and one project."""

    permalink: str
    project_id: int
    auth: tuple[str, str]


def own_client(server: RunningServer, database_url: str, *, pool: bool = True) -> OwnClient:
    """A new client (fresh ids, so the seeded figures stay) with credentials."""
    permalink = unique_permalink("lists")
    events = new_client_events(permalink, pool=pool)
    assert post_events(server.base_url, events).status_code == 200
    auth = issue_credentials(database_url, permalink)[permalink]
    return OwnClient(permalink, events[1]["id"], auth)
