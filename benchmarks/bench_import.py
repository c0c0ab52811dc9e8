"""Throughput and peak memory of `clientstats import FILE` against a plain sqlite3 insert.

What is measured: events/s of `clientstats import FILE` run as a subprocess on a fresh
SQLite database, for a generated file of N lines (default 1,000,000) of realistic ledger
events: reference data first (5 clients, 2,000 projects, their needs, memberships, 3
matching funds), then mostly donations of every importable channel (platform, client to
projects and pools, external, offline), about 2 % forwardings, 1 % revocations and a few
late needs, in time order. The importer applies the booking rules: matching funds book their
matching donations, client donations to closed projects are redirected to pools, every
aggregate is maintained. The file is built so that every line applies (the run checks it).

Baseline, measured in the same run: a child process that reads the same file, parses each
line with orjson and inserts the same donation, forwarding and revocation rows with plain
sqlite3 `executemany` into bare tables with the same columns (no constraints, no indexes,
no booking rules), one transaction per batch of the same size, WAL and synchronous=NORMAL
like the product. It is the floor of "getting the rows into SQLite from Python".

Also reported: the peak RSS (ru_maxrss from wait4) of each child, for the N-line file and a
10x smaller one, to show that the importer's memory stays flat as the file grows; and with
`--profile`, the top cProfile hotspots of importing `--profile-lines` timeline lines (after
the reference data, which is imported unprofiled).

Goal: no fixed number; the report gives the events/s of both, their ratio, and the peak RSS
of the import at N and N/10 (flat means about equal). A 1M-line import takes minutes.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import random
import shutil
import sqlite3
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
from common import (
    PYTHON,
    Finished,
    clientstats_env,
    emit,
    local_postgres_cpu_seconds,
    markdown_header,
    median,
    progress,
    run_measured,
    table,
)

from clientstats.services.importing import DEFAULT_BATCH_SIZE

CLIENTS = (  # permalink, has a pool, projects, share of client donations, reference prefix
    ("volksfreund", True, 400, 35, "vf"),
    ("acme", False, 150, 15, "acme"),
    ("stadtwerke-nord", True, 250, 20, "swn"),
    ("tageblatt", False, 200, 15, "tb"),
    ("kiezbank", True, 300, 15, "kb"),
)
PROJECTS = 2000
GIFTS = (500, 1000, 1500, 2000, 2500, 3000, 5000, 7500, 10_000, 25_000, 100_000)
GIFT_WEIGHTS = (6, 14, 5, 12, 12, 6, 14, 4, 8, 3, 1)
CET = timezone(timedelta(hours=1))
START = datetime(2025, 1, 1, tzinfo=CET)


class EventFile:
    """A deterministic generator of a realistic event stream of an exact number of lines."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.accepting: list[int] = []
        self.refusing: set[int] = set()
        self.members: dict[str, list[int]] = {}
        self.pools = {c[0]: 0 for c in CLIENTS if c[1]}
        self.references = dict.fromkeys((c[0] for c in CLIENTS), 0)
        self.recent: list[tuple[str, str | None, int]] = []  # token, pool, amount
        self.revoked: set[str] = set()
        self.need_id = 0
        self.counter = 0

    def lines(self, count: int) -> Iterator[bytes]:
        """Exactly `count` lines (at least the reference data)."""
        emitted = 0
        for event in self._reference():
            emitted += 1
            yield orjson.dumps(event)
        while emitted < count:
            timeline = self._timeline_event(emitted)
            if timeline is not None:
                emitted += 1
                yield orjson.dumps(timeline)

    def _reference(self) -> Iterator[dict[str, Any]]:
        rng = self.rng
        for permalink, pool, _, _, _ in CLIENTS:
            yield {"event": "client", "id": permalink, "name": permalink.title(), "pool": pool}
        for project_id in range(1, PROJECTS + 1):
            closed, prohibited = rng.random() < 0.02, rng.random() < 0.01
            if closed or prohibited:
                self.refusing.add(project_id)
            else:
                self.accepting.append(project_id)
            yield {
                "event": "project",
                "id": project_id,
                "title": f"Project {project_id}",
                "closed": closed,
                "donations_prohibited": prohibited,
            }
            for _ in range(rng.randint(1, 4)):
                yield self._need(project_id)
        for permalink, _, count, _, _ in CLIENTS:
            self.members[permalink] = sorted(rng.sample(range(1, PROJECTS + 1), count))
            for project_id in self.members[permalink]:
                yield {
                    "event": "client_project",
                    "client_id": permalink,
                    "project_id": project_id,
                    "member": True,
                }
        for fund_id, owner in enumerate(("volksfreund", "acme", "kiezbank"), start=1):
            yield {
                "event": "matching_fund",
                "id": fund_id,
                "client_id": owner,
                "title": f"Fund {fund_id}",
                "provided_amount_in_cents": rng.choice((5_000_000, 20_000_000, 100_000_000)),
                "maximum_matching_amount_in_cents": rng.choice((2_500, 5_000, 10_000)),
                "state": "closed" if fund_id == 3 else "activated",
                "project_ids": sorted(rng.sample(self.members[owner], 30)),
            }

    def _need(self, project_id: int) -> dict[str, Any]:
        self.need_id += 1
        return {
            "event": "need",
            "id": self.need_id,
            "project_id": project_id,
            "title": self.rng.choice(("Material", "Staff", "Transport", "Rent", "Tools")),
            "requested_amount_in_cents": self.rng.choice((50_000, 250_000, 1_000_000, 5_000_000)),
        }

    def _timeline_event(self, index: int) -> dict[str, Any] | None:
        roll = self.rng.random()
        at = (START + timedelta(seconds=index * 30)).isoformat()
        if roll < 0.01:
            return self._revocation()
        if roll < 0.03:
            return self._forwarding(at)
        if roll < 0.031:
            return self._need(self.rng.choice(self.accepting))
        return self._donation(at)

    def _reference_of(self, client: str) -> str:
        self.references[client] += 1
        prefix = next(c[4] for c in CLIENTS if c[0] == client)
        return f"{prefix}-{self.references[client]:08d}"

    def _donation(self, at: str) -> dict[str, Any]:
        rng = self.rng
        self.counter += 1
        token = f"d{self.counter:08d}"
        amount = rng.choices(GIFTS, GIFT_WEIGHTS)[0]
        channel = rng.choices(("platform", "client", "external", "offline"), (55, 27, 10, 5))[0]
        event: dict[str, Any] = {"event": "donation", "token": token, "channel": channel}
        pool = None
        if channel == "client":
            client = rng.choices([c[0] for c in CLIENTS], [c[3] for c in CLIENTS])[0]
            event["client_id"] = client
            event["client_reference"] = self._reference_of(client)
            project = rng.choice(self.members[client])
            if client in self.pools and (rng.random() < 0.1 or project in self.refusing):
                pool = client  # sent to the pool, or redirected there from a closed project
            elif project in self.refusing:
                project = rng.choice([p for p in self.members[client] if p not in self.refusing])
            if pool is not None and rng.random() < 0.5:
                event["receiver"] = {"type": "pool", "client_id": client}
            else:
                event["receiver"] = {"type": "project", "id": project}
                pool = pool if project in self.refusing else None
        elif channel == "offline":
            pool = rng.choice(sorted(self.pools))
            amount = rng.choice((10_000, 50_000, 100_000, 300_000))
            event["receiver"] = {"type": "pool", "client_id": pool}
        else:
            event["receiver"] = {"type": "project", "id": rng.choice(self.accepting)}
        if pool is not None:
            self.pools[pool] += amount
        if rng.random() < 0.1:
            event["tracking_via"] = rng.choice(("newsletter", "facebook", "print-ad"))
        event["amount_in_cents"] = amount
        event["created_at"] = at
        self.recent.append((token, pool, amount))
        if len(self.recent) > 500:
            del self.recent[:250]
        return event

    def _forwarding(self, at: str) -> dict[str, Any] | None:
        client = self.rng.choice(sorted(self.pools))
        amount = self.rng.choice((10_000, 25_000, 50_000, 100_000))
        if self.pools[client] < amount:
            return None
        self.pools[client] -= amount
        self.counter += 1
        accepting = [p for p in self.members[client] if p not in self.refusing]
        return {
            "event": "forwarding",
            "token": f"f{self.counter:08d}",
            "client_id": client,
            "project_id": self.rng.choice(accepting),
            "amount_in_cents": amount,
            "client_reference": self._reference_of(client),
            "created_at": at,
        }

    def _revocation(self) -> dict[str, Any] | None:
        if not self.recent:
            return None
        token, pool, amount = self.rng.choice(self.recent)
        if token in self.revoked or (pool is not None and self.pools[pool] < amount):
            return None  # never revoke money a pool has already passed on
        self.revoked.add(token)
        if pool is not None:
            self.pools[pool] -= amount
        return {"event": "revocation", "token": token}


def write_file(path: Path, lines: int, seed: int) -> int:
    """Write the event file; its line count (never less than the reference data)."""
    written = 0
    with path.open("wb") as out:
        for line in EventFile(seed).lines(lines):
            out.write(line + b"\n")
            written += 1
    return written


# -- the baseline, run as a child process of this script ---------------------------------

BARE_TABLES = (
    """CREATE TABLE donations (id INTEGER PRIMARY KEY, token TEXT, channel TEXT,
    amount_in_cents INTEGER, project_id INTEGER, pool_client_id TEXT, client_id TEXT,
    client_reference TEXT, tracking_via TEXT, matching_fund_id INTEGER, matched_token TEXT,
    redirected_from_project_id INTEGER, failure_code TEXT, created_at TEXT, booked_at TEXT)""",
    "CREATE TABLE revocations (id INTEGER PRIMARY KEY, token TEXT, created_at TEXT, "
    "booked_at TEXT)",
)
# By column name, so the same statements fill the product's tables too (bench_import_floor.py).
INSERT_DONATION = (
    "INSERT INTO donations (token, channel, amount_in_cents, project_id, pool_client_id, "
    "client_id, client_reference, tracking_via, matching_fund_id, matched_token, "
    "redirected_from_project_id, failure_code, created_at, booked_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_REVOCATION = "INSERT INTO revocations (token, created_at, booked_at) VALUES (?, ?, ?)"


def _utc(value: str | None, now: str) -> str:
    if value is None:
        return now
    return datetime.fromisoformat(value).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _row(event: dict[str, Any], now: str) -> tuple[Any, ...]:
    receiver = event.get("receiver") or {"type": "project", "id": event.get("project_id")}
    project = receiver.get("id") if receiver["type"] == "project" else None
    pool = receiver.get("client_id") if receiver["type"] == "pool" else None
    channel = event.get("channel", "forwarding")
    return (
        event["token"], channel, event["amount_in_cents"], project, pool, event.get("client_id"),
        event.get("client_reference"), event.get("tracking_via"), None, None, None, None,
        _utc(event.get("created_at"), now), now,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class RowBatch:
    """One batch of the event file as the bare rows a baseline writes."""

    lines: int
    donations: list[tuple[Any, ...]]
    revocations: list[tuple[str, str, str]]


def row_batches(
    file: Path, batch_size: int, other: Callable[[list[bytes]], None] | None = None
) -> Iterator[RowBatch]:
    """The file's donation, forwarding and revocation rows, `batch_size` lines at a time.

    The batch's other lines (reference data) go to `other` first, if given, else nowhere.
    """
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    with file.open("rb") as stream:
        while batch := [line for _, line in zip(range(batch_size), stream, strict=False)]:
            donations, revocations, others = [], [], []
            for line in batch:
                event = orjson.loads(line)
                kind = event["event"]
                if kind in ("donation", "forwarding"):
                    donations.append(_row(event, now))
                elif kind == "revocation":
                    revocations.append((event["token"], now, now))
                else:
                    others.append(line)
            if other is not None and others:
                other(others)
            yield RowBatch(len(batch), donations, revocations)


def insert_batches(conn: sqlite3.Connection, batches: Iterable[RowBatch]) -> dict[str, int]:
    """Insert each batch's rows with executemany in a transaction of its own."""
    lines = rows = 0
    for batch in batches:
        conn.execute("BEGIN")
        conn.executemany(INSERT_DONATION, batch.donations)
        conn.executemany(INSERT_REVOCATION, batch.revocations)
        conn.execute("COMMIT")
        lines += batch.lines
        rows += len(batch.donations) + len(batch.revocations)
    return {"lines": lines, "rows": rows}


def baseline_child(file: Path, database: Path, batch_size: int) -> None:
    """Insert the file's donation, forwarding and revocation rows with plain executemany."""
    conn = sqlite3.connect(database, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    for statement in BARE_TABLES:
        conn.execute(statement)
    counts = insert_batches(conn, row_batches(file, batch_size))
    conn.close()
    print(json.dumps(counts))


# -- the measurement -------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One measured child process."""

    lines: int
    importer: str
    seconds: float
    max_rss_mib: float
    summary: str
    cpu_seconds: float = 0.0  # the child's own user + system time
    server_cpu_seconds: float | None = None  # a local database server's, while it ran

    @property
    def events_per_s(self) -> float:
        return self.lines / self.seconds


def run_product(file: Path, lines: int, workdir: Path, batch_size: int) -> Run:
    """`clientstats import FILE` on a fresh SQLite database."""
    database = workdir / "product.db"
    _remove_database(database)
    env = clientstats_env(f"sqlite:///{database}", CLIENTSTATS_IMPORT_BATCH_SIZE=str(batch_size))
    run = checked_import(
        run_measured([PYTHON, "-m", "clientstats", "import", str(file)], env=env), lines
    )
    _remove_database(database)
    return run


def checked_import(done: Finished, lines: int) -> Run:
    """The Run of a finished `clientstats import`; an error unless it applied every line."""
    summary = done.stdout.decode().strip().splitlines()[-1] if done.stdout else ""
    if done.returncode != 0:
        raise RuntimeError(f"import failed ({done.returncode}): {done.stderr.decode()[-2000:]}")
    parsed = json.loads(summary)
    if parsed["rejected"] or parsed["failed"] or parsed["applied"] != lines:
        raise RuntimeError(f"import did not apply every line: {summary}")
    return Run(
        lines, "clientstats import", done.seconds, done.max_rss_mib, summary, done.cpu_seconds
    )


def run_child(command: list[str], importer: str, lines: int) -> Run:
    """A child process of a benchmark script measured as a Run; its stdout is the summary."""
    done = run_measured(command)
    if done.returncode != 0:
        raise RuntimeError(f"{importer} failed: {done.stderr.decode()[-2000:]}")
    summary = done.stdout.decode().strip()
    return Run(lines, importer, done.seconds, done.max_rss_mib, summary, done.cpu_seconds)


def run_baseline(file: Path, lines: int, workdir: Path, batch_size: int) -> Run:
    """The plain sqlite3 executemany baseline in a child process."""
    database = workdir / "baseline.db"
    _remove_database(database)
    command = [PYTHON, __file__, "--baseline-child", str(file), str(database)]
    run = run_child([*command, "--batch-size", str(batch_size)], "sqlite3 executemany", lines)
    _remove_database(database)
    return run


def with_server_cpu(measure: Callable[[], Run]) -> Run:
    """`measure()`, with the CPU time the local PostgreSQL server spent meanwhile (if seen)."""
    before = local_postgres_cpu_seconds()
    run = measure()
    after = local_postgres_cpu_seconds()
    if before is None or after is None:
        return run
    return replace(run, server_cpu_seconds=after - before)


def _remove_database(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def profile_import(file: Path, workdir: Path, args: argparse.Namespace) -> list[str]:
    """cProfile the donation part of an import: reference data first (not profiled), then
    the next `--profile-lines` timeline lines; the top functions by own and cumulative time."""
    from clientstats.services.importing import import_lines
    from clientstats.storage.database import make_engine
    from clientstats.storage.schema import ensure_schema

    with file.open("rb") as stream:
        lines = stream.readlines()
    first_timeline = next(i for i, line in enumerate(lines) if b'"event":"donation"' in line)
    timeline = lines[first_timeline : first_timeline + args.profile_lines]
    database = workdir / "profile.db"
    _remove_database(database)
    engine = make_engine(f"sqlite:///{database}")
    ensure_schema(engine)
    import_lines(engine, lines[:first_timeline], batch_size=args.batch_size)
    profiler = cProfile.Profile()
    profiler.enable()
    report = import_lines(engine, timeline, batch_size=args.batch_size)
    profiler.disable()
    engine.dispose()
    _remove_database(database)
    result = [
        f"`import_lines` on {len(timeline):,} timeline lines (donations, forwardings, "
        f"revocations, after {first_timeline:,} reference lines imported unprofiled) "
        f"under cProfile, in-process: {report.summary()}",
        "",
    ]
    for order in ("tottime", "cumulative"):
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text).strip_dirs().sort_stats(order)
        stats.print_stats(args.top)
        body = text.getvalue()
        body = body[body.index("   ncalls") :] if "   ncalls" in body else body
        result += [f"Top {args.top} by {order}:", "", "```", body.rstrip(), "```", ""]
    return result


def measure(args: argparse.Namespace, workdir: Path) -> list[str]:
    """Generate both files, run importer and baseline alternately, build the report."""
    small_lines = max(1, args.lines // 10)
    files = {}
    for lines in (small_lines, args.lines):
        path = workdir / f"events-{lines}.jsonl"
        progress(f"generating {path} ({lines:,} lines)")
        written = write_file(path, lines, args.seed)
        if written != lines:
            sys.exit(f"bench_import: --lines {args.lines} is too small: {lines} < {written}")
        files[lines] = path
    runs: list[Run] = []
    plan = [(small_lines, args.small_repeat), (args.lines, args.repeat)]
    for lines, repeat in plan:
        for attempt in range(repeat):
            order = (run_product, run_baseline) if attempt % 2 == 0 else (run_baseline, run_product)
            for runner in order:
                progress(f"{lines:,} lines: {runner.__name__} (repetition {attempt + 1})")
                run = runner(files[lines], lines, workdir, args.batch_size)
                progress(
                    f"  {run.seconds:.1f} s, {run.events_per_s:,.0f} events/s, "
                    f"peak RSS {run.max_rss_mib:.0f} MiB"
                )
                runs.append(run)
    profile = []
    if args.profile:
        progress(f"profiling the import of {args.profile_lines:,} timeline lines")
        profile = profile_import(files[args.lines], workdir, args)
    return report(args, runs, files, profile)


def raw_figures(runs: list[Run]) -> list[str]:
    """The table of every run, as the import reports print it, with the time per event
    spent as wall time, as CPU time of the child and (on a local PostgreSQL) of the server."""
    server = any(r.server_cpu_seconds is not None for r in runs)
    header = ["lines", "importer", "seconds", "events/s", "wall us/event", "CPU us/event"]
    header += ["server CPU us/event"] if server else []
    rows = []
    for r in runs:
        row = [f"{r.lines:,}", r.importer, f"{r.seconds:.1f}", f"{r.events_per_s:,.0f}"]
        row += [
            f"{per_event_us(r.seconds, r.lines):.1f}",
            f"{per_event_us(r.cpu_seconds, r.lines):.1f}",
        ]
        if server:
            used = r.server_cpu_seconds
            row.append("-" if used is None else f"{per_event_us(used, r.lines):.1f}")
        rows.append([*row, f"{r.max_rss_mib:.0f}", f"`{r.summary}`"])
    return table([*header, "peak RSS MiB", "summary"], rows)


def per_event_us(seconds: float, lines: int) -> float:
    return seconds / lines * 1e6


def report(
    args: argparse.Namespace, runs: list[Run], files: dict[int, Path], profile: list[str]
) -> list[str]:
    """The markdown report."""
    lines = markdown_header(
        "Import throughput: `clientstats import` vs plain sqlite3 executemany",
        "Events/s and peak RSS of `clientstats import FILE` (subprocess, fresh SQLite "
        "database) and of a child that inserts the same donation rows into bare tables "
        "with sqlite3 executemany, on generated event files of N and N/10 lines.",
    )
    sizes = ", ".join(f"{n:,} lines = {p.stat().st_size / 2**20:.0f} MiB" for n, p in files.items())
    lines += [
        f"- files: {sizes} (seed {args.seed})",
        f"- batch size: {args.batch_size} lines per transaction, for both",
        f"- repetitions: {args.small_repeat} at N/10, {args.repeat} at N "
        "(importer and baseline alternate)",
        "",
        "## Raw figures",
        "",
    ]
    lines += raw_figures(runs)
    medians = {}
    for run in runs:
        key = (run.lines, run.importer)
        if key not in medians:
            same = [r for r in runs if (r.lines, r.importer) == key]
            medians[key] = (
                median([r.events_per_s for r in same]),
                median([r.max_rss_mib for r in same]),
            )
    lines += ["", "## Medians", ""]
    lines += table(
        ["lines", "importer", "events/s", "peak RSS MiB"],
        [(f"{k[0]:,}", k[1], f"{v[0]:,.0f}", f"{v[1]:.0f}") for k, v in medians.items()],
    )
    big, small = args.lines, max(1, args.lines // 10)
    product, baseline = medians[(big, "clientstats import")], medians[(big, "sqlite3 executemany")]
    small_rss = medians[(small, "clientstats import")][1]
    lines += [
        "",
        "## Result",
        "",
        f"- at {big:,} lines: clientstats import **{product[0]:,.0f} events/s**, "
        f"plain executemany {baseline[0]:,.0f} events/s; "
        f"ratio import / baseline **{product[0] / baseline[0]:.3f}**",
        f"- peak RSS of the import: **{product[1]:.0f} MiB** at {big:,} lines, "
        f"**{small_rss:.0f} MiB** at {small:,} lines (ratio {product[1] / small_rss:.2f})",
    ]
    if profile:
        lines += ["", "## Profile", "", *profile]
    return lines


def main() -> None:
    """Parse options and run the benchmark (or, internally, the baseline child)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000, help="lines of the big file")
    parser.add_argument("--repeat", type=int, default=1, help="repetitions at --lines")
    parser.add_argument("--small-repeat", type=int, default=3, help="repetitions at lines/10")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help="lines per transaction (default: the importer's default)",
    )
    parser.add_argument("--seed", type=int, default=2015)
    parser.add_argument("--profile", action="store_true", help="cProfile part of an import")
    parser.add_argument("--profile-lines", type=int, default=20_000, help="lines --profile runs")
    parser.add_argument("--top", type=int, default=20, help="hotspots listed by --profile")
    parser.add_argument("--workdir", type=Path, help="where files go (default: a temp dir)")
    parser.add_argument("--output", type=Path, help="also write the report to this file")
    parser.add_argument("--baseline-child", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_child:
        file, database = args.baseline_child
        baseline_child(file, database, args.batch_size)
        return
    workdir = Path(tempfile.mkdtemp(prefix="bench-import-", dir=args.workdir))
    try:
        lines = measure(args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    emit(lines, args.output)


if __name__ == "__main__":
    main()
