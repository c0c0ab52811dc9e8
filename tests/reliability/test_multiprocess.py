"""Two API processes and two workers on one PostgreSQL and one Redis, under concurrent load."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import Engine, text

from clientstats.domain.booking import Outcome
from clientstats.domain.events import parse_line
from clientstats.domain.memory_book import MemoryBook
from clientstats.domain.stats import RESPONSE_KEYS
from clientstats.storage.database import make_engine
from tests.conftest import ADMIN_TOKEN, free_port, postgres_schema, server_env
from tests.reliability.tcp_proxy import (
    REDIS_URL,
    OutputLog,
    cache_versions,
    delete_cache_keys,
    redis_client,
    require_redis,
    schema_url,
)

Event = dict[str, Any]
BODY_KEYS = [*RESPONSE_KEYS, "links"]
NDJSON = "application/x-ndjson"
WRITERS, READERS, REQUESTS_PER_WRITER = 4, 2, 15
FUND_BUDGET, FUND_CAP = 6_000, 1_000
PROHIBITED = 4  # pledges to it go to the donor's pool, forwardings to it fail
MEMBERS = {"a": (1, 2, PROHIBITED), "b": (1, 3), "c": (3, 5, PROHIBITED)}  # projects per client


class Process:
    """A `clientstats` subprocess whose output is read in the background."""

    def __init__(self, database_url: str, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "clientstats", *args],
            env=server_env(database_url, CLIENTSTATS_REDIS_URL=REDIS_URL),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.output = OutputLog(self.process.stdout)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class ApiProcess(Process):
    """`clientstats serve --no-worker` on a free port: it accepts requests, workers book them."""

    def __init__(self, database_url: str) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        super().__init__(database_url, "serve", "--no-worker", "--port", str(self.port))

    def wait_until_live(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.output.text()
            try:
                if httpx.get(f"{self.base_url}/health/live", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError(f"API process did not come up:\n{self.output.text()}")


@dataclass
class Cluster:
    """Everything the test talks to."""

    database_url: str
    engine: Engine
    apis: list[ApiProcess]
    workers: list[Process]
    clients: list[str]
    seed: list[Event]
    auth: dict[str, tuple[str, str]]  # HTTP Basic credentials per client


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    require_redis()
    suffix = uuid.uuid4().hex[:8]
    clients = [f"mp-a-{suffix}", f"mp-b-{suffix}", f"mp-c-{suffix}"]
    direct = redis_client()
    with postgres_schema() as schema:
        url = schema_url(schema)
        processes: list[Process] = []
        engine = make_engine(url)
        try:
            first = ApiProcess(url)
            processes.append(first)
            first.wait_until_live()  # it creates the schema; the others find it there
            second = ApiProcess(url)
            workers = [Process(url, "worker"), Process(url, "worker")]
            processes += [second, *workers]
            seed = seed_events(clients)
            seeded = httpx.post(
                f"{first.base_url}/admin/events",
                content=b"".join(json.dumps(e).encode() + b"\n" for e in seed),
                headers={"content-type": NDJSON, "authorization": f"Bearer {ADMIN_TOKEN}"},
                timeout=60,
            )
            assert seeded.status_code == 200, seeded.text
            issuing = [run_cli(url, "client", "credentials", c) for c in clients]
            auth = {}
            for client, process in zip(clients, issuing, strict=True):
                code, out, err = finish(process)
                assert code == 0, err
                credentials = json.loads(out)
                auth[client] = (credentials["username"], credentials["password"])
            second.wait_until_live()
            yield Cluster(url, engine, [first, second], workers, clients, seed, auth)
        finally:
            for process in processes:
                process.stop()
            engine.dispose()
            delete_cache_keys(direct, clients)
            direct.close()


def seed_events(clients: list[str]) -> list[Event]:
    """Two clients with pools (one with a matching fund), one without; shared projects."""
    a, b, c = clients
    needs = {1: 500_000, 2: 30_000, 3: 200_000, PROHIBITED: 10_000, 5: 50_000}
    members = {client: MEMBERS[client.split("-")[1]] for client in clients}
    events: list[Event] = [
        {"event": "client", "id": a, "name": "A", "pool": True},
        {"event": "client", "id": b, "name": "B", "pool": True},
        {"event": "client", "id": c, "name": "C", "pool": False},
    ]
    for project, requested in needs.items():
        events.append(
            {
                "event": "project",
                "id": project,
                "title": f"Project {project}",
                "donations_prohibited": project == PROHIBITED,
            }
        )
        events.append(
            {
                "event": "need",
                "id": project * 10,
                "project_id": project,
                "title": "Need",
                "requested_amount_in_cents": requested,
            }
        )
    for client, projects in members.items():
        events += [
            {"event": "client_project", "client_id": client, "project_id": p, "member": True}
            for p in projects
        ]
    events.append(
        {
            "event": "matching_fund",
            "id": 1,
            "client_id": a,
            "title": "A doubles",
            "provided_amount_in_cents": FUND_BUDGET,
            "maximum_matching_amount_in_cents": FUND_CAP,
            "state": "activated",
            "project_ids": [1],
        }
    )
    for token, client, amount in (("o1", a, 20_000), ("o2", b, 3_000)):
        events.append(
            {
                "event": "donation",
                "token": token,
                "channel": "offline",
                "receiver": {"type": "pool", "client_id": client},
                "amount_in_cents": amount,
            }
        )
    events.append(
        {
            "event": "donation",
            "token": "s1",
            "channel": "client",
            "client_id": a,
            "client_reference": "seed-1",
            "receiver": {"type": "project", "id": 1},
            "amount_in_cents": 2_000,
        }
    )
    return events


@dataclass(frozen=True)
class Send:
    """One write a client sends: a pledge to a project or pool, or a forwarding request."""

    client: str
    kind: str  # "pledge" or "forwarding"
    project: int | None
    amount: int
    reference: str

    def path(self) -> str:
        base = f"/de/api_v4/clients/{self.client}"
        if self.kind == "forwarding":
            return f"{base}/projects/{self.project}/forwarding_requests.json"
        if self.project is None:
            return f"{base}/pool/donation_pledges.json"
        return f"{base}/projects/{self.project}/donation_pledges.json"

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"amount_in_cents": self.amount, "client_reference": self.reference}
        if self.kind == "pledge":
            body["validate_address"] = False
        return body


def workload(clients: list[str], rng: random.Random) -> list[list[tuple[int, Send]]]:
    """Per writer thread: (API index, request); some references are sent twice, to both APIs.

    A spends from a rich pool, B forwards far more than its small pool holds (so forwardings
    race for the balance and some fail `pool_empty`), C has no pool at all.
    """
    a, b, c = clients
    mix = {a: (0.4, 0.6), b: (0.55, 0.55), c: (0.6, 0.75)}  # below: project, pool, else forward
    sends: list[Send] = []
    for n in range(WRITERS * REQUESTS_PER_WRITER):
        client = rng.choice(clients)
        roll = rng.random()
        to_project, to_pool = mix[client]
        projects = MEMBERS[client.split("-")[1]]
        if roll < to_project:  # >= FUND_CAP: the fund's total match is independent of order
            project = 1 if 1 in projects and rng.random() < 0.4 else rng.choice(projects)
            sends.append(Send(client, "pledge", project, rng.randint(1_000, 5_000), f"p{n}"))
        elif roll < to_pool:
            sends.append(Send(client, "pledge", None, rng.randint(500, 3_000), f"p{n}"))
        else:
            accepting = [p for p in projects if p != PROHIBITED]
            prohibited = PROHIBITED in projects and rng.random() < 0.25
            project = PROHIBITED if prohibited else rng.choice(accepting)
            sends.append(Send(client, "forwarding", project, rng.randint(2_000, 6_000), f"f{n}"))
    plans: list[list[tuple[int, Send]]] = [[] for _ in range(WRITERS)]
    for n, send in enumerate(sends):
        plans[n % WRITERS].append((n % 2, send))
        if n % 5 == 0:  # the same request again, at the same time, through the other API
            plans[(n + 1) % WRITERS].append(((n + 1) % 2, send))
    return plans


@dataclass
class Observations:
    """What the client threads saw."""

    answers: list[tuple[Send, int, str]] = field(default_factory=list)  # send, status, body
    reads: list[tuple[int, str, int, bytes]] = field(default_factory=list)  # api, client, ...
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def write(
    cluster: Cluster, plan: list[tuple[int, Send]], auth: dict[str, Any], seen: Observations
) -> None:
    with httpx.Client(timeout=30) as http:
        for api, send in plan:
            try:
                response = http.post(
                    cluster.apis[api].base_url + send.path(),
                    json=send.body(),
                    auth=auth[send.client],
                )
            except httpx.HTTPError as exc:
                with seen.lock:
                    seen.errors.append(f"{send}: {exc!r}")
                continue
            with seen.lock:
                seen.answers.append((send, response.status_code, response.text))


def read(cluster: Cluster, done: threading.Event, seen: Observations) -> None:
    with httpx.Client(timeout=30) as http:
        for _ in range(2000):  # bounded even if the writers hang
            if done.is_set():
                return
            for api, process in enumerate(cluster.apis):
                for client in cluster.clients:
                    url = f"{process.base_url}/en/api_v4/clients/{client}/project_statistics.json"
                    try:
                        response = http.get(url)
                    except httpx.HTTPError as exc:
                        with seen.lock:
                            seen.errors.append(f"GET {url}: {exc!r}")
                        continue
                    with seen.lock:
                        seen.reads.append((api, client, response.status_code, response.content))
            time.sleep(0.01)


def run_cli(database_url: str, *args: str) -> subprocess.Popen[bytes]:
    """Start `clientstats ARGS` on the database."""
    return subprocess.Popen(
        [sys.executable, "-m", "clientstats", *args],
        env=server_env(database_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def finish(process: subprocess.Popen[bytes]) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=120)
    return process.returncode, out.decode(), err.decode()


def stored_requests(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT * FROM client_requests ORDER BY id")))


def wait_until_nothing_pending(engine: Engine) -> None:
    deadline = time.monotonic() + 60
    query = text("SELECT count(*) FROM client_requests WHERE state = 'pending'")
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            if conn.execute(query).scalar_one() == 0:
                return
        time.sleep(0.05)
    raise AssertionError("requests still pending after 60 s")


def reference(seed: list[Event], requests: list[Any]) -> MemoryBook:
    """The pure reference: the seed, then every confirmed request as a ledger event.

    Pool money comes in before any forwarding goes out, so every forwarding that was
    confirmed finds the balance it found in production; every pledge to the matched project
    is at least the fund's cap, so the fund's total match does not depend on the order.
    """
    book = MemoryBook()
    now = datetime.now(UTC)
    for event in seed:
        assert book.apply(parse_line(json.dumps(event), now=now)) is Outcome.APPLIED, event
    confirmed = [r for r in requests if r.state == "confirmed"]
    confirmed.sort(key=lambda r: (r.kind == "forwarding", r.id))
    for r in confirmed:
        event: Event
        if r.kind == "forwarding":
            event = {"event": "forwarding", "client_id": r.client_id, "project_id": r.project_id}
        else:
            receiver = (
                {"type": "pool", "client_id": r.client_id}
                if r.project_id is None
                else {"type": "project", "id": r.project_id}
            )
            event = {"event": "donation", "channel": "client", "receiver": receiver}
            event["client_id"] = r.client_id
            event["client_reference"] = r.client_reference
        event.update(token=f"{r.kind}-{r.id}", amount_in_cents=r.amount_in_cents)
        assert book.apply(parse_line(json.dumps(event), now=now)) is Outcome.APPLIED, event
    return book


def serve_both(
    cluster: Cluster, expected: dict[str, dict[str, Any]]
) -> dict[tuple[int, str], httpx.Response]:
    """Every client's statistics from both processes, polled until fresh (at most 2 s)."""
    deadline = time.monotonic() + 2
    while True:
        served = {
            (n, client): httpx.get(
                f"{process.base_url}/de/api_v4/clients/{client}/project_statistics.json", timeout=10
            )
            for n, process in enumerate(cluster.apis)
            for client in cluster.clients
        }
        if all(r.status_code == 200 and r.json() == expected[c] for (_, c), r in served.items()):
            return served
        if time.monotonic() > deadline:
            return served
        time.sleep(0.05)


def test_two_api_processes_and_two_workers_lose_and_double_nothing(cluster: Cluster) -> None:
    seed, auth = cluster.seed, cluster.auth
    seen = Observations()
    done = threading.Event()
    plans = workload(cluster.clients, random.Random(20240603))
    writers = [threading.Thread(target=write, args=(cluster, p, auth, seen)) for p in plans]
    readers = [threading.Thread(target=read, args=(cluster, done, seen)) for _ in range(READERS)]
    for thread in [*readers, *writers]:
        thread.start()
    for thread in writers:
        thread.join(timeout=120)
    try:
        wait_until_nothing_pending(cluster.engine)
        requests = stored_requests(cluster.engine)
        book = reference(seed, requests)
        expected = {c: book.statistics(c).as_response() for c in cluster.clients}
        served = serve_both(cluster, expected)  # polled for up to 2 s after the last booking
    finally:
        done.set()
        for thread in readers:
            thread.join(timeout=60)

    # Both processes serve the reference figures, fresh, with the same bytes and ETag.
    a, b, c = cluster.clients
    assert expected[a]["client_matched_amount_in_cents"] == FUND_BUDGET  # the fund ran out
    assert all(body["pool_balance_in_cents"] >= 0 for body in expected.values())
    for (n, client), response in served.items():
        assert response.status_code == 200
        assert response.json() == expected[client], (n, client)
        other = served[(1 - n, client)]
        assert response.content == other.content
        assert response.headers["etag"] == other.headers["etag"]
    assert not seen.errors, seen.errors[:5]

    # Every request was accepted, and a repeat names the request stored the first time.
    ids: dict[tuple[str, str], set[str]] = defaultdict(set)
    for send, status, body in seen.answers:
        assert status == 202, (send, status, body)
        href = json.loads(body)["links"][0]["href"]
        ids[(send.client, send.reference)].add(urlsplit(href).path)  # the host is either API
    sent = {(s.client, s.reference) for plan in plans for _, s in plan}
    assert set(ids) == sent
    assert all(len(hrefs) == 1 for hrefs in ids.values()), ids

    # Nothing lost, nothing doubled: one stored request per reference, each booked at most once.
    assert sorted((r.client_id, r.client_reference) for r in requests) == sorted(sent)
    assert {r.state for r in requests} <= {"confirmed", "failed"}
    with cluster.engine.connect() as conn:
        booked = conn.execute(
            text(
                "SELECT client_id, client_reference, token, failure_code FROM donations "
                "WHERE client_reference IS NOT NULL OR channel = 'forwarding'"
            )
        ).all()
    moved = [(d.client_id, d.client_reference) for d in booked if d.failure_code is None]
    assert len(moved) == len(set(moved)), "a client reference was booked twice"
    tokens = {d.token: d.failure_code for d in booked}
    for r in requests:
        if r.state == "confirmed":
            assert tokens.get(f"{r.kind}:{r.id}", "missing") is None, r
        else:
            assert r.failure_code, r
            assert f"{r.kind}:{r.id}" not in tokens or tokens[f"{r.kind}:{r.id}"] is not None, r
    # The outcomes the booking rules dictate whatever the order.
    failures = defaultdict(set)
    for r in requests:
        failures[(r.client_id, r.kind)].add(r.failure_code)
        if r.client_id == c and (r.kind == "forwarding" or r.project_id in (None, PROHIBITED)):
            assert (r.state, r.failure_code) == ("failed", "pool_missing"), r
        elif r.kind == "forwarding" and r.project_id == PROHIBITED:
            assert r.failure_code == "receiver_prohibited_from_receiving_donations", r
        elif r.kind == "pledge":
            assert r.state == "confirmed", r
    # B asked to forward far more than its pool ever held: some forwardings lost the race.
    assert {None, "pool_empty"} <= failures[(b, "forwarding")], failures
    assert None in failures[(a, "forwarding")], failures

    # The status endpoint of either process tells the end state of every accepted request.
    by_reference = {(r.client_id, r.client_reference): r for r in requests}
    with httpx.Client(timeout=30) as http:
        for n, (client, reference_) in enumerate(sorted(ids)):
            (path,) = ids[(client, reference_)]
            status = http.get(cluster.apis[n % 2].base_url + path, auth=auth[client])
            assert status.status_code == 200, status.text
            stored = by_reference[(client, reference_)]
            assert (status.json()["id"], status.json()["state"]) == (stored.id, stored.state)

    # `verify` recomputes every figure from the stored ledger and finds what is served.
    code, out, err = finish(run_cli(cluster.database_url, "verify"))
    assert code == 0, out + err

    # What the readers saw: always a complete body, never going back in time in one process.
    last: dict[tuple[int, str], int] = {}
    for api_index, client, status, content in seen.reads:
        assert status == 200, content
        pairs = json.loads(content, object_pairs_hook=list)
        assert [key for key, _ in pairs] == BODY_KEYS
        count = dict(pairs)["client_donations_count"]
        assert count >= last.get((api_index, client), 0), (api_index, client)
        last[(api_index, client)] = count
    assert len(seen.reads) > 0

    # The shared cache holds the current figures of every client.
    with cluster.engine.connect() as conn:
        versions = dict(conn.execute(text("SELECT client_id, version FROM client_totals")).all())
    direct = redis_client()
    for client in cluster.clients:
        assert versions[client] in cache_versions(direct, client), client
    direct.close()

    for process in [*cluster.apis, *cluster.workers]:
        assert process.process.poll() is None, process.output.text()  # none crashed
        assert "unhandled error" not in process.output.text(), process.output.text()
    assert all("worker started" in worker.output.text() for worker in cluster.workers)
