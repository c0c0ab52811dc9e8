"""A worker killed with SIGKILL mid-batch loses nothing and books nothing twice."""

# The server here runs without a worker, so these tests also show requests staying `pending`
# until a worker (a real `clientstats worker` process) books them.

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from clientstats.domain.booking import Outcome
from clientstats.domain.events import DonationEvent, parse_line
from clientstats.domain.ledger import Channel, Donation
from clientstats.domain.memory_book import MemoryBook
from clientstats.services.processing import process_batch
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
from tests.conftest import RunningServer, server_env

PLEDGES = 300  # three batches of the worker's 100
REPEATS = 15
GUARD_SECONDS = 120  # only against hanging; a healthy run takes a few seconds

OPEN, MATCHED, CLOSED = 1, 2, 3
SEED: list[dict[str, Any]] = [
    {"event": "client", "id": "vf", "name": "Volksfreund", "pool": True},
    {"event": "client", "id": "acme", "name": "ACME", "pool": False},
    {"event": "project", "id": OPEN, "title": "Open"},
    {"event": "project", "id": MATCHED, "title": "Matched"},
    {"event": "project", "id": CLOSED, "title": "Closed"},
    {
        "event": "need",
        "id": 11,
        "project_id": OPEN,
        "title": "N",
        "requested_amount_in_cents": 500_000,
    },
    {
        "event": "need",
        "id": 21,
        "project_id": MATCHED,
        "title": "N",
        "requested_amount_in_cents": 40_000,
    },
    {
        "event": "need",
        "id": 31,
        "project_id": CLOSED,
        "title": "N",
        "requested_amount_in_cents": 9_000,
    },
    *(
        {"event": "client_project", "client_id": c, "project_id": p, "member": True}
        for c in ("vf", "acme")
        for p in (OPEN, MATCHED, CLOSED)
    ),
    {
        # One fund on one project: its total is the same in whatever order pledges are booked.
        "event": "matching_fund",
        "id": 1,
        "client_id": "vf",
        "title": "VF doubles",
        "provided_amount_in_cents": 30_000,
        "maximum_matching_amount_in_cents": 700,
        "state": "activated",
        "project_ids": [MATCHED],
    },
    {
        "event": "donation",
        "token": "platform-1",
        "channel": "platform",
        "receiver": {"type": "project", "id": CLOSED},
        "amount_in_cents": 4_000,
    },
    {"event": "project", "id": CLOSED, "closed": True},
]


# --- the run: pledges over HTTP, workers as real processes ----------------------------------


@dataclass(frozen=True)
class Posted:
    """A pledge as sent, and the id of the request the server stored for it."""

    client: str
    project: int | None
    id: int


def post_pledges(api: Api) -> list[Posted]:
    """POST the pledges (and some repeats) from 8 threads; what was stored, by first sending."""
    rng = random.Random(20240501)
    plan = [
        (
            f"crash-{i}",
            rng.choice(("vf", "vf", "acme")),
            rng.choice((OPEN, MATCHED, CLOSED, None)),
            rng.choice((100, 500, 1_000, 2_500)),
        )
        for i in range(PLEDGES)
    ]
    plan += [plan[rng.randrange(PLEDGES)] for _ in range(REPEATS)]

    def send(item: tuple[str, str, int | None, int]) -> tuple[str, Posted]:
        reference, client, project, amount = item
        body = pledge_body(amount, reference, validate_address=False)
        response = api.pledge(client, body, project)
        return reference, Posted(
            client, project, accepted_id(response, api, client, "donation_pledges")
        )

    for client in ("vf", "acme"):  # verify each password once before the rush
        assert api.status(client, "donation_pledges", 1).status_code == 404
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(send, plan))
    posted: dict[str, Posted] = {}
    for reference, answer in answers:
        assert posted.setdefault(reference, answer) == answer  # a repeat: the same request
    assert len(posted) == PLEDGES
    return list(posted.values())


class WorkerProcess:
    """A `clientstats worker` child process; its output goes to a file."""

    def __init__(self, database_url: str, log: Path) -> None:
        self.path = log
        self.log = log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "clientstats", "worker"],
            env=server_env(database_url),
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        assert self.process.wait(timeout=30) == -signal.SIGKILL

    def wait_started(self) -> None:
        """Until the worker says it runs (its SIGTERM handler is installed by then)."""
        deadline = time.monotonic() + GUARD_SECONDS
        while b"worker started" not in self.path.read_bytes():
            assert self.process.poll() is None, self.path.read_text()
            assert time.monotonic() < deadline, "the worker did not start"
            time.sleep(0.02)

    def stop(self) -> int:
        self.wait_started()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=60)
        self.log.close()
        return code


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[[str], WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(database_url: str) -> WorkerProcess:
        worker = WorkerProcess(database_url, tmp_path / f"worker-{len(started)}.log")
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.process.poll() is None:
            worker.process.kill()
            worker.process.wait()
        worker.log.close()


def processed_count(engine: Engine) -> int:
    """How many requests a worker has finished (committed)."""
    with engine.connect() as conn:
        query = select(func.count()).where(client_requests.c.state != "pending")
        return int(conn.execute(query).scalar_one())


def wait_for_processed(engine: Engine, more_than: int, *, until_all: bool = False) -> int:
    """Poll (every few ms) until more than `more_than` requests are processed, or all are."""
    deadline = time.monotonic() + GUARD_SECONDS
    while time.monotonic() < deadline:
        done = processed_count(engine)
        if (done == PLEDGES) if until_all else (done > more_than):
            return done
        time.sleep(0.003)
    raise AssertionError(f"workers processed only {processed_count(engine)} of {PLEDGES}")


def kill_mid_run(engine: Engine, worker: WorkerProcess, done_before: int) -> int:
    """SIGKILL the worker right after its next batch commits, while it books the one after."""
    wait_for_processed(engine, done_before)
    worker.kill()
    done = processed_count(engine)
    assert done_before < done < PLEDGES, "the kill was meant to hit a worker with work left"
    assert_ledger_matches_requests(engine)
    return done


# --- the checks --------------------------------------------------------------------------


def expected_failure(client: str, project_id: int | None) -> str | None:
    """A pledge needing a pool fails for a client without one."""
    needs_pool = project_id is None or project_id == CLOSED
    return "pool_missing" if needs_pool and client == "acme" else None


def assert_ledger_matches_requests(engine: Engine) -> None:
    """Every finished request has exactly its booking, every pending or failed one none."""
    with engine.connect() as conn:
        requests = list(conn.execute(select(client_requests).order_by(client_requests.c.id)))
        entries = list(
            conn.execute(select(donations).where(donations.c.channel == Channel.CLIENT.value))
        )
    confirmed = {r.id: r for r in requests if r.state == "confirmed"}
    pledge_entries = [e for e in entries if e.token.startswith("pledge:")]
    assert len(entries) == len(pledge_entries) == len(confirmed)
    assert Counter(e.token for e in pledge_entries) == Counter(f"pledge:{i}" for i in confirmed)
    assert len({(e.client_id, e.client_reference) for e in pledge_entries}) == len(confirmed)
    for entry in pledge_entries:
        request = confirmed[int(entry.token.split(":")[1])]
        assert request.donation_token == entry.token
        assert (entry.client_id, entry.client_reference, entry.amount_in_cents) == (
            request.client_id,
            request.client_reference,
            request.amount_in_cents,
        )
    for request in requests:
        if request.state == "pending":
            assert (request.donation_token, request.confirmed_at, request.failed_at) == (None,) * 3
        if request.state == "failed":
            assert request.donation_token is None
            assert request.failure_code == expected_failure(request.client_id, request.project_id)


def reference_book(engine: Engine) -> MemoryBook:
    """The seed and every pledge, booked by the pure reference in request order."""
    book = MemoryBook()
    now = datetime.now(UTC)
    for event in SEED:
        assert book.apply(parse_line(json.dumps(event), now=now)) is Outcome.APPLIED
    with engine.connect() as conn:
        requests = list(conn.execute(select(client_requests).order_by(client_requests.c.id)))
    assert len(requests) == PLEDGES
    for r in requests:
        failure = expected_failure(r.client_id, r.project_id)
        assert (r.state, r.failure_code) == ("failed" if failure else "confirmed", failure)
        if failure:
            continue
        pledge = Donation(
            token=f"pledge:{r.id}",
            channel=Channel.CLIENT,
            amount_in_cents=r.amount_in_cents,
            created_at=r.created_at,
            project_id=r.project_id,
            pool_client_id=r.client_id if r.project_id is None else None,
            client_id=r.client_id,
            client_reference=r.client_reference,
        )
        assert book.apply(DonationEvent(pledge, created_at_given=True)) is Outcome.APPLIED
    return book


def assert_all_booked_once(api: Api) -> None:
    assert_ledger_matches_requests(api.engine)
    book = reference_book(api.engine)
    for client in ("vf", "acme"):
        expected = book.statistics(client).as_response()
        assert api.stats_become(client, expected) == expected
    report = verify(api.engine)
    assert report.differences == []
    assert report.negative_pools == {}


def start_without_worker(database_url: str, start_server: Callable[..., RunningServer]) -> Api:
    server = start_server(database_url, CLIENTSTATS_WORKER_IN_PROCESS="false")
    post_events(server.base_url, SEED)
    return Api.on(server, database_url, "vf", "acme")


# --- the tests ---------------------------------------------------------------------------


def test_a_worker_killed_mid_batch_loses_nothing_and_books_nothing_twice(
    database_url: str,
    start_server: Callable[..., RunningServer],
    workers: Callable[[str], WorkerProcess],
) -> None:
    api = start_without_worker(database_url, start_server)
    posted = post_pledges(api)
    time.sleep(0.3)
    assert processed_count(api.engine) == 0  # no worker in the server
    for pledge in posted[:: PLEDGES // 10]:
        status = api.status(pledge.client, "donation_pledges", pledge.id).json()
        assert status["state"] == "pending"
        assert status["created_at"] == status["updated_at"]
        unset = ("confirmed_at", "failed_at", "failure_code", "failure_reason")
        assert [status[key] for key in unset] == [None] * 4

    done = kill_mid_run(api.engine, workers(database_url), 0)
    done = kill_mid_run(api.engine, workers(database_url), done)
    last = workers(database_url)
    wait_for_processed(api.engine, done, until_all=True)
    assert last.stop() == 0  # SIGTERM: a clean stop

    assert_all_booked_once(api)
    for pledge in posted[:: PLEDGES // 10]:
        status = api.status(pledge.client, "donation_pledges", pledge.id, locale="en").json()
        failure = expected_failure(pledge.client, pledge.project)
        assert status["state"] == ("failed" if failure else "confirmed")
        assert status["failure_code"] == failure
        assert status["failure_reason"] == ("The client has no pool." if failure else None)
        assert status["created_at"] <= status["updated_at"]
        assert status["updated_at"] == status["failed_at" if failure else "confirmed_at"]
    api.close()


def test_two_workers_at_once_book_nothing_twice_on_postgresql(
    tmp_path: Path,
    start_server: Callable[..., RunningServer],
    workers: Callable[[str], WorkerProcess],
) -> None:
    database_url, drop = new_database("postgresql", tmp_path)
    try:
        api = start_without_worker(database_url, start_server)
        post_pledges(api)
        first, second = workers(database_url), workers(database_url)
        # One of the two is killed mid-run; a third takes its place next to the second.
        done = kill_mid_run(api.engine, first, 0)
        third = workers(database_url)
        wait_for_processed(api.engine, done, until_all=True)
        assert second.stop() == third.stop() == 0
        assert_all_booked_once(api)
        api.close()
    finally:
        drop()


def test_a_request_accepted_before_its_project_left_the_clients_set_is_booked(
    database_url: str, start_server: Callable[..., RunningServer]
) -> None:
    """Membership is checked when a request is accepted; the worker books what was accepted."""
    api = start_without_worker(database_url, start_server)
    pool = accepted_id(api.pledge("vf", pledge_body(5_000), None), api, "vf", "donation_pledges")
    pledge_sent = pledge_body(1_500)
    pledge = accepted_id(api.pledge("vf", pledge_sent, OPEN), api, "vf", "donation_pledges")
    forwarding_body = {"amount_in_cents": 2_000, "client_reference": "leaving-forwarding"}
    forwarding = accepted_id(
        api.forwarding("vf", OPEN, forwarding_body), api, "vf", "forwarding_requests"
    )
    leave = {"event": "client_project", "client_id": "vf", "project_id": OPEN, "member": False}
    post_events(api.base_url, [leave])
    # From now on the project is unknown to vf...
    assert api.pledge("vf", pledge_body(1_500), OPEN).status_code == 404
    # ...except to a retry of what was accepted: that is answered as before, not as unknown.
    retry = api.pledge("vf", pledge_sent, OPEN)
    assert accepted_id(retry, api, "vf", "donation_pledges") == pledge
    assert api.pledge("vf", {**pledge_sent, "amount_in_cents": 1}, OPEN).status_code == 404
    before = api.ledger_stats("vf")
    while process_batch(api.engine):
        pass
    # ...but what vf sent before it left is booked to it, as accepted.
    for kind, request_id in (
        ("donation_pledges", pool),
        ("donation_pledges", pledge),
        ("forwarding_requests", forwarding),
    ):
        status = api.status("vf", kind, request_id).json()
        assert (status["state"], status["failure_code"]) == ("confirmed", None)
    with api.engine.connect() as conn:
        booked = conn.execute(
            select(donations.c.token, donations.c.project_id).where(
                donations.c.token.in_([f"pledge:{pledge}", f"forwarding:{forwarding}"])
            )
        )
        assert sorted(booked) == sorted(
            [(f"pledge:{pledge}", OPEN), (f"forwarding:{forwarding}", OPEN)]
        )
    # Project 1 is no longer vf's: its money leaves vf's project figures alone.
    expected = with_delta(
        before,
        pool_balance_in_cents=5_000 - 2_000,
        client_donated_amount_in_cents=5_000 + 1_500,
        client_donations_count=2,
    )
    assert api.ledger_stats("vf") == expected
    assert verify(api.engine).differences == []
    api.close()
