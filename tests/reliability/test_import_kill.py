"""A `clientstats import` process killed (SIGKILL) in the middle of a big batch.

The database must hold exactly a prefix of whole batches: the ledger is that of the pure
reference after the first k batches, every figure equals the reference's for those lines,
and verification finds no difference. Importing the file again completes it to the figures
of the whole file.

The pure reference (domain.memory_book) folds every entry again for each pool or matching
look-up, so its cost grows with the square of the file: the file is small and the batches
are small, so the import still has many transactions to be killed in.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from clientstats.domain.events import parse_line
from clientstats.domain.memory_book import MemoryBook
from clientstats.services.verification import verify
from clientstats.storage.database import make_engine, read_transaction
from clientstats.storage.ledger_queries import stream_entries
from clientstats.storage.statistics_queries import client_snapshot
from clientstats.storage.tables import donations
from tests.conftest import fresh_database, server_env

BATCH = 40
LINES = 1_200
KILL_ATTEMPTS = 5
CLIENTS = ("vf", "kb", "acme")  # the first two have a pool
PROJECTS = range(1, 41)


def event_file(seed: int) -> list[dict[str, Any]]:
    """Reference data, then donations of every importable channel, forwardings out of pools
    the file has filled, revocations (some before their donation arrives) and late needs."""
    rng = random.Random(seed)
    events: list[dict[str, Any]] = [
        {"event": "client", "id": c, "name": c.upper(), "pool": c != "acme"} for c in CLIENTS
    ]
    for p in PROJECTS:
        events.append({"event": "project", "id": p, "title": f"P{p}", "closed": p % 13 == 0})
        events.append(
            {"event": "need", "id": p, "project_id": p, "title": "N", "requested_amount_in_cents": 500_000}
        )  # fmt: skip
        for c in CLIENTS:
            if (p + len(c)) % 3:
                events.append({"event": "client_project", "client_id": c, "project_id": p, "member": True})  # fmt: skip
    events.append(
        {
            "event": "matching_fund", "id": 1, "client_id": "acme", "title": "F",
            "provided_amount_in_cents": 2_000_000, "maximum_matching_amount_in_cents": 1_000,
            "project_ids": [1, 2, 3, 5, 8],
        }
    )  # fmt: skip
    pools = {"vf": 0, "kb": 0}
    n = 0
    while len(events) < LINES:
        n += 1
        roll = rng.random()
        if roll < 0.01:
            events.append({"event": "revocation", "token": f"d{n + rng.randint(1, 50)}"})
            continue  # a revocation that may come before its donation
        if roll < 0.03:
            client = rng.choice(sorted(pools))
            amount = rng.choice((500, 2_000))
            if pools[client] >= amount:
                pools[client] -= amount
                events.append(
                    {"event": "forwarding", "token": f"f{n}", "client_id": client,
                     "project_id": rng.choice([p for p in PROJECTS if p % 13]),
                     "amount_in_cents": amount, "client_reference": f"fw-{n}"}
                )  # fmt: skip
            continue
        if roll < 0.035:
            events.append({"event": "need", "id": 1000 + n, "project_id": rng.choice(PROJECTS), "title": "L", "requested_amount_in_cents": 9_000})  # fmt: skip
            continue
        amount = rng.choice((100, 500, 2_500, 10_000))
        channel = rng.choice(("platform", "platform", "client", "external"))
        event: dict[str, Any] = {"event": "donation", "token": f"d{n}", "channel": channel, "amount_in_cents": amount}  # fmt: skip
        project = rng.choice([p for p in PROJECTS if p % 13])
        if channel == "client":
            client = rng.choice(sorted(pools))
            event.update(client_id=client, client_reference=f"r-{n}")
            if rng.random() < 0.3:
                event["receiver"] = {"type": "pool", "client_id": client}
                pools[client] += amount
            else:
                event["receiver"] = {"type": "project", "id": project}
        else:
            event["receiver"] = {"type": "project", "id": project}
        events.append(event)
    return events


def write(path: Path, events: list[dict[str, Any]]) -> None:
    path.write_bytes(
        b"".join(json.dumps(e, separators=(",", ":")).encode() + b"\n" for e in events)
    )


def start_import(url: str, path: Path) -> subprocess.Popen[bytes]:
    env = server_env(url, CLIENTSTATS_IMPORT_BATCH_SIZE=str(BATCH))
    return subprocess.Popen(
        [sys.executable, "-m", "clientstats", "import", str(path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def booked_count(engine: Engine) -> int:
    try:
        with read_transaction(engine) as conn:
            return int(conn.execute(select(func.count()).select_from(donations)).scalar_one())
    except Exception:
        return 0  # the schema is not there yet


Ledger = dict[str, tuple[int, bool, str | None]]


@dataclass(frozen=True)
class Expected:
    """What the pure reference holds after a prefix of the file."""

    ledger: Ledger
    statistics: dict[str, dict[str, Any]]


@cache
def expected_after_each_batch() -> list[Expected]:
    """The reference after 0, 1, 2, ... whole batches of the file, the last the whole file."""
    events = event_file(seed=7)
    book, now = MemoryBook(), datetime.now(UTC)
    expected = [snapshot(book)]
    for number, event in enumerate(events, start=1):
        book.apply(parse_line(json.dumps(event), now=now))
        if number % BATCH == 0 or number == len(events):
            expected.append(snapshot(book))
    return expected


def snapshot(book: MemoryBook) -> Expected:
    ledger = {
        t: (d.amount_in_cents, t in book.revoked, d.failure_code and d.failure_code.value)
        for t, d in book.donations.items()
    }
    statistics = {c: book.statistics(c).as_response() for c in CLIENTS if c in book.clients}
    return Expected(ledger, statistics)


def stored_ledger(engine: Engine) -> Ledger:
    with read_transaction(engine) as conn:
        return {
            d.token: (d.amount_in_cents, revoked, d.failure_code and d.failure_code.value)
            for d, revoked in stream_entries(conn)
        }


def assert_matches(engine: Engine, expected: Expected) -> None:
    assert stored_ledger(engine) == expected.ledger
    with read_transaction(engine) as conn:
        for client in CLIENTS:
            snapshot = client_snapshot(conn, client)
            assert snapshot is not None
            assert snapshot.statistics.as_response() == expected.statistics[client]
    assert verify(engine).differences == []


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_an_import_killed_mid_batch_leaves_whole_batches_and_a_rerun_completes_it(
    kind: str, tmp_path: Path
) -> None:
    events = event_file(seed=7)
    expected = expected_after_each_batch()
    path = tmp_path / "events.jsonl"
    write(path, events)
    # A fast machine may finish all batches before the kill lands: then the attempt does not
    # count, and the next one kills sooner after the first commit.
    for attempt in range(KILL_ATTEMPTS):
        with fresh_database(kind, tmp_path) as url:
            engine = make_engine(url)
            try:
                committed = kill_mid_import(engine, url, path, expected, 0.1 / 4**attempt)
                if committed is None:
                    continue
                assert committed >= 1, "killed before the first batch had committed"
                assert_matches(engine, expected[committed])

                rerun = start_import(url, path)
                out, err = rerun.communicate(timeout=600)
                assert rerun.returncode == 0, err.decode()
                summary = json.loads(out.decode().strip().splitlines()[-1])
                assert summary["lines"] == len(events) and summary["rejected"] == 0
                assert_matches(engine, expected[-1])
                return
            finally:
                engine.dispose()
    pytest.fail(f"the import ended before the kill in all {KILL_ATTEMPTS} attempts")


def kill_mid_import(
    engine: Engine, url: str, path: Path, expected: list[Expected], longest_delay: float
) -> int | None:
    """SIGKILL an import a little after its first commit; the number of whole batches the
    database then holds, or None if the import had ended first."""
    process = start_import(url, path)
    deadline = time.monotonic() + 300
    while booked_count(engine) == 0:  # the first batch has committed
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.002)
    time.sleep(random.uniform(0.0, longest_delay))  # now inside one of the next batches
    if process.poll() is not None:
        process.communicate()
        return None
    process.send_signal(signal.SIGKILL)
    process.communicate()
    stored = stored_ledger(engine)
    committed = [k for k, after in enumerate(expected) if after.ledger == stored]
    assert committed, "the database holds no prefix of whole batches"
    return None if committed[0] == len(expected) - 1 else committed[0]
