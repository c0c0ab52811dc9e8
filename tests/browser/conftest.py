"""Browser test fixtures: Debian's Chromium driven by Playwright, the service, and a news site.

The news site is a second HTTP server on another origin (localhost, another port) that
embeds the widget the two documented ways, so every check is a cross-origin use.
"""

from __future__ import annotations

import html
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from tests.api.conftest import post_events
from tests.conftest import RunningServer, fresh_database

CHROMIUM = os.environ.get("CLIENTSTATS_TEST_CHROMIUM", "/usr/bin/chromium")
# Headless as root on a machine without a network: no sandbox, no calls home.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PROJECTS = (910_001, 910_002, 910_003)
MARKUP_NAME = (
    '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
    'Volksfreund & Co "Spenden"'
)


def require_chromium() -> None:
    """Skip outside CI when Chromium or Playwright is missing; under CI that is a failure."""
    reason = None
    if not os.path.exists(CHROMIUM):
        reason = f"{CHROMIUM} missing (apt-get install chromium; scripts/test installs it)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        reason = "playwright is not installed (pip install -e '.[dev]')"
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def seed_events() -> list[dict[str, Any]]:
    """A newspaper with a pool and a matching fund, a private client, and one named in markup."""
    vf = "zeitung"
    needs = {PROJECTS[0]: 5_000_000, PROJECTS[1]: 2_500_000, PROJECTS[2]: 1_156_600}
    events: list[dict[str, Any]] = [
        {"event": "client", "id": vf, "name": "Trierischer Volksfreund", "pool": True},
        {"event": "client", "id": "geheim", "name": "Geheim", "statistics_private": True},
        {"event": "client", "id": "markup", "name": MARKUP_NAME},
    ]
    for project, requested in needs.items():
        events += [
            {"event": "project", "id": project, "title": f"Projekt {project}"},
            {
                "event": "need",
                "id": project,
                "project_id": project,
                "title": "Bedarf",
                "requested_amount_in_cents": requested,
            },
            {"event": "client_project", "client_id": vf, "project_id": project, "member": True},
            {
                "event": "client_project",
                "client_id": "markup",
                "project_id": project,
                "member": True,
            },
        ]
    events.append(
        {
            "event": "matching_fund",
            "id": 91,
            "client_id": vf,
            "title": "Verdopplung",
            "provided_amount_in_cents": 500_000,
            "maximum_matching_amount_in_cents": 50_000,
            "state": "activated",
            "project_ids": [PROJECTS[0]],
        }
    )
    amounts = [250_000, 123_456, 50_000, 1_500_000, 98_765, 20_000, 310_000]
    for n, amount in enumerate(amounts):
        channel = "client" if n % 2 else "platform"
        extra = {"client_id": vf, "client_reference": f"seed-{n}"} if channel == "client" else {}
        events.append(
            {
                "event": "donation",
                "token": f"w{n}",
                "channel": channel,
                "receiver": {"type": "project", "id": PROJECTS[n % 3]},
                "amount_in_cents": amount,
                **extra,
            }
        )
    pool = {"type": "pool", "client_id": vf}
    events.append(
        {
            "event": "donation",
            "token": "w-off",
            "channel": "offline",
            "receiver": pool,
            "amount_in_cents": 180_050,
        }
    )
    return events


@pytest.fixture(scope="module")
def service_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The database of the widget's service."""
    with fresh_database("sqlite", tmp_path_factory.mktemp("widget")) as url:
        yield url


@pytest.fixture(scope="module")
def service(service_database: str) -> Iterator[RunningServer]:
    """The service, seeded."""
    require_chromium()
    server = RunningServer(service_database)
    try:
        assert post_events(server.base_url, seed_events()).status_code == 200
        yield server
    finally:
        server.stop()


@dataclass
class Site:
    """The news site on another origin."""

    base_url: str

    def div_page(self, service: str, client: str, **attributes: str) -> str:
        """A page embedding the widget with <div data-clientstats> and the script."""
        query = urlencode({"service": service, "client": client, **attributes})
        return f"{self.base_url}/div?{query}"

    def iframe_page(self, src: str) -> str:
        """A page embedding the widget's own page in an iframe."""
        return f"{self.base_url}/iframe?{urlencode({'src': src})}"


def _page(kind: str, query: dict[str, str]) -> str:
    if kind == "/iframe":
        src = html.escape(query["src"])
        embed = f'<iframe src="{src}" title="Spendenstand" width="480" height="360" style="border:0"></iframe>'
    else:
        attributes = "".join(
            f' data-{html.escape(k)}="{html.escape(v)}"'
            for k, v in query.items()
            if k not in {"service", "client"}
        )
        client = html.escape(query["client"])
        script = html.escape(query["service"]) + "/widget.js"
        embed = f'<div data-clientstats="{client}"{attributes}></div><script src="{script}" async></script>'
    # The site's own styles must not reach into the widget (it renders in a shadow root).
    return (
        '<!doctype html><html lang="de"><head><meta charset="utf-8"><title>Lokales</title>'
        "<style>body{font:18px Georgia,serif;background:#f4f1ea;color:#222;margin:24px}"
        "div,p,strong,dd{color:#c00 !important;font-size:40px !important}</style></head>"
        "<body><h1>Lokales</h1><p>Unsere Leserinnen und Leser helfen.</p>"
        f"{embed}</body></html>"
    )


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path not in {"/div", "/iframe"}:
            self.send_error(404)
            return
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        body = _page(parts.path, query).encode()
        self.send_response(200)
        self.send_header("content-type", "text/html; charset=utf-8")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    """The news site, served from http://localhost on a port of its own."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Site(f"http://localhost:{server.server_address[1]}")
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
