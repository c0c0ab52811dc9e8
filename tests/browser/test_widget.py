"""The widget in a real browser, embedded in a page of another origin: what a reader sees."""

from __future__ import annotations

import datetime
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from clientstats.services.credentials import issue_credentials
from clientstats.storage.database import make_engine
from tests.api.conftest import donation, get_stats, post_events
from tests.browser.conftest import MARKUP_NAME, PROJECTS, Site
from tests.conftest import RunningServer

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "widget.png"
WAIT_MS = 20_000  # generous: a loaded machine; the tests check what is shown, not how fast
LABELS = {
    "de": ["Noch offen", "Projekte", "Über unsere Seite", "Aufgestockt", "Pool-Guthaben"],
    "en": ["Still needed", "Projects", "Through our page", "Matched", "Pool balance"],
}
# Reads the widget as text, the way a reader sees it (it renders into a shadow root).
READ = """host => {
  const root = host.shadowRoot;
  const text = selector => { const e = root.querySelector(selector); return e && e.textContent; };
  const rows = {};
  root.querySelectorAll('.cs-row').forEach(row => {
    rows[row.querySelector('dt').textContent] = row.querySelector('dd').textContent;
  });
  return {title: text('.cs-title'), donated: text('.cs-donated'), requested: text('.cs-requested'),
          percent: text('.cs-percent'), rows: rows, status: text('.cs-status'),
          valuenow: root.querySelector('.cs-bar') && root.querySelector('.cs-bar').getAttribute('aria-valuenow'),
          live: root.querySelector('[aria-live]') !== null};
}"""


# Every text of the widget with its colour, and the card's background.
COLORS = """host => {
  const root = host.shadowRoot;
  const card = root.querySelector('.cs-card');
  const texts = [...root.querySelectorAll('.cs-card *')]
    .filter(e => [...e.childNodes].some(n => n.nodeType === 3 && n.textContent.trim()))
    .map(e => [e.textContent, getComputedStyle(e).color]);
  return {background: getComputedStyle(card).backgroundColor, texts: texts};
}"""


def luminance(rgb: str) -> float:
    channels = [int(c) / 255 for c in rgb[rgb.index("(") + 1 : -1].split(",")[:3]]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def assert_readable(target: Any) -> None:
    """Every text of the widget has a contrast of at least 4.5:1 to its background."""
    found = target.locator("[data-clientstats]").evaluate(COLORS)
    background = luminance(found["background"])
    assert found["texts"]
    for text, color in found["texts"]:
        lighter, darker = sorted((luminance(color), background), reverse=True)
        assert (lighter + 0.05) / (darker + 0.05) >= 4.5, (text, color, found["background"])


def money(cents: int, locale: str) -> str:
    """What Intl.NumberFormat shows for an amount in euros."""
    sign = "-" if cents < 0 else ""
    euros, rest = divmod(abs(cents), 100)
    if locale == "de":
        return f"{sign}{euros:,}".replace(",", ".") + f",{rest:02d}\u00a0€"
    return f"{sign}€{euros:,}.{rest:02d}"


def number(value: int, locale: str) -> str:
    return f"{value:,}".replace(",", "." if locale == "de" else ",")


def expected(stats: dict[str, int], locale: str) -> dict[str, Any]:
    """The widget's texts for these figures."""
    percent = stats["donated_amount_in_cents"] * 100 // stats["requested_amount_in_cents"]
    of, needed, donations = (
        ("von", "benötigt", "Spenden") if locale == "de" else ("of", "needed", "donations")
    )
    values = [
        money(stats["open_amount_in_cents"], locale),
        number(stats["projects_count"], locale),
        f"{money(stats['client_donated_amount_in_cents'], locale)} in "
        f"{number(stats['client_donations_count'], locale)} {donations}",
        money(stats["client_matched_amount_in_cents"], locale),
        money(stats["pool_balance_in_cents"], locale),
    ]
    return {
        "donated": money(stats["donated_amount_in_cents"], locale),
        "requested": f"{of} {money(stats['requested_amount_in_cents'], locale)} {needed}",
        "percent": f"{percent}\u00a0%" if locale == "de" else f"{percent}%",
        "rows": dict(zip(LABELS[locale], values, strict=True)),
        "valuenow": str(percent),
    }


def shown(target: Any, donated: str | None = None) -> dict[str, Any]:
    """The widget's texts once it shows figures (`donated`, if given, as its amount)."""
    host = target.locator("[data-clientstats]")
    want = json.dumps(donated)
    target.wait_for_function(
        "want => { const h = document.querySelector('[data-clientstats]');"
        " const d = h && h.shadowRoot && h.shadowRoot.querySelector('.cs-donated');"
        " return d && d.textContent !== '\\u2013' && (want === null || d.textContent === want); }",
        arg=json.loads(want),
        timeout=WAIT_MS,
    )
    seen: dict[str, Any] = host.evaluate(READ)
    return seen


def statistics(service: RunningServer, client: str) -> dict[str, int]:
    response = get_stats(service.base_url, client)
    assert response.status_code == 200
    body: dict[str, int] = response.json()
    return body


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser page that records every URL it requests."""
    context = browser.new_context(viewport={"width": 560, "height": 640}, device_scale_factor=2)
    tab = context.new_page()
    tab.requested = []
    tab.on("request", lambda request: tab.requested.append(request.url))
    yield tab
    context.close()


def content_frame(page: Any) -> Any:
    """The document inside the page's iframe."""
    frame = page.locator("iframe").element_handle().content_frame()
    assert frame is not None
    return frame


def origins(urls: list[str]) -> set[str]:
    return {"{0.scheme}://{0.netloc}".format(urlsplit(url)) for url in urls}


def test_a_page_on_another_origin_shows_the_exact_figures(
    page: Any, service: RunningServer, site: Site
) -> None:
    # A fixed clock: the screenshot stays the same from run to run.
    page.clock.set_fixed_time(datetime.datetime(2026, 12, 1, 9, 30, tzinfo=datetime.UTC))
    page.goto(
        site.div_page(service.base_url, "zeitung", locale="de", title="Trierischer Volksfreund")
    )
    seen = shown(page)
    want = expected(statistics(service, "zeitung"), "de")
    assert {k: seen[k] for k in want} == want
    assert seen["title"] == "Trierischer Volksfreund"
    assert seen["live"]
    # The site's red 40px styles stay outside the widget.
    color = page.locator(".cs-donated").evaluate("e => getComputedStyle(e).color")
    assert color == "rgb(31, 41, 55)"
    assert_readable(page)
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.locator(".cs-card").screenshot(path=str(SCREENSHOT), animations="disabled")
    assert origins(page.requested) <= {service.base_url, site.base_url}


def test_english_figures_in_the_iframe(page: Any, service: RunningServer, site: Site) -> None:
    page.goto(site.iframe_page(f"{service.base_url}/en/widget/zeitung?compact=1&color=%23b45309"))
    frame = page.frame_locator("iframe")
    seen = shown(content_frame(page))
    want = expected(statistics(service, "zeitung"), "en")
    assert {k: seen[k] for k in want} == want
    assert seen["title"] == "Trierischer Volksfreund"
    fill = frame.locator(".cs-fill").evaluate("e => getComputedStyle(e).backgroundColor")
    assert fill == "rgb(180, 83, 9)"
    assert origins(page.requested) <= {service.base_url, site.base_url}


def test_colours_a_page_asks_for_keep_the_text_readable(
    page: Any, service: RunningServer, site: Site
) -> None:
    # Dark grey on dark grey: the widget picks a readable text colour instead.
    page.goto(site.div_page(service.base_url, "zeitung", background="#333333", text="#444444"))
    shown(page)
    assert (
        page.locator(".cs-card").evaluate("e => getComputedStyle(e).backgroundColor")
        == "rgb(51, 51, 51)"
    )
    assert_readable(page)


def test_a_pledge_shows_in_the_open_page_without_a_reload(
    page: Any, service: RunningServer, site: Site, service_database: str
) -> None:
    page.goto(site.div_page(service.base_url, "zeitung", locale="de"))
    before = shown(page)
    page.evaluate("window.__notReloaded = true")
    engine = make_engine(service_database)
    credentials = issue_credentials(engine, "zeitung")
    engine.dispose()
    figures = statistics(service, "zeitung")
    accepted = httpx.post(
        f"{service.base_url}/de/api_v4/clients/zeitung/projects/{PROJECTS[1]}/donation_pledges.json",
        json={
            "amount_in_cents": 4_200,
            "client_reference": uuid.uuid4().hex,
            "validate_address": False,
        },
        auth=(credentials["username"], credentials["password"]),
        timeout=30,
    )
    assert accepted.status_code == 202, accepted.text
    sent = time.monotonic()
    target = figures["donated_amount_in_cents"] + 4_200
    after = shown(page, donated=money(target, "de"))
    print(f"pledge shown {time.monotonic() - sent:.2f} s after its 202")
    assert after["donated"] != before["donated"]
    assert {k: after[k] for k in expected(figures, "de")} == expected(
        statistics(service, "zeitung"), "de"
    )
    assert page.evaluate("window.__notReloaded") is True
    assert origins(page.requested) <= {service.base_url, site.base_url}


def test_without_event_source_the_widget_polls_with_if_none_match(
    page: Any, service: RunningServer, site: Site
) -> None:
    page.add_init_script("delete window.EventSource")
    statuses: list[int] = []
    page.on(
        "response",
        lambda r: statuses.append(r.status) if "/project_statistics" in r.url else None,
    )
    page.goto(site.div_page(service.base_url, "zeitung", locale="de", poll="1"))
    shown(page)
    deadline = time.monotonic() + WAIT_MS / 1000
    while 304 not in statuses and time.monotonic() < deadline:
        page.wait_for_timeout(200)
    assert 304 in statuses  # the ETag went back as If-None-Match
    figures = statistics(service, "zeitung")
    booked = post_events(service.base_url, [donation(uuid.uuid4().hex, PROJECTS[2], 3_333)])
    assert booked.status_code == 200
    after = shown(page, donated=money(figures["donated_amount_in_cents"] + 3_333, "de"))
    assert after["rows"] == expected(statistics(service, "zeitung"), "de")["rows"]
    assert not [url for url in page.requested if url.endswith("/stream")]
    assert origins(page.requested) <= {service.base_url, site.base_url}


def test_the_widget_of_a_private_or_unknown_client_is_404(
    page: Any, service: RunningServer
) -> None:
    for client in ("geheim", "niemand"):
        response = page.goto(f"{service.base_url}/de/widget/{client}")
        assert response is not None and response.status == 404
        body = json.loads(page.locator("body").inner_text())
        assert body["status"] == "not_found"
        assert body["message"] == f"Couldn't find Client with permalink={client}"


def test_a_client_name_with_markup_is_shown_as_text(
    page: Any, service: RunningServer, site: Site
) -> None:
    page.goto(site.iframe_page(f"{service.base_url}/de/widget/markup"))
    frame = content_frame(page)
    seen = shown(frame)
    assert seen["title"] == MARKUP_NAME
    assert frame.title() == MARKUP_NAME
    assert frame.evaluate("window.__pwned") is None
    assert page.evaluate("window.__pwned") is None
    assert frame.locator("img").count() == 0
