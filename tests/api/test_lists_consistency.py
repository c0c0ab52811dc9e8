"""Each list response is one snapshot: its rows add up to its totals while bookings go on."""

from __future__ import annotations

import threading
from collections.abc import Callable

from tests.api.conftest import post_events
from tests.api.lists_helpers import OwnClient, api, ok, own_client
from tests.conftest import RunningServer


def test_rows_add_up_to_totals_while_a_writer_books(
    seeded_server: RunningServer, seeded_database_url: str
) -> None:
    client = own_client(seeded_server, seeded_database_url)
    stop = threading.Event()
    booked = [0]

    def book() -> None:
        while not stop.is_set() and booked[0] < 150:
            n = booked[0]
            events = [donation(client, f"{client.permalink}-c{n}-{k}", 100 + k) for k in range(3)]
            assert post_events(seeded_server.base_url, events).status_code == 200
            booked[0] += 1

    writer = threading.Thread(target=book)
    writer.start()
    try:
        checks: list[Callable[[], None]] = [
            lambda: donations_add_up(seeded_server, client),
            lambda: projects_add_up(seeded_server, client),
        ]
        for _ in range(40):
            for check in checks:
                check()
    finally:
        stop.set()
        writer.join()
    assert booked[0] > 0


def donation(client: OwnClient, token: str, amount: int) -> dict[str, object]:
    return {
        "event": "donation",
        "token": token,
        "channel": "client",
        "client_id": client.permalink,
        "client_reference": token,
        "receiver": {"type": "project", "id": client.project_id},
        "amount_in_cents": amount,
    }


def donations_add_up(server: RunningServer, client: OwnClient) -> None:
    url = api(server, f"/clients/{client.permalink}/client_donations?per_page=200")
    body = ok(url, auth=client.auth)
    if body["total_entries"] <= 200:
        assert len(body["data"]) == body["total_entries"]
        assert sum(d["amount_in_cents"] for d in body["data"]) == body["total_amount_in_cents"]


def projects_add_up(server: RunningServer, client: OwnClient) -> None:
    body = ok(api(server, f"/clients/{client.permalink}/projects?per_page=200"))
    assert len(body["data"]) == body["total_entries"] == 1
    project = body["data"][0]
    assert project["open_amount_in_cents"] == body["open_amount_in_cents"]
    assert project["requested_amount_in_cents"] == body["requested_amount_in_cents"]
    assert project["client_donated_amount_in_cents"] == project["donated_amount_in_cents"]
