"""One client_reference books at most one donation or forwarding, however often it is sent."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from clientstats.services.verification import verify
from clientstats.storage.tables import client_requests, donations
from tests.api.conftest import assert_error
from tests.api.test_client_api import (
    Api,
    accepted_id,
    new_database,
    pledge_body,
    post_events,
    with_delta,
)
from tests.conftest import RunningServer

SIMULTANEOUS = 50
SEED: list[dict[str, Any]] = [
    {"event": "client", "id": "solo", "name": "Solo", "pool": True},
    {"event": "client", "id": "crowd", "name": "Crowd", "pool": True},
    {"event": "project", "id": 1, "title": "P1"},
    {"event": "need", "id": 11, "project_id": 1, "title": "N", "requested_amount_in_cents": 10**7},
    *(
        {"event": "client_project", "client_id": c, "project_id": 1, "member": True}
        for c in ("solo", "crowd")
    ),
    {
        "event": "matching_fund",
        "id": 1,
        "client_id": "crowd",
        "title": "Crowd doubles",
        "provided_amount_in_cents": 10**6,
        "maximum_matching_amount_in_cents": 10**6,
        "state": "activated",
        "project_ids": [1],
    },
    {
        "event": "donation",
        "token": "seed",
        "channel": "offline",
        "amount_in_cents": 50_000,
        "receiver": {"type": "pool", "client_id": "crowd"},
    },
]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """A server with the in-process worker on a seeded database of each kind."""
    database_url, drop = new_database(request.param, tmp_path_factory.mktemp("db"))
    server = RunningServer(database_url)
    try:
        post_events(server.base_url, SEED)
        running = Api.on(server, database_url, "solo", "crowd")
        yield running
        running.close()
    finally:
        server.stop()
        drop()


def rows_with_reference(api: Api, client: str, reference: str) -> tuple[int, int]:
    """(stored requests, ledger entries) of a client with this client_reference."""
    with api.engine.connect() as conn:
        requests = conn.execute(
            select(func.count()).where(
                client_requests.c.client_id == client,
                client_requests.c.client_reference == reference,
            )
        ).scalar_one()
        entries = conn.execute(
            select(func.count()).where(
                donations.c.client_id == client, donations.c.client_reference == reference
            )
        ).scalar_one()
    return int(requests), int(entries)


CONFLICT_MESSAGES = {
    "en": "The client_reference order-1 is already used by a different request",
    "de": "Die client_reference order-1 wird schon von einem anderen Auftrag verwendet",
}


def test_a_repeat_answers_202_another_body_409_and_neither_books(api: Api) -> None:
    before = api.fresh_stats("solo")
    body = pledge_body(1000, "order-1", tracking_via="web")
    first = api.pledge("solo", body)
    first_id = accepted_id(first, api, "solo", "donation_pledges")
    # The same request, however its JSON is written: the same request again.
    same = [
        body,
        dict(reversed(body.items())),
        {**body, "validate_address": True},  # the default, said out loud
        {**body, "message": None, "earmark": None},  # null says as little as leaving it out
    ]
    # The same reference for anything else: a conflict that names the stored request.
    different: list[tuple[dict[str, Any], int | None]] = [
        ({**body, "amount_in_cents": 9999}, 1),
        (body, None),  # to the pool instead of project 1
        ({**body, "city": "Konz"}, 1),
        ({**body, "tracking_via": "app"}, 1),
        ({k: v for k, v in body.items() if k != "tracking_via"}, 1),
        ({**body, "message": "Alles Gute"}, 1),
        ({**body, "earmark": 11}, 1),
        ({**body, "validate_address": False}, 1),
    ]
    for settled in (False, True):
        if settled:
            assert api.settled("solo", "donation_pledges", first_id)["state"] == "confirmed"
        for repeat in same:
            again = api.pledge("solo", repeat)
            assert accepted_id(again, api, "solo", "donation_pledges") == first_id
            assert again.json() == first.json()
        for other, project in different:
            for locale in ("de", "en"):
                response = api.pledge("solo", other, project, locale=locale)
                href = api.url("solo", f"donation_pledges/{first_id}.json", locale)
                stored = [{"rel": "location", "href": href}]
                message = assert_error(response, 409, links=stored)["message"]
                assert message == CONFLICT_MESSAGES[locale]
    # crowd's fund matches every donation to project 1, solo's too: 1000 more on the project.
    expected = with_delta(
        before,
        donated_amount_in_cents=2000,
        open_amount_in_cents=-2000,
        client_donated_amount_in_cents=1000,
        client_donations_count=1,
    )
    assert api.stats_become("solo", expected) == expected
    assert rows_with_reference(api, "solo", "order-1") == (1, 1)


def send_simultaneously(
    count: int, send: Callable[[httpx.Client, int], httpx.Response]
) -> list[httpx.Response]:
    """Send `count` requests (send(http, i)) from as many threads, released at the same instant."""
    barrier = threading.Barrier(count)
    responses: list[httpx.Response | BaseException] = [RuntimeError("not sent")] * count
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)

    def run(http: httpx.Client, index: int) -> None:
        barrier.wait()
        try:
            responses[index] = send(http, index)
        except BaseException as exc:  # reported below, with the others
            responses[index] = exc

    with httpx.Client(timeout=60, limits=limits) as http:
        threads = [threading.Thread(target=run, args=(http, i)) for i in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    failures = [r for r in responses if not isinstance(r, httpx.Response)]
    assert failures == []
    return [r for r in responses if isinstance(r, httpx.Response)]


def test_simultaneous_requests_with_one_reference_book_once(api: Api) -> None:
    before = api.fresh_stats("crowd")
    auth = api.credentials["crowd"]
    # Verify the password once, so that the requests race in booking, not in hashing.
    warm = api.http.get(api.url("crowd", "donation_pledges/1.json"), auth=auth)
    assert warm.status_code == 404
    pledge_url = api.url("crowd", "projects/1/donation_pledges.json")
    body = pledge_body(2000, "same-pledge")
    pledges = send_simultaneously(
        SIMULTANEOUS, lambda http, _: http.post(pledge_url, json=body, auth=auth)
    )
    forwarding_url = api.url("crowd", "projects/1/forwarding_requests.json")
    forwarding = {"amount_in_cents": 30_000, "client_reference": "same-forwarding"}
    forwardings = send_simultaneously(
        SIMULTANEOUS, lambda http, _: http.post(forwarding_url, json=forwarding, auth=auth)
    )
    pledge_ids = {accepted_id(r, api, "crowd", "donation_pledges") for r in pledges}
    forwarding_ids = {accepted_id(r, api, "crowd", "forwarding_requests") for r in forwardings}
    assert len(pledge_ids) == len(forwarding_ids) == 1
    assert api.settled("crowd", "donation_pledges", pledge_ids.pop())["state"] == "confirmed"
    assert api.settled("crowd", "forwarding_requests", forwarding_ids.pop())["state"] == "confirmed"

    # One pledge of 2000 (matched with 2000) and one forwarding of 30000 out of the pool.
    expected = with_delta(
        before,
        donated_amount_in_cents=34_000,
        open_amount_in_cents=-34_000,
        pool_balance_in_cents=-30_000,
        client_donated_amount_in_cents=2000,
        client_matched_amount_in_cents=2000,
        client_donations_count=1,
    )
    assert api.stats_become("crowd", expected) == expected
    assert rows_with_reference(api, "crowd", "same-pledge") == (1, 1)
    assert rows_with_reference(api, "crowd", "same-forwarding") == (1, 1)
    report = verify(api.engine)
    assert report.differences == []
    assert report.negative_pools == {}


Sent = tuple[str, dict[str, Any]]  # (path, body)


def assert_one_stored_and_every_other_body_refused(
    api: Api, kind: str, sent: list[Sent], responses: list[httpx.Response]
) -> int:
    """Exactly one request stored; its senders got 202, every other sender a 409 naming it."""
    accepted = [
        (request, r) for request, r in zip(sent, responses, strict=True) if r.status_code == 202
    ]
    assert accepted, [r.text for r in responses]
    winner = accepted[0][0]
    stored_id = accepted_id(accepted[0][1], api, "crowd", kind)
    location = [{"rel": "location", "href": api.url("crowd", f"{kind}/{stored_id}.json")}]
    with api.engine.connect() as conn:
        row = conn.execute(
            select(client_requests.c.project_id, client_requests.c.amount_in_cents).where(
                client_requests.c.id == stored_id
            )
        ).one()
    assert (row.project_id is None, row.amount_in_cents) == (
        winner[0].startswith("pool/"),
        winner[1]["amount_in_cents"],
    )
    for request, response in zip(sent, responses, strict=True):
        if request == winner:
            assert accepted_id(response, api, "crowd", kind) == stored_id
        else:
            assert_error(response, 409, links=location)
    return stored_id


def test_simultaneous_requests_with_one_reference_and_different_bodies_store_one(
    api: Api,
) -> None:
    auth = api.credentials["crowd"]
    warm = api.http.get(api.url("crowd", "donation_pledges/1.json"), auth=auth)
    assert warm.status_code == 404
    base = pledge_body(100, "contested-pledge")
    project, pool = "projects/1/donation_pledges.json", "pool/donation_pledges.json"
    variants: list[Sent] = [
        (project, base),
        (project, {**base, "amount_in_cents": 200}),
        (pool, base),
        (project, {**base, "city": "Konz"}),
        (project, {**base, "tracking_via": "app"}),
    ]
    # Half send the same pledge, the rest one of the others: whoever is stored first decides.
    pledges = [variants[0] if i % 2 else variants[i % len(variants)] for i in range(SIMULTANEOUS)]
    forwardings: list[Sent] = [
        (
            "projects/1/forwarding_requests.json",
            {"amount_in_cents": 1000 + (0 if i % 2 else i), "client_reference": "contested-fw"},
        )
        for i in range(SIMULTANEOUS)
    ]
    for kind, sent in (("donation_pledges", pledges), ("forwarding_requests", forwardings)):
        responses = send_simultaneously(
            SIMULTANEOUS,
            lambda http, i, sent=sent: http.post(
                api.url("crowd", sent[i][0]), json=sent[i][1], auth=auth
            ),
        )
        stored_id = assert_one_stored_and_every_other_body_refused(api, kind, sent, responses)
        assert api.settled("crowd", kind, stored_id)["state"] == "confirmed"
    for reference in ("contested-pledge", "contested-fw"):
        assert rows_with_reference(api, "crowd", reference) == (1, 1)
    report = verify(api.engine)
    assert report.differences == []
    assert report.negative_pools == {}
