"""What staying fresh costs an API process: one change-feed read with 100 and 100,000 clients.

What is measured: `services.changes.ChangeReader.read`, the read every API process makes
every `CLIENTSTATS_FRESHNESS_POLL_INTERVAL` (0.25 s) to learn which clients' figures
changed. With no change it reads the one row of the change feed; after a booking it reads
the versions of the changed clients only. The baseline, measured in the same run on the
same databases, is what a poll cost before the change feed: every client's version
(`storage.change_feed.all_versions`, the query the old poll ran).

Goals: a read with no changes costs the same with 100 and with 100,000 clients (ratio
<= 1.5); after a booking that changed k clients (10, 100, 1,000) the read costs in
proportion to k, not to the number of clients.

The databases are built through `services.importing.import_lines`, as `clientstats import`
would: N clients, and three projects whose memberships make one donation change 10, 100
or 1,000 clients (as many as there are). The bookings are donations imported the same way,
one transaction each. Reads alternate between the databases round by round.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from common import emit, markdown_header, median, progress, table, verdict
from sqlalchemy import Engine, text

from clientstats.services.changes import ChangeReader
from clientstats.services.importing import import_lines
from clientstats.storage import change_feed
from clientstats.storage.database import make_engine, read_transaction
from clientstats.storage.schema import ensure_schema

CHANGE_SIZES = (10, 100, 1_000)


@dataclass
class Database:
    """One benchmark database with `clients` clients."""

    clients: int
    engine: Engine
    schema: str | None
    projects: dict[int, int] = field(default_factory=dict)  # changed clients -> project id
    idle: list[float] = field(default_factory=list)
    baseline: list[float] = field(default_factory=list)
    changed: dict[int, list[float]] = field(default_factory=dict)


def _events(clients: int) -> Iterator[bytes]:
    for number in range(clients):
        yield json.dumps(
            {"event": "client", "id": f"c{number}", "name": f"Client {number}"}
        ).encode()
    for project, size in enumerate(CHANGE_SIZES, start=1):
        yield json.dumps({"event": "project", "id": project, "title": f"P{project}"}).encode()
        for number in range(min(size, clients)):
            yield json.dumps(
                {
                    "event": "client_project",
                    "client_id": f"c{number}",
                    "project_id": project,
                    "member": True,
                }
            ).encode()


def build(clients: int, database_url: str | None, directory: Path) -> Database:
    """A fresh database of `clients` clients (a SQLite file, or a PostgreSQL schema)."""
    schema = None
    if database_url is None:
        url = f"sqlite:///{directory / f'freshness-{clients}.db'}"
    else:
        schema = f"bench_fresh_{clients}_{uuid.uuid4().hex[:8]}"
        admin = make_engine(database_url)
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        admin.dispose()
        joiner = "&" if "?" in database_url else "?"
        url = f"{database_url}{joiner}options=-csearch_path%3D{schema}"
    engine = make_engine(url)
    ensure_schema(engine)
    progress(f"{clients:,} clients: importing")
    report = import_lines(engine, _events(clients), batch_size=5_000)
    assert report.ok, report.rejected[:3]
    database = Database(clients, engine, schema)
    database.projects = {min(s, clients): p for p, s in enumerate(CHANGE_SIZES, start=1)}
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    return database


def _timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def _book(database: Database, project: int) -> None:
    token = f"d{uuid.uuid4().hex[:20]}"
    line = json.dumps(
        {
            "event": "donation",
            "token": token,
            "channel": "platform",
            "receiver": {"type": "project", "id": project},
            "amount_in_cents": 100,
        }
    ).encode()
    assert import_lines(database.engine, [line]).ok


def measure_round(database: Database, reads: int) -> None:
    """Idle reads, the old poll, and one read after a booking of each size."""
    reader = ChangeReader(database.engine)
    reader.read()
    for _ in range(reads):
        database.idle.append(_timed(reader.read))

    def old_poll() -> None:
        with read_transaction(database.engine) as conn:
            change_feed.all_versions(conn)

    for _ in range(max(3, reads // 20)):
        database.baseline.append(_timed(old_poll))
    for size, project in database.projects.items():
        for _ in range(5):
            _book(database, project)
            start = time.perf_counter()
            changes = reader.read().versions
            elapsed = time.perf_counter() - start
            assert len(changes) == size, (len(changes), size)
            database.changed.setdefault(size, []).append(elapsed)


def report(databases: list[Database], args: argparse.Namespace) -> list[str]:
    small, large = databases[0], databases[-1]
    lines = markdown_header(
        "Freshness: one change-feed read",
        "Microseconds per read of the change feed (`ChangeReader.read`) by an API process, "
        "against the old poll of every client's version, on "
        + (
            f"PostgreSQL ({args.database_url}, fresh schemas)"
            if args.database_url
            else "SQLite files"
        )
        + ".",
    )
    rows = []
    for db in databases:
        row: list[object] = [
            f"{db.clients:,}",
            f"{median(db.idle) * 1e6:.0f}",
            f"{median(db.baseline) * 1e6:,.0f}",
        ]
        for size in CHANGE_SIZES:
            samples = db.changed.get(min(size, db.clients))
            row.append(
                "" if samples is None or size > db.clients else f"{median(samples) * 1e6:,.0f}"
            )
        rows.append(row)
    lines += table(
        [
            "clients",
            "read, no change (us)",
            "old poll: every version (us)",
            *(f"read after {k:,} changed (us)" for k in CHANGE_SIZES),
        ],
        rows,
    )
    idle_ratio = median(large.idle) / median(small.idle)
    per_change = {k: median(large.changed[k]) / k for k in CHANGE_SIZES if k in large.changed}
    spread = max(per_change.values()) / min(per_change.values())
    lines += [
        "",
        f"- read with no change, {large.clients:,} / {small.clients:,} clients: "
        f"**{idle_ratio:.2f}x** (goal <= 1.5: {verdict(idle_ratio <= 1.5)})",
        f"- the old poll at {large.clients:,} clients / a read with no change: "
        f"{median(large.baseline) / median(large.idle):,.0f}x",
        "- a read after k changed clients, per changed client ("
        + ", ".join(f"k={k:,}: {v * 1e6:.1f} us" for k, v in per_change.items())
        + f"); largest / smallest {spread:.1f}x: the cost grows with the changes, "
        + "the fixed part of a read dominates small k",
        "",
        f"Medians over {args.rounds} rounds of {args.reads} idle reads and 5 reads after a booking "
        "of each size per database.",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", default="100,100000")
    parser.add_argument("--reads", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", help="postgresql://... to run on PostgreSQL")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="clientstats-freshness-") as directory:
        databases = [
            build(int(n), args.database_url, Path(directory)) for n in args.clients.split(",")
        ]
        try:
            for number in range(args.rounds):
                order = databases if number % 2 == 0 else databases[::-1]
                for database in order:
                    progress(f"round {number + 1}: {database.clients:,} clients")
                    measure_round(database, args.reads)
            emit(report(databases, args), args.output)
        finally:
            for database in databases:
                database.engine.dispose()
                if database.schema is not None and args.database_url:
                    admin = make_engine(args.database_url)
                    with admin.begin() as conn:
                        conn.execute(text(f"DROP SCHEMA IF EXISTS {database.schema} CASCADE"))
                    admin.dispose()


if __name__ == "__main__":
    main()
