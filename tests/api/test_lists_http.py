"""The lists over HTTP: visibility, bad input, walking with cursors, freshness, ETag and HEAD."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.api.conftest import ERROR_KEYS, assert_error, http, post_events
from tests.api.lists_helpers import OwnClient, api, get, href, ok, own_client, walk
from tests.conftest import ADMIN_TOKEN, RunningServer

START = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def own(seeded_server: RunningServer, seeded_database_url: str) -> Iterator[OwnClient]:
    """A client of this module, with 30 client donations a minute apart and credentials."""
    client = own_client(seeded_server, seeded_database_url)
    events = [client_donation(client, f"{client.permalink}-d{i}", i) for i in range(30)]
    events.append({"event": "revocation", "token": f"{client.permalink}-d3"})
    assert post_events(seeded_server.base_url, events).status_code == 200
    yield client


def client_donation(
    client: OwnClient, token: str, minute: int, amount: int = 100
) -> dict[str, Any]:
    return {
        "event": "donation",
        "token": token,
        "channel": "client",
        "client_id": client.permalink,
        "client_reference": token,
        "receiver": {"type": "project", "id": client.project_id},
        "amount_in_cents": amount + minute,
        "created_at": (START + timedelta(minutes=minute)).isoformat(),
    }


def donations_url(server: RunningServer, client: OwnClient, query: str = "") -> str:
    return api(server, f"/clients/{client.permalink}/client_donations.json{query}")


def assert_error_response(response: Any, status: int) -> Any:
    assert_error(response, status)
    return response


# -- visibility --------------------------------------------------------------------------------


def test_client_donations_need_the_clients_own_credentials(
    seeded_server: RunningServer, seeded_database_url: str, own: OwnClient
) -> None:
    url = donations_url(seeded_server, own)
    assert "access-control-allow-origin" not in assert_error_response(get(url), 401).headers
    assert_error(get(url, headers={"authorization": f"Bearer {ADMIN_TOKEN}"}), 401)
    assert_error(get(url, auth=(own.auth[0], "wrong")), 401)
    other = own_client(seeded_server, seeded_database_url)
    assert_error(get(url, auth=other.auth), 404)
    assert_error(
        get(
            api(seeded_server, f"/clients/{own.permalink}/client_donations/{own.permalink}-d1"),
            auth=other.auth,
        ),
        404,
    )
    response = get(url, auth=own.auth)
    assert response.status_code == 200
    assert response.headers["cache-control"].startswith("private")
    assert "access-control-allow-origin" not in response.headers
    stats = get(api(seeded_server, f"/clients/{own.permalink}/project_statistics")).json()
    body = response.json()
    assert body["total_entries"] == stats["client_donations_count"] == 29
    assert body["total_amount_in_cents"] == stats["client_donated_amount_in_cents"]
    assert body["total_amount_in_cents"] == sum(100 + i for i in range(30) if i != 3)
    for entry in body["data"]:
        assert not {"first_name", "last_name", "email", "street", "city", "zip"} & set(entry)


def test_one_client_donation_by_token_or_reference_revoked_ones_too(
    seeded_server: RunningServer, own: OwnClient
) -> None:
    base = api(seeded_server, f"/clients/{own.permalink}/client_donations")
    by_token = ok(f"{base}/{own.permalink}-d5.json", auth=own.auth)
    assert by_token["amount_in_cents"] == 105 and by_token["state"] == "confirmed"
    assert by_token["receiver_type"] == "Project" and by_token["receiver_id"] == own.project_id
    revoked = ok(f"{base}/{own.permalink}-d3", auth=own.auth)
    assert revoked["state"] == "revoked" and revoked["revoked_at"] is not None
    assert_error(get(f"{base}/nope", auth=own.auth), 404)
    listed = ok(donations_url(seeded_server, own, "?facets=state:revoked"), auth=own.auth)
    assert [d["token"] for d in listed["data"]] == [f"{own.permalink}-d3"]
    assert listed["total_amount_in_cents"] == 103


def test_private_clients_lists_need_their_credentials(
    seeded_server: RunningServer, seeded_database_url: str
) -> None:
    client = own_client(seeded_server, seeded_database_url)
    post_events(
        seeded_server.base_url,
        [{"event": "client", "id": client.permalink, "statistics_private": True}],
    )
    url = api(seeded_server, f"/clients/{client.permalink}/projects")
    deadline = time.monotonic() + 5
    while get(url).status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert_error(get(url), 401)
    other = own_client(seeded_server, seeded_database_url)
    assert_error(get(url, auth=other.auth), 404)
    response = get(url, auth=client.auth)
    assert response.status_code == 200 and response.json()["total_entries"] == 1
    assert response.headers["cache-control"].startswith("private")


# -- bad input ---------------------------------------------------------------------------------

BAD_QUERIES = [
    ("projects", "page=0", "page"),
    ("projects", "page=abc", "page"),
    ("projects", "page=-1", "page"),
    ("projects", "per_page=201", "per_page"),
    ("projects", "per_page=0", "per_page"),
    ("projects", "per_page=x", "per_page"),
    ("projects", "facets=nope:1", "facets"),
    ("projects", "facets=closed:maybe", "facets"),
    ("projects", "facets=closed", "facets"),
    ("projects", "facets=closed:true|closed:false", "facets"),
    ("projects", "order=nope:ASC", "order"),
    ("projects", "order=id:UP", "order"),
    ("projects", "order=:ASC", "order"),
    ("projects", "page=502&per_page=20", "page"),
    ("projects", "cursor=abc", "cursor"),
    ("projects", "cursor=" + "A" * 3000, "query"),
    ("matching_funds", "order=title:ASC", "order"),
    ("pool/forwardings", "facets=state:lost", "facets"),
]


@pytest.mark.parametrize(("resource", "query", "parameter"), BAD_QUERIES)
def test_bad_list_parameters_are_a_400_naming_them(
    seeded_server: RunningServer, resource: str, query: str, parameter: str
) -> None:
    for locale in ("en", "de"):
        url = api(seeded_server, f"/clients/volksfreund/{resource}?{query}", locale=locale)
        response = get(url)
        assert response.status_code == 400, response.text
        body = response.json()
        assert list(body)[: len(ERROR_KEYS) - 1] == ERROR_KEYS[:-1]
        assert (body["status"], body["reason"]) == ("bad_request", "Bad Request")
        assert list(body["errors"]) == [parameter]
        assert parameter in body["message"]
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["access-control-allow-origin"] == "*"


@pytest.mark.parametrize(
    "query",
    ["facets=created_at_from:yesterday", "facets=receiver_type:pool", "order=amount:SIDEWAYS"],
)
def test_bad_client_donation_parameters_are_a_400(
    seeded_server: RunningServer, own: OwnClient, query: str
) -> None:
    response = get(donations_url(seeded_server, own, f"?{query}"), auth=own.auth)
    assert response.status_code == 400, response.text


def test_tampered_and_foreign_cursors_are_refused(
    seeded_server: RunningServer, own: OwnClient
) -> None:
    first = ok(donations_url(seeded_server, own, "?per_page=5"), auth=own.auth)
    cursor_url = href(first, "next")
    assert cursor_url is not None and "cursor=" in cursor_url
    cursor = cursor_url.split("cursor=")[1]
    body, _, mac = cursor.partition(".")
    raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    forged = base64.urlsafe_b64encode(raw.replace(b'"p":2', b'"p":3')).rstrip(b"=").decode()
    for bad in (f"{forged}.{mac}", cursor[:-2], "x.y"):
        response = get(
            donations_url(seeded_server, own, f"?per_page=5&cursor={bad}"), auth=own.auth
        )
        assert response.status_code == 400 and list(response.json()["errors"]) == ["cursor"]
    # The same cursor on another list (here: another order) is foreign.
    other = donations_url(seeded_server, own, f"?order=amount:ASC&cursor={cursor}")
    response = get(other, auth=own.auth)
    assert response.status_code == 400 and list(response.json()["errors"]) == ["cursor"]


@pytest.mark.parametrize(
    "path",
    [
        "/clients/nobody/projects",
        "/clients/no.body/projects",
        "/clients/volksfreund/projects/999999",
        "/clients/volksfreund/projects/abc",
        "/clients/volksfreund/projects/4",  # a project of acme, not of volksfreund
        "/clients/volksfreund/matching_funds/2",  # acme's fund
        "/clients/acme/pool",
        "/clients/acme/pool/forwardings",
        "/projects/999999/needs",
        "/projects/1/needs/21",
        "/projects/0/needs",
        "/xx/api_v4/clients/volksfreund/projects",
    ],
)
def test_unknown_ids_are_a_404(seeded_server: RunningServer, path: str) -> None:
    url = f"{seeded_server.base_url}{path}" if path.startswith("/xx") else api(seeded_server, path)
    assert_error(get(url), 404)


def test_a_page_past_the_last_is_empty(seeded_server: RunningServer) -> None:
    body = ok(api(seeded_server, "/clients/volksfreund/projects?page=50"))
    assert body["data"] == [] and body["total_entries"] == 4 and body["current_page"] == 50
    assert href(body, "next") is None


# -- walking -----------------------------------------------------------------------------------


def test_walking_next_links_returns_every_entry_once_in_order_while_bookings_happen(
    seeded_server: RunningServer, own: OwnClient
) -> None:
    before, _ = walk(donations_url(seeded_server, own, "?per_page=30"), auth=own.auth)
    assert len(before) == 29
    seen: list[dict[str, Any]] = []
    url: str | None = donations_url(seeded_server, own, "?per_page=4")
    page = 0
    while url is not None:
        body = ok(url, auth=own.auth)
        seen += body["data"]
        url = href(body, "next")
        page += 1
        assert body["current_page"] == page
        # A newer and an older donation arrive between pages.
        post_events(
            seeded_server.base_url,
            [
                client_donation(own, f"{own.permalink}-new{page}", 100 + page),
                client_donation(own, f"{own.permalink}-old{page}", -100 - page),
            ],
        )
    tokens = [d["token"] for d in seen]
    assert len(tokens) == len(set(tokens)), "an entry came twice"
    assert {d["token"] for d in before} <= set(tokens), "an entry that existed was skipped"
    keys = [(d["created_at"], d["token"]) for d in seen]
    assert [k[0] for k in keys] == sorted((k[0] for k in keys), reverse=True)


def test_walking_ascending_by_amount(seeded_server: RunningServer, own: OwnClient) -> None:
    entries, envelopes = walk(
        donations_url(seeded_server, own, "?per_page=7&order=amount:ASC"), auth=own.auth
    )
    amounts = [d["amount_in_cents"] for d in entries]
    assert amounts == sorted(amounts)
    assert len(entries) == envelopes[0]["total_entries"]
    assert sum(amounts) == envelopes[0]["total_amount_in_cents"]


# -- HTTP behaviour ----------------------------------------------------------------------------


def test_etag_304_head_cors_and_a_booking_is_visible_within_a_second(
    seeded_server: RunningServer, own: OwnClient
) -> None:
    url = api(seeded_server, f"/clients/{own.permalink}/projects/{own.project_id}.json")
    first = get(url)
    etag = first.headers["etag"]
    assert first.headers["access-control-allow-origin"] == "*"
    assert "ETag" in first.headers["access-control-expose-headers"]
    assert first.headers["cache-control"].startswith("public, max-age=")
    again = get(url, headers={"if-none-match": etag})
    assert again.status_code == 304 and again.content == b""
    head = http().head(url)
    assert head.status_code == 200 and head.content == b"" and head.headers["etag"] == etag
    assert int(head.headers["content-length"]) == len(first.content)
    preflight = http().options(url, headers={"access-control-request-method": "GET"})
    assert preflight.status_code == 204
    assert "If-None-Match" in preflight.headers["access-control-allow-headers"]
    assert_error(http().delete(url), 405)
    count = first.json()["donations_count"]
    post_events(seeded_server.base_url, [client_donation(own, f"{own.permalink}-fresh", 1000)])
    booked_at = time.monotonic()
    while True:
        response = get(url)
        if response.headers["etag"] != etag or time.monotonic() - booked_at > 1.0:
            break
        time.sleep(0.02)
    assert response.json()["donations_count"] == count + 1


def test_links_follow_the_host_and_the_list_query(seeded_server: RunningServer) -> None:
    url = api(seeded_server, "/clients/volksfreund/projects?per_page=1&order=title:DESC")
    body = ok(url, headers={"host": "stats.example.org"})
    assert body["links"][0] == {
        "rel": "self",
        "href": "http://stats.example.org/en/api_v4/clients/volksfreund/projects"
        "?per_page=1&order=title:DESC",
    }
    nxt = href(body, "next")
    assert nxt is not None and nxt.startswith("http://stats.example.org/")
    # X-Forwarded-* is not trusted unless configured.
    forwarded = ok(url, headers={"x-forwarded-host": "evil.example", "x-forwarded-proto": "https"})
    assert all("evil" not in e["href"] for e in forwarded["links"])
