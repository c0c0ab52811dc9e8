"""A freshly started server takes a burst of one client's authenticated requests without a 503."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from argon2 import PasswordHasher

from clientstats.storage import requests_store
from clientstats.storage.database import write_transaction
from tests.api.test_client_api import Api, accepted_id, pledge_body, post_events
from tests.conftest import RunningServer
from tests.reliability.test_exactly_once import send_simultaneously

THREADS, PER_THREAD = 24, 15
SEED: list[dict[str, Any]] = [
    {"event": "client", "id": "burst", "name": "Burst", "pool": True},
    {"event": "project", "id": 1, "title": "P1"},
    {"event": "client_project", "client_id": "burst", "project_id": 1, "member": True},
]


def test_a_burst_at_cold_start_is_accepted_without_a_503(
    database_url: str, start_server: Callable[..., RunningServer]
) -> None:
    server = start_server(database_url)
    post_events(server.base_url, SEED)
    api = Api.on(server, database_url, "burst")
    # A stored hash that is slower to check than usual (its cost travels with it), so that
    # checking it once per request could not keep up, on any machine.
    username, password = api.credentials["burst"]
    slow = PasswordHasher(time_cost=9).hash(password)
    with write_transaction(api.engine) as conn:
        requests_store.set_credentials(
            conn, client_id="burst", username=username, password_hash=slow
        )
    url = api.url("burst", "projects/1/donation_pledges.json")

    def send_all(http: Any, thread: int) -> list[Any]:
        bodies = [pledge_body(100, f"burst-{thread}-{i}") for i in range(PER_THREAD)]
        return [http.post(url, json=body, auth=(username, password)) for body in bodies]

    sent: list[list[Any]] = [[] for _ in range(THREADS)]

    def send(http: Any, thread: int) -> Any:
        sent[thread] = send_all(http, thread)
        return sent[thread][0]

    send_simultaneously(THREADS, send)
    responses = [r for per_thread in sent for r in per_thread]
    assert len(responses) == THREADS * PER_THREAD
    failed = [(r.status_code, r.text) for r in responses if r.status_code != 202]
    assert failed == []
    ids = {accepted_id(r, api, "burst", "donation_pledges") for r in responses}
    assert len(ids) == THREADS * PER_THREAD
    api.close()
