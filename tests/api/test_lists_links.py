"""Where the lists' links point: the public URL setting, or trusted forwarded headers."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.api.lists_helpers import api, ok
from tests.conftest import RunningServer


@pytest.mark.usefixtures("seeded_server")  # the seed is in the database
def test_public_url_starts_every_link(
    seeded_database_url: str, start_server: Callable[..., RunningServer]
) -> None:
    server = start_server(seeded_database_url, CLIENTSTATS_PUBLIC_URL="https://stats.example.org")
    body = ok(api(server, "/clients/volksfreund/projects?per_page=1"), headers={"host": "x.test"})
    hrefs = [e["href"] for e in body["links"]] + [
        e["href"] for item in body["data"] for e in item["links"]
    ]
    assert hrefs and all(h.startswith("https://stats.example.org/en/api_v4/") for h in hrefs)


@pytest.mark.usefixtures("seeded_server")  # the seed is in the database
def test_forwarded_headers_count_only_when_trusted(
    seeded_database_url: str, start_server: Callable[..., RunningServer]
) -> None:
    server = start_server(seeded_database_url, CLIENTSTATS_TRUST_FORWARDED_HEADERS="true")
    headers = {"x-forwarded-proto": "https", "x-forwarded-host": "public.example.org, proxy"}
    body = ok(api(server, "/clients/volksfreund"), headers=headers)
    assert (
        body["links"][0]["href"] == "https://public.example.org/en/api_v4/clients/volksfreund.json"
    )
