"""Throughput and peak memory of `clientstats import FILE` on PostgreSQL against a plain COPY.

What is measured: events/s of `clientstats import FILE` run as a subprocess with
CLIENTSTATS_DATABASE_URL pointing at a fresh PostgreSQL database (created for the run and
dropped afterwards), for the generated event file of `bench_import.py` (same generator, same
seed: reference data, then donations of every importable channel, forwardings, revocations
and a few late needs; every line applies, the run checks it). Default 1,000,000 lines.

Baseline, measured in the same run: a child process that reads the same file, parses each
line with orjson and writes the same donation, forwarding and revocation rows into bare
tables with the same columns (no constraints, no indexes, no booking rules) of another fresh
database with psycopg 3 `cursor.copy("COPY ... FROM STDIN")` and `write_row`, one
transaction per batch of the same size (the importer's default unless --batch-size). It is the
floor of "getting the rows into PostgreSQL from Python".

Also reported: the peak RSS (ru_maxrss from wait4) of each child. Product and baseline
alternate when `--repeat` is above 1.

Goal: no fixed number; the report gives the events/s of both and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from bench_import import (
    RowBatch,
    Run,
    checked_import,
    per_event_us,
    raw_figures,
    row_batches,
    run_child,
    with_server_cpu,
    write_file,
)
from common import (
    PYTHON,
    clientstats_env,
    emit,
    markdown_header,
    median,
    progress,
    run_measured,
    table,
)

from clientstats.services.importing import DEFAULT_BATCH_SIZE

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"

BARE_TABLES = (
    """CREATE TABLE donations (id BIGSERIAL PRIMARY KEY, token VARCHAR(100),
    channel VARCHAR(16), amount_in_cents BIGINT, project_id BIGINT, pool_client_id VARCHAR(64),
    client_id VARCHAR(64), client_reference VARCHAR(128), tracking_via VARCHAR(200),
    matching_fund_id BIGINT, matched_token VARCHAR(100), redirected_from_project_id BIGINT,
    failure_code VARCHAR(64), created_at TIMESTAMPTZ, booked_at TIMESTAMPTZ)""",
    "CREATE TABLE revocations (id BIGSERIAL PRIMARY KEY, token VARCHAR(100), "
    "created_at TIMESTAMPTZ, booked_at TIMESTAMPTZ)",
)
COPY_DONATIONS = (
    "COPY donations (token, channel, amount_in_cents, project_id, pool_client_id, client_id, "
    "client_reference, tracking_via, matching_fund_id, matched_token, "
    "redirected_from_project_id, failure_code, created_at, booked_at) FROM STDIN"
)
COPY_REVOCATIONS = "COPY revocations (token, created_at, booked_at) FROM STDIN"


def _with_database(url: str, name: str) -> str:
    """The same server URL with another database name."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@contextmanager
def fresh_database(admin_url: str, name: str) -> Iterator[str]:
    """CREATE DATABASE for a `with` block, DROP it (forcing other sessions out) afterwards."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- the baseline, run as a child process of this script ---------------------------------


def copy_batch(cursor: psycopg.Cursor[Any], batch: RowBatch) -> None:
    """COPY one batch's donation and revocation rows (the caller commits)."""
    with cursor.copy(COPY_DONATIONS) as copy:
        for row in batch.donations:
            copy.write_row(row)
    if batch.revocations:
        with cursor.copy(COPY_REVOCATIONS) as copy:
            for revocation in batch.revocations:
                copy.write_row(revocation)


def baseline_child(file: Path, url: str, batch_size: int) -> None:
    """COPY the file's donation, forwarding and revocation rows into bare tables."""
    with psycopg.connect(url) as conn:
        conn.execute("SET TIME ZONE 'UTC'")  # `_row` writes naive UTC timestamps
        for statement in BARE_TABLES:
            conn.execute(statement)
        conn.commit()
        lines = rows = 0
        with conn.cursor() as cursor:
            for batch in row_batches(file, batch_size):
                copy_batch(cursor, batch)
                conn.commit()
                lines += batch.lines
                rows += len(batch.donations) + len(batch.revocations)
        stored = conn.execute(
            "SELECT (SELECT count(*) FROM donations) + (SELECT count(*) FROM revocations)"
        ).fetchone()
    if stored is None or stored[0] != rows:
        sys.exit(f"baseline stored {stored} rows, expected {rows}")
    print(json.dumps({"lines": lines, "rows": rows}))


# -- the measurement -------------------------------------------------------------------


def run_product(file: Path, lines: int, admin_url: str, batch_size: int, tag: str) -> Run:
    """`clientstats import FILE` on a fresh PostgreSQL database."""
    with fresh_database(admin_url, f"bench_import_pg_{tag}") as url:
        env = clientstats_env(url, CLIENTSTATS_IMPORT_BATCH_SIZE=str(batch_size))
        command = [PYTHON, "-m", "clientstats", "import", str(file)]
        return with_server_cpu(lambda: checked_import(run_measured(command, env=env), lines))


def run_baseline(file: Path, lines: int, admin_url: str, batch_size: int, tag: str) -> Run:
    """The psycopg COPY baseline in a child process, on a fresh database."""
    with fresh_database(admin_url, f"bench_import_pg_{tag}") as url:
        command = [PYTHON, __file__, "--baseline-child", str(file), url]
        command += ["--batch-size", str(batch_size)]
        return with_server_cpu(lambda: run_child(command, "psycopg COPY", lines))


def measure(args: argparse.Namespace, workdir: Path) -> list[str]:
    """Generate the file, run importer and baseline alternately, build the report."""
    path = workdir / f"events-{args.lines}.jsonl"
    progress(f"generating {path} ({args.lines:,} lines)")
    written = write_file(path, args.lines, args.seed)
    if written != args.lines:
        sys.exit(f"bench_import_postgres: --lines {args.lines} is too small: {written} lines")
    runs: list[Run] = []
    for attempt in range(args.repeat):
        order = (run_product, run_baseline) if attempt % 2 == 0 else (run_baseline, run_product)
        for runner in order:
            progress(f"{args.lines:,} lines: {runner.__name__} (repetition {attempt + 1})")
            tag = f"{os.getpid()}_{attempt}_{runner.__name__.removeprefix('run_')}"
            run = runner(path, args.lines, args.database_url, args.batch_size, tag)
            progress(
                f"  {run.seconds:.1f} s, {run.events_per_s:,.0f} events/s, "
                f"peak RSS {run.max_rss_mib:.0f} MiB"
            )
            runs.append(run)
    return report(args, runs, path)


def report(args: argparse.Namespace, runs: list[Run], path: Path) -> list[str]:
    """The markdown report."""
    lines = markdown_header(
        "Import throughput on PostgreSQL: `clientstats import` vs psycopg COPY",
        "Events/s and peak RSS of `clientstats import FILE` (subprocess, fresh PostgreSQL "
        "database) and of a child that writes the same donation rows into bare tables with "
        "psycopg 3 `COPY ... FROM STDIN` / `write_row`, on the generated event file of "
        "`bench_import.py`.",
    )
    with psycopg.connect(args.database_url) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    server = row[0] if row else "unknown"
    shown_url = urlunsplit(urlsplit(args.database_url)._replace(path="/<fresh database>"))
    lines += [
        f"- postgresql: {server} at `{shown_url}` (one fresh database per run, dropped after)",
        f"- file: {args.lines:,} lines = {path.stat().st_size / 2**20:.0f} MiB "
        f"(seed {args.seed}, generator of bench_import.py)",
        f"- batch size: {args.batch_size} lines per transaction, for both",
        f"- repetitions: {args.repeat} (importer and baseline alternate)",
        "",
        "## Raw figures",
        "",
    ]
    lines += raw_figures(runs)
    medians = {}
    for name in ("clientstats import", "psycopg COPY"):
        same = [r for r in runs if r.importer == name]
        medians[name] = (
            median([r.events_per_s for r in same]),
            median([r.max_rss_mib for r in same]),
        )
    lines += ["", "## Medians", ""]
    lines += table(
        ["lines", "importer", "events/s", "peak RSS MiB"],
        [(f"{args.lines:,}", k, f"{v[0]:,.0f}", f"{v[1]:.0f}") for k, v in medians.items()],
    )
    product, baseline = medians["clientstats import"], medians["psycopg COPY"]
    lines += [
        "",
        "## Result",
        "",
        f"- at {args.lines:,} lines: clientstats import **{product[0]:,.0f} events/s**, "
        f"psycopg COPY {baseline[0]:,.0f} events/s; "
        f"ratio import / baseline **{product[0] / baseline[0]:.3f}**",
        f"- peak RSS: clientstats import **{product[1]:.0f} MiB**, "
        f"psycopg COPY {baseline[1]:.0f} MiB",
    ]
    return lines + time_split(runs)


def time_split(runs: list[Run]) -> list[str]:
    """Medians of the wall time per event and of the CPU time the child and the local server
    spent per event; when both CPUs together took longer than the wall time, the difference
    is work the two did at the same time."""
    measured = [r for r in runs if r.server_cpu_seconds is not None]
    if not measured:
        return ["", "(no local PostgreSQL server processes seen: no CPU time split)"]
    rows = []
    for name in ("clientstats import", "psycopg COPY"):
        same = [r for r in measured if r.importer == name]
        wall = median([per_event_us(r.seconds, r.lines) for r in same])
        client = median([per_event_us(r.cpu_seconds, r.lines) for r in same])
        server = median([per_event_us(r.server_cpu_seconds or 0.0, r.lines) for r in same])
        rows.append((name, f"{wall:.1f}", f"{client:.1f}", f"{server:.1f}"))
        rows[-1] += (f"{max(0.0, client + server - wall):.1f}",)
    return [
        "",
        "## Where the time goes (medians, microseconds per event)",
        "",
        *table(["importer", "wall", "child CPU", "server CPU", "both at once"], rows),
    ]


def main() -> None:
    """Parse options and run the benchmark (or, internally, the baseline child)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000, help="lines of the event file")
    parser.add_argument("--repeat", type=int, default=1, help="repetitions of each")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help="lines per transaction (default: the importer's default)",
    )
    parser.add_argument("--seed", type=int, default=2015)
    parser.add_argument(
        "--database-url",
        default=DEFAULT_URL,
        help="a database of the server where the fresh databases are created (trust auth)",
    )
    parser.add_argument("--workdir", type=Path, help="where the file goes (default: a temp dir)")
    parser.add_argument("--output", type=Path, help="also write the report to this file")
    parser.add_argument("--baseline-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_child:
        file, url = args.baseline_child
        baseline_child(Path(file), url, args.batch_size)
        return
    workdir = Path(tempfile.mkdtemp(prefix="bench-import-pg-", dir=args.workdir))
    try:
        lines = measure(args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    emit(lines, args.output)


if __name__ == "__main__":
    main()
