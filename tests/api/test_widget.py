"""The widget's files over HTTP: validators, caching, the page of a client, and its refusals."""

from __future__ import annotations

import re
import time

from tests.api.conftest import (
    assert_error,
    http,
    new_client_events,
    post_events,
    unique_permalink,
)
from tests.conftest import RunningServer


def test_the_page_names_the_client_escaped_and_loads_only_versioned_own_files(
    seeded_server: RunningServer,
) -> None:
    permalink = unique_permalink("w")
    events = new_client_events(permalink)
    events[0]["name"] = 'Zeitung <b>"&'
    assert post_events(seeded_server.base_url, events).status_code == 200
    page = http().get(f"{seeded_server.base_url}/en/widget/{permalink.upper()}")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "public, max-age=300"
    assert 'data-title="Zeitung &lt;b&gt;&quot;&amp;"' in page.text
    assert f'data-clientstats="{permalink}" data-locale="en"' in page.text
    assets = re.findall(r'(?:href|src)="([^"]+)"', page.text)
    assert sorted(a.split("?")[0] for a in assets) == ["../../widget.css", "../../widget.js"]
    again = http().get(page.url, headers={"If-None-Match": page.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    renamed = {"event": "client", "id": permalink, "name": "Neuer Name"}
    assert post_events(seeded_server.base_url, [renamed]).status_code == 200
    # Shown as soon as this process has read the change (one freshness poll).
    deadline = time.monotonic() + 20
    while "Neuer Name" not in http().get(page.url).text and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "Neuer Name" in http().get(page.url).text


def test_the_script_and_style_validate_and_cache_long_only_under_their_version(
    seeded_server: RunningServer,
) -> None:
    page = http().get(f"{seeded_server.base_url}/de/widget/volksfreund")
    for name, media_type in (("widget.js", "text/javascript"), ("widget.css", "text/css")):
        plain = http().get(f"{seeded_server.base_url}/{name}")
        assert plain.status_code == 200
        assert plain.headers["content-type"] == f"{media_type}; charset=utf-8"
        assert plain.headers["cache-control"] == "public, max-age=3600"
        etag = plain.headers["etag"]
        version = re.search(rf"{re.escape(name)}\?v=(\w+)", page.text)
        assert version is not None and etag == f'"{version.group(1)}"'
        pinned = http().get(f"{seeded_server.base_url}/{name}?v={version.group(1)}")
        assert pinned.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert pinned.content == plain.content
        revalidated = http().get(
            f"{seeded_server.base_url}/{name}", headers={"If-None-Match": etag}
        )
        assert revalidated.status_code == 304
    script = http().get(f"{seeded_server.base_url}/widget.js").text
    css_version = http().get(f"{seeded_server.base_url}/widget.css").headers["etag"].strip('"')
    assert f"widget.css?v={css_version}" in script
    assert "innerHTML" not in script


def test_no_page_for_a_private_unknown_or_malformed_client_nor_an_unknown_locale(
    seeded_server: RunningServer,
) -> None:
    private = unique_permalink("wp")
    events = [
        *new_client_events(private),
        {"event": "client", "id": private, "statistics_private": True},
    ]
    assert post_events(seeded_server.base_url, events).status_code == 200
    base = seeded_server.base_url
    paths = [f"/de/widget/{private}", "/de/widget/nobody-here", "/fr/widget/volksfreund"]
    for path in [*paths, "/de/widget/%00", "/de/widget/n%C3%BC"]:
        assert_error(http().get(base + path), 404)
    assert_error(http().post(f"{base}/de/widget/volksfreund"), 405)
