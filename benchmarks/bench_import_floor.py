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

With `--database-url postgresql://...` the same on PostgreSQL: each run gets a fresh
database of that server, and the floor writes the rows with psycopg `COPY ... FROM STDIN`
(the baseline of bench_import_postgres.py, but into the product's schema).

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
from pathlib import Path
from typing import Any

from bench_import import (
    Run,
    _remove_database,
    insert_batches,
    raw_figures,
    row_batches,
    run_child,
    run_product,
    with_server_cpu,
    write_file,
)
from bench_import_postgres import copy_batch, fresh_database
from bench_import_postgres import run_product as pg_product
from common import PYTHON, emit, markdown_header, median, progress, table

from clientstats.services.importing import DEFAULT_BATCH_SIZE

FLOOR = "executemany into the product's schema"
FLOOR_PG = "COPY into the product's schema"


def _reference_applier(url: str, batch_size: int) -> tuple[Any, Any]:
    """The product's schema on `url`, and a function applying lines with its importer."""
    from clientstats.services.importing import import_lines
    from clientstats.storage.database import make_engine
    from clientstats.storage.schema import ensure_schema

    engine = make_engine(url)
    ensure_schema(engine)

    def apply(lines: list[bytes]) -> None:
        applied = import_lines(engine, lines, batch_size=batch_size)
        if applied.rejected or applied.failures:
            raise RuntimeError(f"reference lines refused: {applied.summary()}")

    return engine, apply


def floor_child(file: Path, database: Path, batch_size: int) -> None:
    """Reference lines through the importer, ledger rows by executemany, batch by batch."""
    engine, apply = _reference_applier(f"sqlite:///{database}", batch_size)
    conn = sqlite3.connect(database, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
        conn.execute(f"PRAGMA {pragma}")
    counts = insert_batches(conn, row_batches(file, batch_size, apply))
    conn.close()
    engine.dispose()
    print(json.dumps(counts))


def floor_child_pg(file: Path, url: str, batch_size: int) -> None:
    """Reference lines through the importer, ledger rows by COPY, batch by batch."""
    import psycopg

    engine, apply = _reference_applier(url, batch_size)
    lines = rows = 0
    with psycopg.connect(url) as conn, conn.cursor() as cursor:
        conn.execute("SET TIME ZONE 'UTC'")  # `_row` writes naive UTC timestamps
        for batch in row_batches(file, batch_size, apply):
            copy_batch(cursor, batch)
            conn.commit()
            lines += batch.lines
            rows += len(batch.donations) + len(batch.revocations)
    engine.dispose()
    print(json.dumps({"lines": lines, "rows": rows}))


def run_floor(file: Path, lines: int, workdir: Path, batch_size: int) -> Run:
    """The floor child, measured like the importer."""
    database = workdir / "floor.db"
    _remove_database(database)
    command = [PYTHON, __file__, "--floor-child", str(file), str(database)]
    run = run_child([*command, "--batch-size", str(batch_size)], FLOOR, lines)
    _remove_database(database)
    return run


def run_floor_pg(file: Path, lines: int, admin_url: str, batch_size: int, tag: str) -> Run:
    """The PostgreSQL floor child, on a fresh database."""
    with fresh_database(admin_url, f"bench_import_floor_{tag}") as url:
        command = [PYTHON, __file__, "--floor-child-pg", str(file), url]
        command += ["--batch-size", str(batch_size)]
        return with_server_cpu(lambda: run_child(command, FLOOR_PG, lines))


def measure(args: argparse.Namespace, workdir: Path) -> list[str]:
    """Generate the file, run importer and floor alternately, build the report."""
    path = workdir / f"events-{args.lines}.jsonl"
    progress(f"generating {path} ({args.lines:,} lines)")
    if write_file(path, args.lines, args.seed) != args.lines:
        sys.exit(f"bench_import_floor: --lines {args.lines} is smaller than the reference data")
    pg = args.database_url is not None
    floor_name = FLOOR_PG if pg else FLOOR
    runs = []
    for attempt in range(args.repeat):
        if pg:
            pair = [
                lambda: pg_product(path, args.lines, args.database_url, args.batch_size, "p"),
                lambda: run_floor_pg(path, args.lines, args.database_url, args.batch_size, "f"),
            ]
        else:
            pair = [
                lambda: run_product(path, args.lines, workdir, args.batch_size),
                lambda: run_floor(path, args.lines, workdir, args.batch_size),
            ]
        for runner in pair if attempt % 2 == 0 else pair[::-1]:
            run = runner()
            progress(f"{run.importer}: {run.seconds:.1f} s, {run.events_per_s:,.0f} events/s")
            runs.append(run)
    product = median([r.events_per_s for r in runs if r.importer == "clientstats import"])
    floor = median([r.events_per_s for r in runs if r.importer == floor_name])
    where = "a fresh PostgreSQL database" if pg else "a fresh SQLite database"
    how = "psycopg COPY" if pg else "sqlite3 executemany"
    lines = markdown_header(
        "Import throughput: `clientstats import` vs the ledger rows written into its schema",
        f"Events/s of `clientstats import FILE` (subprocess, {where}) and of a child writing "
        f"the same ledger rows with {how} into the product's own schema (constraints, "
        "indexes, foreign keys; no booking rules, no aggregates).",
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
            [("clientstats import", f"{product:,.0f}"), (floor_name, f"{floor:,.0f}")],
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
    parser.add_argument(
        "--database-url",
        help="measure on PostgreSQL: a database of the server where fresh databases are made",
    )
    parser.add_argument("--floor-child", nargs=2, type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--floor-child-pg", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_child:
        floor_child(*args.floor_child, args.batch_size)
        return
    if args.floor_child_pg:
        floor_child_pg(Path(args.floor_child_pg[0]), args.floor_child_pg[1], args.batch_size)
        return
    with tempfile.TemporaryDirectory(prefix="bench-import-floor-") as workdir:
        emit(measure(args, Path(workdir)), args.output)


if __name__ == "__main__":
    main()
