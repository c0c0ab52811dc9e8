"""API test fixtures and helpers: one seeded server per database kind, shared by the API tests."""

from __future__ import annotations

import contextlib
import functools
import json
import random
import subprocess
import sys
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from itertools import count
from typing import Any

import httpx
import pytest

from clientstats.domain.booking import Outcome
from clientstats.domain.events import parse_line
from clientstats.domain.memory_book import MemoryBook
from clientstats.domain.stats import RESPONSE_KEYS
from tests.conftest import (
    ADMIN_TOKEN,
    RunningServer,
    fresh_database,
    server_env,
)

Event = dict[str, Any]

DB_KINDS = ("sqlite", "postgresql")
JSON_UTF8 = "application/json; charset=utf-8"
NDJSON = "application/x-ndjson"
ERROR_KEYS = ["name", "status", "status_code", "reason", "message", "links"]
STATUS_NAMES = {
    401: ("unauthorized", "Unauthorized"),
    404: ("not_found", "Record Not Found"),
    405: ("method_not_allowed", "Method Not Allowed"),
    409: ("conflict", "Conflict"),
    415: ("unsupported_media_type", "Unsupported Media Type"),
    422: ("unprocessable_entity", "Cannot Process Submitted Data"),
}
BODY_KEYS = [*RESPONSE_KEYS, "links"]
_ids = count(1_000_000)


# --- databases and servers ---------------------------------------------------------------


@contextlib.contextmanager
def seeded(database_url: str, **env: str) -> Iterator[RunningServer]:
    """A running server whose database holds SEED_EVENTS, applied through POST /admin/events."""
    server = RunningServer(database_url, **env)
    try:
        response = post_events(server.base_url, SEED_EVENTS)
        assert response.status_code == 200, response.text
        yield server
    finally:
        server.stop()


# Session scope: starting a server costs seconds, and pytest groups the tests by database
# kind, so each kind starts one. Tests that write use fresh ids and leave the seed alone.
@pytest.fixture(scope="session", params=DB_KINDS)
def seeded_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The database behind seeded_server."""
    with fresh_database(request.param, tmp_path_factory.mktemp("seeded")) as url:
        yield url


@pytest.fixture(scope="session")
def seeded_server(seeded_database_url: str) -> Iterator[RunningServer]:
    """A server on the seed, shared by every API test of one database kind."""
    with seeded(seeded_database_url) as server:
        yield server


@pytest.fixture(scope="session")
def configured_server(
    seeded_database_url: str, seeded_server: RunningServer
) -> Iterator[RunningServer]:
    """A second server on the seeded database: 60 s cache TTL, debug on, 3-line import batches."""
    server = RunningServer(
        seeded_database_url,
        CLIENTSTATS_CACHE_TTL="60",
        CLIENTSTATS_DEBUG="true",
        CLIENTSTATS_IMPORT_BATCH_SIZE="3",
    )
    yield server
    server.stop()


# --- HTTP and CLI helpers ----------------------------------------------------------------


@functools.cache
def http() -> httpx.Client:
    """One HTTP client for every API test: building one costs ~50 ms (its TLS context)."""
    return httpx.Client(timeout=30)


def ndjson(events: Iterable[Event]) -> bytes:
    """Events as a JSON Lines body."""
    return b"".join(json.dumps(event).encode() + b"\n" for event in events)


def post_events(
    base_url: str,
    events: Iterable[Event] | bytes,
    *,
    token: str | None = ADMIN_TOKEN,
    content_type: str = NDJSON,
) -> httpx.Response:
    """POST ledger events to /admin/events."""
    body = events if isinstance(events, bytes) else ndjson(events)
    headers = {"content-type": content_type}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return http().post(f"{base_url}/admin/events", content=body, headers=headers)


def stats_url(base_url: str, client: str, *, locale: str = "de", suffix: str = ".json") -> str:
    """The statistics URL of a client."""
    return f"{base_url}/{locale}/api_v4/clients/{client}/project_statistics{suffix}"


def get_stats(base_url: str, client: str, **kwargs: Any) -> httpx.Response:
    """GET a client's statistics."""
    headers = kwargs.pop("headers", None)
    return http().get(stats_url(base_url, client, **kwargs), headers=headers)


def run_cli(
    database_url: str, *args: str, stdin: bytes | None = None, **env: str
) -> subprocess.CompletedProcess[bytes]:
    """Run `clientstats ARGS` as a subprocess against a database; env overrides any setting."""
    return subprocess.run(
        [sys.executable, "-m", "clientstats", *args],
        env={**server_env(database_url), **env},
        input=stdin,
        capture_output=True,
        timeout=120,
    )


def ordered_pairs(raw: bytes) -> list[tuple[str, Any]]:
    """The top-level key/value pairs of a JSON object, in the order they were sent."""
    pairs: list[tuple[str, Any]] = json.loads(raw, object_pairs_hook=list)
    return pairs


def assert_error(
    response: httpx.Response,
    status_code: int,
    *,
    debug: bool = False,
    links: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """Assert the response is a error in the platform's format of this status; return its body.

    `debug`: the server runs in debug mode, so a `backtrace` may be there too.
    `links`: the links the error must carry (a 409 points at what it conflicts with).
    """
    assert response.status_code == status_code, response.text
    assert response.headers["content-type"] == JSON_UTF8
    keys = [key for key, _ in ordered_pairs(response.content)]
    expected = [*ERROR_KEYS, "errors"] if status_code == 422 else ERROR_KEYS
    if debug and "backtrace" in keys:
        expected = [*expected, "backtrace"]
    assert sorted(keys) == sorted(expected), keys
    body: dict[str, Any] = response.json()
    assert body["name"] == "GeneralError"
    assert body["status_code"] == status_code and type(body["status_code"]) is int
    if status_code in STATUS_NAMES:
        assert (body["status"], body["reason"]) == STATUS_NAMES[status_code]
    assert isinstance(body["message"], str) and body["message"]
    assert body["links"] == (links or [])
    return body


def unique_id() -> int:
    """An id no other test of this session uses."""
    return next(_ids)


def unique_permalink(prefix: str = "c") -> str:
    """A client permalink no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def new_client_events(
    permalink: str, *, requested: int = 100_000, pool: bool = False
) -> list[Event]:
    """A new client with one project (its id is events[1]["id"]) of one need."""
    project, need = unique_id(), unique_id()
    return [
        {"event": "client", "id": permalink, "name": permalink, "pool": pool},
        {"event": "project", "id": project, "title": f"Project {project}"},
        {"event": "client_project", "client_id": permalink, "project_id": project, "member": True},
        {
            "event": "need",
            "id": need,
            "project_id": project,
            "title": "Need",
            "requested_amount_in_cents": requested,
        },
    ]


def donation(
    token: str, project_id: int, amount: int, channel: str = "platform", **more: Any
) -> Event:
    """A donation event to a project."""
    return {
        "event": "donation",
        "token": token,
        "channel": channel,
        "receiver": {"type": "project", "id": project_id},
        "amount_in_cents": amount,
        **more,
    }


# --- the seed: a hand-written ledger plus a generated one, both clean ---------------------


def _scenario() -> list[Event]:
    """Every channel, matching, pools, forwardings, redirects, revocations, over-funding."""
    vf, acme, tb = "volksfreund", "acme", "tageblatt"
    return [
        {"event": "client", "id": vf, "name": "Volksfreund", "pool": True},
        {"event": "client", "id": acme, "name": "ACME", "pool": False},
        {"event": "client", "id": tb, "name": "Tageblatt", "pool": True},
        {"event": "client", "id": "empty", "name": "Nobody's projects"},
        *({"event": "project", "id": p, "title": f"Project {p}"} for p in (1, 2, 3, 5)),
        {"event": "project", "id": 4, "title": "Prohibited", "donations_prohibited": True},
        *(
            {
                "event": "need",
                "id": n,
                "project_id": p,
                "title": "N",
                "requested_amount_in_cents": r,
            }
            for n, p, r in ((11, 1, 500_000), (12, 1, 20_000), (21, 2, 100_000), (31, 3, 7_000))
        ),
        {
            "event": "need",
            "id": 51,
            "project_id": 5,
            "title": "N",
            "requested_amount_in_cents": 1000,
        },
        *(
            {"event": "client_project", "client_id": c, "project_id": p, "member": True}
            for c, p in ((vf, 1), (vf, 2), (vf, 3), (vf, 5), (acme, 2), (acme, 4), (tb, 1), (tb, 3))
        ),
        {
            "event": "matching_fund",
            "id": 1,
            "client_id": vf,
            "title": "VF doubles",
            "provided_amount_in_cents": 3000,
            "maximum_matching_amount_in_cents": 1000,
            "state": "activated",
            "project_ids": [1, 2],
        },
        {
            "event": "matching_fund",
            "id": 2,
            "client_id": acme,
            "title": "ACME (closed)",
            "provided_amount_in_cents": 50_000,
            "maximum_matching_amount_in_cents": 5000,
            "state": "closed",
            "project_ids": [2],
        },
        donation("s1", 1, 2500, "platform"),
        donation("s2", 1, 4000, "client", client_id=vf, client_reference="vf-1"),
        donation("s3", 2, 1500, "client", client_id=acme, client_reference="acme-1"),
        donation("s4", 2, 800, "external"),
        donation("s5", 4, 900, "client", client_id=vf, client_reference="vf-2"),  # redirected
        donation("s6", 5, 5000, "platform"),  # over-funds project 5
        donation("s7", 3, 7000, "client", client_id=tb, client_reference="tb-1"),
        {
            "event": "donation",
            "token": "s8",
            "channel": "offline",
            "receiver": {"type": "pool", "client_id": vf},
            "amount_in_cents": 10_000,
        },
        {
            "event": "donation",
            "token": "s9",
            "channel": "client",
            "client_id": tb,
            "receiver": {"type": "pool", "client_id": tb},
            "amount_in_cents": 3000,
        },
        {
            "event": "forwarding",
            "token": "f1",
            "client_id": vf,
            "project_id": 2,
            "amount_in_cents": 6000,
        },
        {
            "event": "forwarding",
            "token": "f2",
            "client_id": tb,
            "project_id": 1,
            "amount_in_cents": 1000,
        },
        donation("s10", 2, 1200, "platform"),
        {"event": "revocation", "token": "s1"},
        {"event": "revocation", "token": "s10"},
        {"event": "need", "id": 12, "requested_amount_in_cents": 25_000},
        {"event": "client_project", "client_id": tb, "project_id": 3, "member": False},
    ]


def _generated(seed: int, count_: int) -> list[Event]:
    """Random but reproducible events on their own clients and projects."""
    rng = random.Random(seed)
    clients = [("gen-a", True), ("gen-b", False), ("gen-c", True)]
    projects = list(range(100, 112))
    events: list[Event] = [
        {"event": "client", "id": c, "name": c.upper(), "pool": pool} for c, pool in clients
    ]
    for p in projects:
        events.append({"event": "project", "id": p, "title": f"Gen {p}"})
        for k in range(rng.randint(0, 3)):
            events.append(
                {
                    "event": "need",
                    "id": p * 10 + k,
                    "project_id": p,
                    "title": "G",
                    "requested_amount_in_cents": rng.randint(1, 40) * 2500,
                }
            )
        for c, _ in clients:
            if rng.random() < 0.4:
                events.append(
                    {"event": "client_project", "client_id": c, "project_id": p, "member": True}
                )
    events.append(
        {
            "event": "matching_fund",
            "id": 10,
            "client_id": "gen-a",
            "title": "Gen fund",
            "provided_amount_in_cents": 20_000,
            "maximum_matching_amount_in_cents": 2500,
            "state": "activated",
            "project_ids": projects[:6],
        }
    )
    tokens: list[str] = []
    for i in range(count_):
        roll = rng.random()
        client, pool = rng.choice(clients)
        amount = rng.choice((100, 500, 1000, 2500, 5000, 10_000))
        token = f"g{i}"
        if roll < 0.35:
            events.append(donation(token, rng.choice(projects), amount))
        elif roll < 0.6:
            events.append(
                donation(
                    token,
                    rng.choice(projects),
                    amount,
                    "client",
                    client_id=client,
                    client_reference=token,
                )
            )
        elif roll < 0.7:
            events.append(donation(token, rng.choice(projects), amount, "external"))
        elif roll < 0.8 and pool:
            channel = rng.choice(("offline", "client"))
            extra = {"client_id": client} if channel == "client" else {}
            events.append(
                {
                    "event": "donation",
                    "token": token,
                    "channel": channel,
                    "receiver": {"type": "pool", "client_id": client},
                    "amount_in_cents": amount,
                    **extra,
                }
            )
        elif roll < 0.88 and pool:
            events.append(
                {
                    "event": "forwarding",
                    "token": token,
                    "client_id": client,
                    "project_id": rng.choice(projects),
                    "amount_in_cents": amount // 2,
                }
            )
            continue
        elif roll < 0.95 and tokens:
            events.append({"event": "revocation", "token": rng.choice(tokens)})
            continue
        else:
            events.append(
                {
                    "event": "need",
                    "id": projects[0] * 10 + 9,
                    "project_id": projects[0],
                    "title": "More",
                    "requested_amount_in_cents": amount * 10,
                }
            )
            continue
        tokens.append(token)
    return events


def reference_book(events: Iterable[Event]) -> tuple[MemoryBook, list[Event]]:
    """The events a clean import applies (rejected, failed, no-op ones dropped), and their book."""
    book = MemoryBook()
    now = datetime.now(UTC)
    kept = []
    for event in events:
        outcome = book.apply(parse_line(json.dumps(event), now=now))
        if outcome is Outcome.APPLIED:
            kept.append(event)
    return book, kept


REFERENCE, SEED_EVENTS = reference_book([*_scenario(), *_generated(seed=20240501, count_=250)])
SEED_CLIENTS = sorted(REFERENCE.clients)


def reference_body(client: str) -> dict[str, Any]:
    """The statistics body MemoryBook computes for a seeded client."""
    return REFERENCE.statistics(client).as_response()
