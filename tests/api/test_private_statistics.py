"""Statistics of a client with `statistics_private` answer only its own credentials."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.api.test_client_api import issue_credentials, new_database, post_events
from tests.conftest import ADMIN_TOKEN, RunningServer

WAIT_SECONDS = 20  # only a guard against hanging

SEED: list[dict[str, Any]] = [
    {"event": "client", "id": "secret", "name": "Secret", "pool": True, "statistics_private": True},
    {"event": "client", "id": "open", "name": "Open", "pool": False},
    {"event": "client", "id": "other", "name": "Other", "pool": False},
    {"event": "project", "id": 1, "title": "P1"},
    {"event": "need", "id": 11, "project_id": 1, "title": "N", "requested_amount_in_cents": 50_000},
    *(
        {"event": "client_project", "client_id": c, "project_id": 1, "member": True}
        for c in ("secret", "open", "other")
    ),
    {
        "event": "donation",
        "token": "d1",
        "channel": "client",
        "client_id": "secret",
        "client_reference": "s-1",
        "receiver": {"type": "project", "id": 1},
        "amount_in_cents": 1500,
    },
]
SECRET_BODY = {
    "donated_amount_in_cents": 1500,
    "pool_balance_in_cents": 0,
    "open_amount_in_cents": 48_500,
    "requested_amount_in_cents": 50_000,
    "projects_count": 1,
    "client_donated_amount_in_cents": 1500,
    "client_matched_amount_in_cents": 0,
    "client_donations_count": 1,
    "links": [],
}


class Server:
    """A running server with the seed and the credentials of `secret` and `other`."""

    def __init__(self, server: RunningServer, database_url: str) -> None:
        self.base_url = server.base_url
        self.database_url = database_url
        self.credentials = issue_credentials(database_url, "secret", "other")
        self.http = httpx.Client(timeout=30)

    def get(
        self, client: str, auth: Any = None, method: str = "GET", locale: str = "de"
    ) -> httpx.Response:
        url = f"{self.base_url}/{locale}/api_v4/clients/{client}/project_statistics.json"
        return self.http.request(method, url, auth=auth)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """One seeded server per database kind, shared by the module's tests."""
    database_url, drop = new_database(request.param, tmp_path_factory.mktemp("db"))
    running = RunningServer(database_url)
    try:
        post_events(running.base_url, SEED)
        wrapped = Server(running, database_url)
        yield wrapped
        wrapped.http.close()
    finally:
        running.stop()
        drop()


def assert_error(response: httpx.Response, status_code: int, status: str) -> None:
    assert response.status_code == status_code, response.text
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    body = response.json()
    assert (body["name"], body["status"], body["status_code"]) == (
        "GeneralError",
        status,
        status_code,
    )
    assert "donated_amount_in_cents" not in body


def assert_challenge(response: httpx.Response) -> None:
    assert_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"].startswith("Basic")


def test_private_statistics_need_the_clients_own_credentials(server: Server) -> None:
    user, password = server.credentials["secret"]
    # Without credentials, with wrong ones, or with the admin token: 401 with a challenge.
    assert_challenge(server.get("secret"))
    assert_challenge(server.get("secret", locale="en"))
    assert_challenge(server.get("Secret"))
    assert_challenge(server.get("secret", auth=(user, password + "x")))
    assert_challenge(server.get("secret", auth=("nobody", password)))
    admin = server.http.get(
        f"{server.base_url}/de/api_v4/clients/secret/project_statistics.json",
        headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert_challenge(admin)
    head = server.get("secret", method="HEAD")
    assert head.status_code == 401
    assert head.content == b""
    # With its own credentials: the figures, not to be stored by shared caches.
    own = server.get("secret", auth=(user, password))
    assert own.status_code == 200, own.text
    assert own.json() == SECRET_BODY
    assert own.headers["cache-control"].startswith("private")
    assert server.get("SECRET", auth=(user, password)).json() == SECRET_BODY
    assert server.get("secret", auth=(user, password), method="HEAD").content == b""


def test_another_clients_credentials_do_not_reveal_private_statistics(server: Server) -> None:
    response = server.get("secret", auth=server.credentials["other"])
    assert_error(response, 404, "not_found")


def test_public_statistics_stay_public(server: Server) -> None:
    for auth in (None, server.credentials["secret"], server.credentials["other"]):
        response = server.get("open", auth=auth)
        assert response.status_code == 200, response.text
        assert response.json()["projects_count"] == 1
        assert response.headers["cache-control"].startswith("public")
        assert response.headers["access-control-allow-origin"] == "*"
    # The donor client's own figures: public for `other`, whose statistics are not private.
    assert server.get("other").status_code == 200


def test_making_statistics_private_takes_effect_on_cached_responses(server: Server) -> None:
    assert server.get("other").status_code == 200  # now in the server's cache
    post_events(server.base_url, [{"event": "client", "id": "other", "statistics_private": True}])
    deadline = time.monotonic() + WAIT_SECONDS
    while server.get("other").status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert_challenge(server.get("other"))
    assert server.get("other", auth=server.credentials["other"]).status_code == 200
    post_events(server.base_url, [{"event": "client", "id": "other", "statistics_private": False}])
    deadline = time.monotonic() + WAIT_SECONDS
    while server.get("other").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.get("other").status_code == 200


def test_a_new_password_replaces_the_old_one_for_statistics(server: Server) -> None:
    old = server.credentials["secret"]
    assert server.get("secret", auth=old).status_code == 200
    new = server.credentials["secret"] = issue_credentials(server.database_url, "secret")["secret"]
    assert_challenge(server.get("secret", auth=old))
    assert server.get("secret", auth=new).json() == SECRET_BODY
