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


def test_a_repeated_reference_answers_202_and_books_nothing_more(api: Api) -> None:
    before = api.fresh_stats("solo")
    body = pledge_body(1000, "order-1")
    first = api.pledge("solo", body)
    first_id = accepted_id(first, api, "solo", "donation_pledges")
    # A repeat, before and after processing, even with other content: 202, the same request.
    again = api.pledge("solo", {**body, "amount_in_cents": 9999})
    assert accepted_id(again, api, "solo", "donation_pledges") == first_id
    assert api.settled("solo", "donation_pledges", first_id)["state"] == "confirmed"
    for repeat in (body, {**body, "amount_in_cents": 5}):
        assert accepted_id(api.pledge("solo", repeat), api, "solo", "donation_pledges") == first_id
    to_pool = api.pledge("solo", body, project=None)
    assert accepted_id(to_pool, api, "solo", "donation_pledges") == first_id
    assert again.json() == first.json()
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
    count: int, send: Callable[[httpx.Client], httpx.Response]
) -> list[httpx.Response]:
    """Send `count` requests from as many threads, released at the same instant."""
    barrier = threading.Barrier(count)
    responses: list[httpx.Response | BaseException] = [RuntimeError("not sent")] * count
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)

    def run(http: httpx.Client, index: int) -> None:
        barrier.wait()
        try:
            responses[index] = send(http)
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
        SIMULTANEOUS, lambda http: http.post(pledge_url, json=body, auth=auth)
    )
    forwarding_url = api.url("crowd", "projects/1/forwarding_requests.json")
    forwarding = {"amount_in_cents": 30_000, "client_reference": "same-forwarding"}
    forwardings = send_simultaneously(
        SIMULTANEOUS, lambda http: http.post(forwarding_url, json=forwarding, auth=auth)
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
