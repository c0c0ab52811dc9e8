"""Random pledges, forwardings, closings and revocations, stored and booked, match the reference."""

# Each example runs on a fresh database: requests are accepted with
# services.client_requests.accept and booked with services.processing.process_batch in random
# batch sizes, interleaved with imported events (project closings and reopenings, donations,
# revocations). A pure model decides what every request should become and books it into a
# MemoryBook; the stored statistics, the request states and `verify` must all agree with it.
#
# Revocations name imported donations only: a pledge's booking has the token `pledge:<id>`, and
# a revocation event cannot name it, because imported tokens cannot contain a colon.

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from clientstats.domain.booking import Outcome
from clientstats.domain.events import DonationEvent, ForwardingEvent, parse_line
from clientstats.domain.ledger import BookingRejected, Channel, Donation
from clientstats.domain.memory_book import MemoryBook
from clientstats.domain.requests import REFERENCE_TAKEN, ClientRequest, RequestKind
from clientstats.errors import NotFound
from clientstats.services import client_requests
from clientstats.services.importing import import_lines
from clientstats.services.processing import process_batch
from clientstats.services.statistics import get_snapshot_or_raise
from clientstats.services.verification import verify
from clientstats.storage import requests_store
from clientstats.storage.database import make_engine, write_transaction
from clientstats.storage.schema import ensure_schema
from tests.conftest import fresh_database, require_postgres

CLIENTS = {"alpha": True, "beta": False}  # permalink -> has a pool
PROJECTS = (1, 2, 3)
REFERENCES = tuple(f"r{i}" for i in range(6))  # few, so that they repeat
TOKENS = tuple(f"d{i}" for i in range(5))
MEMBERS = (("alpha", 1), ("alpha", 2), ("alpha", 3), ("beta", 2), ("beta", 3))
SEED: list[dict[str, Any]] = [
    *({"event": "client", "id": c, "name": c, "pool": pool} for c, pool in CLIENTS.items()),
    *({"event": "project", "id": p, "title": f"P{p}"} for p in PROJECTS),
    *(
        {
            "event": "need",
            "id": 10 * p,
            "project_id": p,
            "title": "N",
            "requested_amount_in_cents": r,
        }
        for p, r in ((1, 3_000), (2, 10_000), (3, 1_500))
    ),
    *(
        {"event": "client_project", "client_id": c, "project_id": p, "member": True}
        for c, p in MEMBERS
    ),
    {
        "event": "matching_fund",
        "id": 1,
        "client_id": "beta",
        "title": "Beta doubles",
        "provided_amount_in_cents": 2_000,
        "maximum_matching_amount_in_cents": 700,
        "state": "activated",
        "project_ids": [1, 2],
    },
    {
        "event": "matching_fund",
        "id": 2,
        "client_id": "alpha",
        "title": "Alpha doubles",
        "provided_amount_in_cents": 1_000,
        "maximum_matching_amount_in_cents": 1_000,
        "state": "activated",
        "project_ids": [2],
    },
]

# --- operations --------------------------------------------------------------------------

amounts = st.sampled_from((100, 250, 700, 1_000, 2_500))
clients = st.sampled_from(sorted(CLIENTS))
references = st.sampled_from(REFERENCES)
pledges = st.tuples(
    st.just("pledge"), clients, st.sampled_from((*PROJECTS, None, None)), amounts, references
)
forwardings = st.tuples(
    st.just("forwarding"), clients, st.sampled_from(PROJECTS), amounts, references
)
closings = st.tuples(st.just("close"), st.sampled_from(PROJECTS), st.booleans())
donations = st.tuples(
    st.just("donate"),
    st.sampled_from(TOKENS),
    st.sampled_from((None, *sorted(CLIENTS))),  # None: a platform donation
    st.sampled_from(PROJECTS),
    amounts,
    references,
)
revocations = st.tuples(st.just("revoke"), st.sampled_from(TOKENS))
memberships = st.tuples(st.just("member"), clients, st.sampled_from(PROJECTS), st.booleans())
batches = st.tuples(st.just("process"), st.integers(1, 4))
operations = st.lists(
    st.one_of(
        pledges,
        pledges,
        pledges,
        forwardings,
        closings,
        donations,
        revocations,
        memberships,
        batches,
    ),
    min_size=5,
    max_size=40,
)


def import_event(op: tuple[Any, ...]) -> dict[str, Any]:
    """The ledger event of an import operation."""
    if op[0] == "close":
        return {"event": "project", "id": op[1], "closed": op[2]}
    if op[0] == "revoke":
        return {"event": "revocation", "token": op[1]}
    if op[0] == "member":
        return {"event": "client_project", "client_id": op[1], "project_id": op[2], "member": op[3]}
    _, token, client, project, amount, reference = op
    event: dict[str, Any] = {
        "event": "donation",
        "token": token,
        "channel": "platform" if client is None else "client",
        "receiver": {"type": "project", "id": project},
        "amount_in_cents": amount,
    }
    if client is not None:
        event.update(client_id=client, client_reference=reference)
    return event


# --- the reference model -----------------------------------------------------------------


@dataclass
class ModelRequest:
    id: int
    kind: RequestKind
    client: str
    project: int | None
    amount: int
    reference: str
    state: str = "pending"
    failure_code: str | None = None


@dataclass
class Model:
    """What the requests become, booked into the pure reference book."""

    book: MemoryBook = field(default_factory=MemoryBook)
    requests: dict[tuple[str, str], ModelRequest] = field(default_factory=dict)
    pending: list[ModelRequest] = field(default_factory=list)
    members: set[tuple[str, int]] = field(default_factory=lambda: set(MEMBERS))

    def process(self, limit: int) -> None:
        batch, self.pending = self.pending[:limit], self.pending[limit:]
        for request in batch:
            request.failure_code = self._book(request)
            request.state = "confirmed" if request.failure_code is None else "failed"

    def _book(self, r: ModelRequest) -> str | None:
        token = f"{r.kind.value}:{r.id}"
        if r.kind is RequestKind.PLEDGE:
            project = None if r.project is None else self.book.projects[r.project]
            needs_pool = project is None or not project.accepts_donations
            if needs_pool and not CLIENTS[r.client]:
                return "pool_missing"
        entry = Donation(
            token=token,
            channel=Channel.CLIENT if r.kind is RequestKind.PLEDGE else Channel.FORWARDING,
            amount_in_cents=r.amount,
            created_at=datetime.now(UTC),
            project_id=r.project,
            pool_client_id=r.client if r.project is None else None,
            client_id=r.client,
            client_reference=r.reference,
        )
        event = (
            DonationEvent(entry, created_at_given=False)
            if r.kind is RequestKind.PLEDGE
            else ForwardingEvent(entry, created_at_given=False)
        )
        outcome = self.book.apply(event)
        if isinstance(outcome, BookingRejected):
            assert outcome.field == "client_reference", outcome
            return REFERENCE_TAKEN
        if outcome is Outcome.FAILED:
            failure = self.book.donations[token].failure_code
            assert failure is not None
            return failure.value
        assert outcome is Outcome.APPLIED
        return None


# --- one fresh database per example ------------------------------------------------------


@contextmanager
def fresh_engine(kind: str, tmp_path: Path) -> Iterator[Engine]:
    """A new, migrated database of this kind, dropped afterwards."""
    with fresh_database(kind, tmp_path) as url:
        engine = make_engine(url, pool_size=1)
        try:
            ensure_schema(engine)
            yield engine
        finally:
            engine.dispose()


def run(engine: Engine, model: Model, ops: list[tuple[Any, ...]]) -> None:
    """Apply the operations to the database and to the model side by side."""
    now = datetime.now(UTC)
    seed_lines = [json.dumps(e).encode() for e in SEED]
    assert import_lines(engine, seed_lines).ok
    for event in SEED:
        assert model.book.apply(parse_line(json.dumps(event), now=now)) is Outcome.APPLIED
    for op in ops:
        if op[0] in ("pledge", "forwarding"):
            accept(engine, model, op)
        elif op[0] == "process":
            assert process_batch(engine, limit=op[1]) == min(op[1], len(model.pending))
            model.process(op[1])
        else:
            event = import_event(op)
            import_lines(engine, [json.dumps(event).encode()])
            model.book.apply(parse_line(json.dumps(event), now=now))
            if op[0] == "member":
                (model.members.add if op[3] else model.members.discard)((op[1], op[2]))
    while model.pending:
        assert process_batch(engine, limit=3) == min(3, len(model.pending))
        model.process(3)
    assert process_batch(engine) == 0


def accept(engine: Engine, model: Model, op: tuple[Any, ...]) -> None:
    kind = RequestKind.PLEDGE if op[0] == "pledge" else RequestKind.FORWARDING
    _, client, project, amount, reference = op
    body = {"amount_in_cents": amount, "client_reference": reference}
    if kind is RequestKind.PLEDGE:
        body["validate_address"] = False
    known = model.requests.get((client, reference))
    try:
        accepted = client_requests.accept(
            engine, client_id=client, kind=kind, project_id=project, body=body
        )
    except NotFound:
        # Only the client's own projects, as they are when the request arrives (a request
        # accepted before its project left the client's set is still booked).
        assert project is not None and (client, project) not in model.members
        assert known is None or (known.kind, known.project, known.amount) != (
            kind,
            project,
            amount,
        )
        return
    except client_requests.RequestConflict as conflict:
        # A reference taken by another request, of either kind, is a conflict naming it.
        assert known is not None
        assert (known.kind, known.project, known.amount) != (kind, project, amount)
        assert conflict.stored.id == known.id
        return
    if known is not None:
        assert (known.kind, known.project, known.amount) == (kind, project, amount)
        assert (accepted.created, accepted.request.id) == (False, known.id)
        return
    assert accepted.created
    assert project is None or (client, project) in model.members
    request = ModelRequest(accepted.request.id, kind, client, project, amount, reference)
    model.requests[(client, reference)] = request
    model.pending.append(request)


def check(engine: Engine, model: Model) -> None:
    for client in CLIENTS:
        stored = get_snapshot_or_raise(engine, client).statistics
        assert stored == model.book.statistics(client), client
    for request in model.requests.values():
        found = client_requests.get_or_raise(
            engine, client_id=request.client, kind=request.kind, request_id=request.id
        )
        assert (found.state.value, found.failure_code) == (request.state, request.failure_code)
        assert found.amount_in_cents == request.amount
    report = verify(engine)
    assert report.differences == []


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
@settings(
    max_examples=15,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=operations)
def test_requests_processed_in_random_batches_match_the_reference(
    kind: str, tmp_path: Path, ops: list[tuple[Any, ...]]
) -> None:
    if kind == "postgresql":
        require_postgres()
    with fresh_engine(kind, tmp_path) as engine:
        model = Model()
        run(engine, model, ops)
        check(engine, model)


WORKED_EXAMPLE: list[tuple[Any, ...]] = [
    ("donate", "d0", None, 2, 2_500, "-"),  # a platform donation, matched by beta's fund (700)
    ("pledge", "alpha", 1, 1_000, "p1"),  # matched by beta's fund (700)
    ("pledge", "alpha", None, 2_500, "p2"),  # to alpha's pool
    ("pledge", "beta", None, 100, "p1"),  # beta has no pool: pool_missing
    ("close", 3, True),
    ("pledge", "alpha", 3, 700, "p3"),  # redirected to alpha's pool
    ("pledge", "beta", 3, 250, "p4"),  # no pool to redirect to: pool_missing
    ("pledge", "alpha", 1, 1_000, "p1"),  # a repeat: nothing new
    ("pledge", "alpha", 1, 100, "p1"),  # another pledge under p1: refused, nothing new
    ("pledge", "beta", 1, 100, "p7"),  # not one of beta's projects: refused
    ("forwarding", "alpha", 1, 100, "p2"),  # the reference of a pledge: refused
    ("process", 2),
    ("forwarding", "alpha", 2, 3_000, "f1"),  # booked: the pool holds 3200 by then
    ("forwarding", "alpha", 2, 1_000, "f2"),  # pool_empty: 200 left
    ("forwarding", "alpha", 3, 100, "f3"),  # project 3 is closed
    ("forwarding", "beta", 2, 100, "f1"),  # pool_missing
    ("donate", "d1", "alpha", 1, 1_000, "p5"),  # an import takes p5 first
    ("pledge", "alpha", 2, 250, "p5"),  # client_reference_taken
    ("process", 8),  # everything pending, before project 3 reopens
    ("revoke", "d0"),  # its matching donation is revoked with it
    ("close", 3, False),
    ("pledge", "beta", 3, 1_000, "p6"),
    ("member", "alpha", 1, False),
    ("pledge", "alpha", 1, 1_000, "p1"),  # a retry of what was accepted: still that pledge
    ("pledge", "alpha", 1, 1_000, "p8"),  # a new pledge: project 1 is no longer alpha's
]


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_worked_example_reaches_every_outcome(kind: str, tmp_path: Path) -> None:
    if kind == "postgresql":
        require_postgres()
    with fresh_engine(kind, tmp_path) as engine:
        model = Model()
        run(engine, model, WORKED_EXAMPLE)
        check(engine, model)
    outcomes = {(r.client, r.reference): (r.state, r.failure_code) for r in model.requests.values()}
    assert outcomes == {
        ("alpha", "p1"): ("confirmed", None),
        ("alpha", "p2"): ("confirmed", None),
        ("beta", "p1"): ("failed", "pool_missing"),
        ("alpha", "p3"): ("confirmed", None),
        ("beta", "p4"): ("failed", "pool_missing"),
        ("alpha", "f1"): ("confirmed", None),
        ("alpha", "f2"): ("failed", "pool_empty"),
        ("alpha", "f3"): ("failed", "receiver_prohibited_from_receiving_donations"),
        ("beta", "f1"): ("failed", "pool_missing"),
        ("alpha", "p5"): ("failed", "client_reference_taken"),
        ("beta", "p6"): ("confirmed", None),
    }
    alpha = model.book.statistics("alpha")
    assert alpha.pool_balance_in_cents == 2_500 + 700 - 3_000
    assert alpha.client_donations_count == 4  # p1, p2, p3 and the imported d1


def test_a_request_is_never_finished_before_it_was_created(tmp_path: Path) -> None:
    """A worker that waited for the SQLite write lock stamps its work with the time it got it."""
    with fresh_engine("sqlite", tmp_path) as engine:
        assert import_lines(engine, [json.dumps(e).encode() for e in SEED]).ok
        processed: list[int] = []
        with write_transaction(engine) as conn:
            # One request already waits, so the worker goes on to take the write lock.
            first = ClientRequest(RequestKind.PLEDGE, "alpha", "early", 100, 1, {})
            requests_store.accept(conn, first, now=datetime.now(UTC))
        with write_transaction(engine) as conn:  # holds the write lock
            worker = threading.Thread(target=lambda: processed.append(process_batch(engine)))
            worker.start()
            time.sleep(0.3)  # the worker is now waiting for the lock
            request = ClientRequest(RequestKind.PLEDGE, "alpha", "late", 100, 1, {})
            stored, created = requests_store.accept(conn, request, now=datetime.now(UTC))
        worker.join()
        assert created and processed == [2]
        found = client_requests.get_or_raise(
            engine, client_id="alpha", kind=RequestKind.PLEDGE, request_id=stored.id
        )
        assert found.confirmed_at is not None
        assert found.created_at <= found.confirmed_at == found.updated_at
