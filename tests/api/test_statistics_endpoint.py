"""The statistics endpoint over real HTTP on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from tests.api.conftest import (
    BODY_KEYS,
    JSON_UTF8,
    SEED_CLIENTS,
    assert_error,
    donation,
    get_stats,
    http,
    ndjson,
    new_client_events,
    ordered_pairs,
    post_events,
    reference_body,
    run_cli,
    stats_url,
    unique_permalink,
)
from tests.conftest import RunningServer

MAX_AGE = re.compile(r"public, max-age=(\d+)")
STRONG_ETAG = re.compile(r'"[\x21\x23-\x7e]*"')


def max_age(response: httpx.Response) -> int:
    """N of `Cache-Control: public, max-age=N`; fails on any other shape."""
    matched = MAX_AGE.fullmatch(response.headers["cache-control"])
    assert matched is not None, response.headers["cache-control"]
    return int(matched.group(1))


def wait_for_change(url: str, old_etag: str) -> httpx.Response:
    """Poll for up to one second until the response differs from old_etag."""
    deadline = time.monotonic() + 1.0
    while True:
        response = http().get(url, timeout=10)
        if response.headers.get("etag") != old_etag or time.monotonic() > deadline:
            return response
        time.sleep(0.02)


# --- body --------------------------------------------------------------------------------


@pytest.mark.parametrize("client", SEED_CLIENTS)
def test_body_has_exactly_the_documented_keys_in_order_with_integer_values(
    seeded_server: RunningServer, client: str
) -> None:
    response = get_stats(seeded_server.base_url, client)
    assert response.status_code == 200
    pairs = ordered_pairs(response.content)
    assert [key for key, _ in pairs] == BODY_KEYS
    for key, value in pairs[:-1]:
        assert type(value) is int, (key, value)
    assert pairs[-1] == ("links", [])


@pytest.mark.parametrize("client", SEED_CLIENTS)
def test_figures_equal_the_reference_book(seeded_server: RunningServer, client: str) -> None:
    response = get_stats(seeded_server.base_url, client)
    assert response.json() == reference_body(client)


@pytest.mark.parametrize("client", ["volksfreund", "gen-c"])
def test_figures_equal_what_clientstats_stats_prints(
    seeded_server: RunningServer, seeded_database_url: str, client: str
) -> None:
    response = get_stats(seeded_server.base_url, client)
    printed = run_cli(seeded_database_url, "stats", client)
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.strip() == response.content


def test_locales_and_suffix_give_the_same_response(seeded_server: RunningServer) -> None:
    responses = [
        get_stats(seeded_server.base_url, "volksfreund", locale=locale, suffix=suffix)
        for locale in ("de", "en")
        for suffix in (".json", "")
    ]
    assert {r.status_code for r in responses} == {200}
    assert {r.headers["content-type"] for r in responses} == {JSON_UTF8}
    assert len({r.content for r in responses}) == 1
    assert len({r.headers["etag"] for r in responses}) == 1
    assert responses[0].json() == reference_body("volksfreund")


@pytest.mark.parametrize("locale", ["fr", "es", "DE", "En", "deu", "d", "api_v4", ""])
def test_any_other_locale_is_404(seeded_server: RunningServer, locale: str) -> None:
    response = get_stats(seeded_server.base_url, "volksfreund", locale=locale)
    assert_error(response, 404)


@pytest.mark.parametrize("spelling", ["VOLKSFREUND", "Volksfreund", "vOlKsFrEuNd"])
def test_permalink_is_matched_case_insensitively(
    seeded_server: RunningServer, spelling: str
) -> None:
    canonical = get_stats(seeded_server.base_url, "volksfreund")
    response = get_stats(seeded_server.base_url, spelling, suffix="")
    assert response.status_code == 200
    assert response.content == canonical.content
    assert response.headers["etag"] == canonical.headers["etag"]


@pytest.mark.parametrize("client", ["nobody", "NoBody", "volksfreund2", "x"])
def test_unknown_client_is_404_naming_the_permalink(
    seeded_server: RunningServer, client: str
) -> None:
    for suffix in (".json", ""):
        body = assert_error(get_stats(seeded_server.base_url, client, suffix=suffix), 404)
        assert body["message"] == f"Couldn't find Client with permalink={client.lower()}"


def test_private_client_statistics_are_refused_in_the_error_format(
    seeded_server: RunningServer,
) -> None:
    permalink = unique_permalink("private")
    events = new_client_events(permalink)
    events[0]["statistics_private"] = True
    assert post_events(seeded_server.base_url, events).status_code == 200
    response = get_stats(seeded_server.base_url, permalink)
    assert_error(response, 401)
    assert response.headers["www-authenticate"].lower().startswith("basic")
    # Not for scripts on other origins: a private answer, even a refusal, has no CORS header.
    assert "access-control-allow-origin" not in response.headers
    assert response.headers["cache-control"] == "no-store"


# --- headers, conditional requests, methods ------------------------------------------------


def test_headers_of_a_200(seeded_server: RunningServer) -> None:
    response = get_stats(seeded_server.base_url, "acme")
    assert response.status_code == 200
    assert response.headers["content-type"] == JSON_UTF8
    assert response.headers["access-control-allow-origin"] == "*"
    assert 0 < max_age(response) <= 1200
    etag = response.headers["etag"]
    assert not etag.startswith("W/")
    assert STRONG_ETAG.fullmatch(etag), etag
    assert int(response.headers["content-length"]) == len(response.content)


def test_max_age_is_bounded_by_the_configured_ttl(configured_server: RunningServer) -> None:
    for client in ("volksfreund", "acme", "volksfreund"):
        response = get_stats(configured_server.base_url, client)
        assert response.status_code == 200
        assert 0 < max_age(response) <= 60


def test_if_none_match(seeded_server: RunningServer) -> None:
    url = stats_url(seeded_server.base_url, "tageblatt")
    current = http().get(url).headers["etag"]
    cases = {
        current: 304,
        "*": 304,
        f'"other", {current}': 304,
        '"other"': 200,
        current[:-1] + 'x"': 200,
        "": 200,
    }
    for header, status in cases.items():
        response = http().get(url, headers={"if-none-match": header})
        assert response.status_code == status, header
        assert response.headers["etag"] == current
        if status == 304:
            assert response.content == b""
        else:
            assert response.json() == reference_body("tageblatt")


def test_if_none_match_compares_weakly(seeded_server: RunningServer) -> None:
    """RFC 9110 §13.1.2: If-None-Match uses the weak comparison, so W/"x" matches "x"."""
    url = stats_url(seeded_server.base_url, "tageblatt")
    current = http().get(url).headers["etag"]
    response = http().get(url, headers={"if-none-match": f"W/{current}"})
    assert response.status_code == 304
    assert response.content == b""


@pytest.mark.parametrize("suffix", [".json", ""])
def test_head_is_get_without_a_body(seeded_server: RunningServer, suffix: str) -> None:
    url = stats_url(seeded_server.base_url, "VolksFreund", locale="en", suffix=suffix)
    got = http().get(url)
    head = http().head(url)
    assert head.status_code == 200
    assert head.content == b""
    for name in ("content-type", "etag", "access-control-allow-origin", "content-length"):
        assert head.headers[name] == got.headers[name], name
    assert 0 < max_age(head) <= 1200


def test_head_of_an_unknown_client_is_404_without_a_body(seeded_server: RunningServer) -> None:
    head = http().head(stats_url(seeded_server.base_url, "nobody"))
    assert head.status_code == 404
    assert head.content == b""
    assert head.headers["content-type"] == JSON_UTF8


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("suffix", [".json", ""])
def test_other_methods_are_405_in_the_error_format(
    seeded_server: RunningServer, method: str, suffix: str
) -> None:
    url = stats_url(seeded_server.base_url, "volksfreund", suffix=suffix)
    response = http().request(method, url, content=b"{}")
    assert_error(response, 405)
    allowed = {m.strip() for m in response.headers["allow"].split(",")}
    assert {"GET", "HEAD"} <= allowed
    assert not allowed & {"POST", "PUT", "DELETE", "PATCH"}
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("suffix", [".json", ""])
def test_a_cors_preflight_is_answered_so_a_script_may_send_if_none_match(
    seeded_server: RunningServer, suffix: str
) -> None:
    url = stats_url(seeded_server.base_url, "volksfreund", suffix=suffix)
    response = http().options(
        url,
        headers={
            "origin": "https://news.example",
            "access-control-request-method": "GET",
            "access-control-request-headers": "if-none-match",
        },
    )
    assert response.status_code == 204
    assert response.content == b""
    assert response.headers["access-control-allow-origin"] == "*"
    assert "GET" in response.headers["access-control-allow-methods"]
    assert "if-none-match" in response.headers["access-control-allow-headers"].lower()
    assert int(response.headers["access-control-max-age"]) > 0


def test_a_script_can_read_the_etag(seeded_server: RunningServer) -> None:
    url = stats_url(seeded_server.base_url, "acme")
    got = http().get(url, headers={"origin": "https://news.example"})
    exposed = {h.strip().lower() for h in got.headers["access-control-expose-headers"].split(",")}
    assert "etag" in exposed
    again = http().get(url, headers={"if-none-match": got.headers["etag"]})
    assert again.status_code == 304
    assert again.headers["access-control-allow-origin"] == "*"
    assert "etag" in again.headers["access-control-expose-headers"].lower()


def test_errors_are_never_stored_by_a_cache(seeded_server: RunningServer) -> None:
    for response in (
        get_stats(seeded_server.base_url, "nobody"),
        http().get(f"{seeded_server.base_url}/fr/api_v4/clients/acme/project_statistics"),
        http().get(f"{seeded_server.base_url}/no/such/path"),
        http().post(f"{seeded_server.base_url}/admin/events", content=b""),
    ):
        assert response.status_code >= 400
        assert response.headers["cache-control"] == "no-store"


# --- freshness -----------------------------------------------------------------------------


def test_a_booking_is_served_within_a_second_and_other_clients_keep_their_etag(
    seeded_server: RunningServer,
) -> None:
    base = seeded_server.base_url
    permalink = unique_permalink("fresh")
    events = new_client_events(permalink, requested=100_000)
    project = events[1]["id"]
    assert post_events(base, events).status_code == 200
    url = stats_url(base, permalink)
    before = http().get(url)
    untouched = get_stats(base, "volksfreund").headers["etag"]
    assert before.json()["open_amount_in_cents"] == 100_000

    booked = post_events(base, [donation(f"{permalink}-d1", project, 2500)])
    assert booked.status_code == 200, booked.text
    after = wait_for_change(url, before.headers["etag"])
    assert after.json()["donated_amount_in_cents"] == 2500
    assert after.json()["open_amount_in_cents"] == 97_500
    assert http().get(url, headers={"if-none-match": before.headers["etag"]}).status_code == 200
    assert get_stats(base, "volksfreund").headers["etag"] == untouched

    revoked = post_events(base, [{"event": "revocation", "token": f"{permalink}-d1"}])
    assert revoked.status_code == 200, revoked.text
    reverted = wait_for_change(url, after.headers["etag"])
    assert reverted.content == before.content


def test_a_booking_refreshes_every_client_holding_the_project(
    seeded_server: RunningServer,
) -> None:
    base = seeded_server.base_url
    first, second = unique_permalink("share"), unique_permalink("share")
    events = new_client_events(first, requested=5000)
    project = events[1]["id"]
    events += [
        {"event": "client", "id": second, "name": "Second"},
        {"event": "client_project", "client_id": second, "project_id": project, "member": True},
    ]
    assert post_events(base, events).status_code == 200
    etags = {c: get_stats(base, c).headers["etag"] for c in (first, second)}
    assert post_events(base, [donation(f"{first}-d", project, 700)]).status_code == 200
    for client in (first, second):
        response = wait_for_change(stats_url(base, client), etags[client])
        assert response.json()["donated_amount_in_cents"] == 700, client


def test_a_booking_imported_by_another_process_is_served_within_a_second(
    seeded_server: RunningServer, seeded_database_url: str
) -> None:
    base = seeded_server.base_url
    permalink = unique_permalink("other")
    events = new_client_events(permalink, requested=40_000)
    project = events[1]["id"]
    assert post_events(base, events).status_code == 200
    url = stats_url(base, permalink)
    before = http().get(url)
    untouched = get_stats(base, "acme").headers["etag"]

    imported = run_cli(
        seeded_database_url,
        "import",
        "-",
        stdin=ndjson([donation(f"{permalink}-x", project, 1234, "external")]),
    )
    assert imported.returncode == 0, imported.stderr
    after = wait_for_change(url, before.headers["etag"])
    assert after.json()["donated_amount_in_cents"] == 1234
    assert get_stats(base, "acme").headers["etag"] == untouched


def test_large_sums_stay_exact_integers(seeded_server: RunningServer) -> None:
    """Large sums are still JSON integers, parsed exactly (no float rounding)."""
    base = seeded_server.base_url
    permalink = unique_permalink("big")
    events = new_client_events(permalink, requested=100_000_000_000)
    project = events[1]["id"]
    events += [donation(f"{permalink}-{i}", project, 99_999_999_999) for i in range(3)]
    assert post_events(base, events).status_code == 200
    pairs = ordered_pairs(get_stats(base, permalink).content)
    body = dict(pairs)
    assert all(type(value) is int for _, value in pairs[:-1])
    assert body["requested_amount_in_cents"] == 100_000_000_000
    assert body["donated_amount_in_cents"] == 100_000_000_000
    assert body["open_amount_in_cents"] == 0
