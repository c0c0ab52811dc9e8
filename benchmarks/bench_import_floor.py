"""How far `clientstats import` is from writing the same ledger rows into its own schema.

bench_import.py compares the importer with rows written into bare tables (no constraints,
no indexes). This asks a different question: what does the product's own schema cost,
whatever the importer does on top? The floor, measured in the same run on the same file
(the generator of bench_import.py), is a child process that

- creates the product's schema (`ensure_schema`: every index, unique constraint, check and
  foreign key, and the SQLite settings the product uses: WAL, synchronous=NORMAL,
  foreign_keys=ON),
- applies the file's reference lines (clients, projects, needs, memberships, matching
  funds, late needs) with the product's importer, as they are few and the ledger rows
  need them,
- and writes every donation, forwarding and revocation row with plain sqlite3
  `executemany` into `donations` and `revocations`, one transaction per batch of the same
  size as the importer's.

The floor applies no booking rules and keeps no aggregates: it is the cost of the rows and
of what the schema checks and indexes for each of them, which any importer keeping the
same guarantees must pay. The report gives events/s of both and their ratio.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
from itertools import islice
from pathlib import Path

import orjson
from bench_import import (
    Run,
    _remove_database,
    _row,
    raw_figures,
    run_product,
    write_file,
)
from common import PYTHON, emit, markdown_header, median, progress, run_measured, table

from clientstats.services.importing import DEFAULT_BATCH_SIZE

FLOOR = "executemany into the product's schema"
INSERT_DONATION = (
    "INSERT INTO donations (token, channel, amount_in_cents, project_id, pool_client_id, "
    "client_id, client_reference, tracking_via, matching_fund_id, matched_token, "
    "redirected_from_project_id, failure_code, created_at, booked_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_REVOCATION = "INSERT INTO revocations (token, created_at, booked_at) VALUES (?, ?, ?)"
LEDGER_KINDS = frozenset({"donation", "forwarding", "revocation"})


def floor_child(file: Path, database: Path, batch_size: int) -> None:
    """Reference lines through the importer, ledger rows by executemany, batch by batch."""
    from datetime import UTC, datetime

    from clientstats.services.importing import import_lines
    from clientstats.storage.database import make_engine
    from clientstats.storage.schema import ensure_schema

    engine = make_engine(f"sqlite:///{database}")
    ensure_schema(engine)
    conn = sqlite3.connect(database, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
        conn.execute(f"PRAGMA {pragma}")
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    lines = rows = reference = 0
    with file.open("rb") as stream:
        while batch := list(islice(stream, batch_size)):
            donations, revocations, other = [], [], []
            for line in batch:
                event = orjson.loads(line)
                kind = event["event"]
                if kind == "revocation":
                    revocations.append((event["token"], now, now))
                elif kind in LEDGER_KINDS:
                    donations.append(_row(event, now))
                else:
                    other.append(line)
            if other:
                applied = import_lines(engine, other, batch_size=batch_size)
                if applied.rejected or applied.failures:
                    raise RuntimeError(f"reference lines refused: {applied.summary()}")
                reference += len(other)
            conn.execute("BEGIN")
            conn.executemany(INSERT_DONATION, donations)
            conn.executemany(INSERT_REVOCATION, revocations)
            conn.execute("COMMIT")
            lines += len(batch)
            rows += len(donations) + len(revocations)
    conn.close()
    engine.dispose()
    print(json.dumps({"lines": lines, "rows": rows, "reference_lines": reference}))


def run_floor(file: Path, lines: int, workdir: Path, batch_size: int) -> Run:
    """The floor child, measured like the importer."""
    database = workdir / "floor.db"
    _remove_database(database)
    command = [PYTHON, __file__, "--floor-child", str(file), str(database)]
    done = run_measured([*command, "--batch-size", str(batch_size)])
    if done.returncode != 0:
        raise RuntimeError(f"floor failed: {done.stderr.decode()[-2000:]}")
    _remove_database(database)
    return Run(lines, FLOOR, done.seconds, done.max_rss_mib, done.stdout.decode().strip())


def measure(args: argparse.Namespace, workdir: Path) -> list[str]:
    """Generate the file, run importer and floor alternately, build the report."""
    path = workdir / f"events-{args.lines}.jsonl"
    progress(f"generating {path} ({args.lines:,} lines)")
    if write_file(path, args.lines, args.seed) != args.lines:
        sys.exit(f"bench_import_floor: --lines {args.lines} is smaller than the reference data")
    runs = []
    for attempt in range(args.repeat):
        order = (run_product, run_floor) if attempt % 2 == 0 else (run_floor, run_product)
        for runner in order:
            progress(f"{runner.__name__} (repetition {attempt + 1})")
            run = runner(path, args.lines, workdir, args.batch_size)
            progress(f"  {run.seconds:.1f} s, {run.events_per_s:,.0f} events/s")
            runs.append(run)
    product = median([r.events_per_s for r in runs if r.importer == "clientstats import"])
    floor = median([r.events_per_s for r in runs if r.importer == FLOOR])
    lines = markdown_header(
        "Import throughput: `clientstats import` vs the ledger rows written into its schema",
        "Events/s of `clientstats import FILE` (subprocess, fresh SQLite database) and of a "
        "child writing the same ledger rows with sqlite3 executemany into the product's own "
        "schema (constraints, indexes, foreign keys; no booking rules, no aggregates).",
    )
    lines += [
        f"- file: {args.lines:,} lines = {path.stat().st_size / 2**20:.0f} MiB "
        f"(seed {args.seed}, generator of bench_import.py)",
        f"- batch size: {args.batch_size} lines per transaction, for both",
        f"- repetitions: {args.repeat} (importer and floor alternate)",
        "",
        "## Raw figures",
        "",
        *raw_figures(runs),
        "",
        "## Result",
        "",
        *table(
            ["importer", "events/s (median)"],
            [("clientstats import", f"{product:,.0f}"), (FLOOR, f"{floor:,.0f}")],
        ),
        "",
        f"- ratio import / floor: **{product / floor:.3f}**",
    ]
    return lines


def main() -> None:
    """Parse options and run the benchmark (or, internally, the floor child)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--seed", type=int, default=2015)
    parser.add_argument("--output", type=Path, help="also write the report to this file")
    parser.add_argument("--floor-child", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_child:
        floor_child(*args.floor_child, args.batch_size)
        return
    with tempfile.TemporaryDirectory(prefix="bench-import-floor-") as workdir:
        emit(measure(args, Path(workdir)), args.output)


if __name__ == "__main__":
    main()
