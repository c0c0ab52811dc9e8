"""Cache-miss latency of one client's statistics on a small and on a very large ledger.

What is measured: the fast path a cache miss takes,
`services.statistics.get_snapshot_or_raise` (one read transaction running
`storage.statistics_queries.client_snapshot` over the maintained aggregates), for a client
with 100 projects, on a ledger of 10 thousand and of 5 million donations. The baseline,
measured in the same run on the same databases, is the naive way: `SUM` over the
`donations` table joined to the client's projects (and over its client, pool, forwarding and
matching donations), computing the very same eight figures. Both are checked to agree.

Goals: the miss latency at 5M is within 1.5x of the latency at 10k (the fast path costs
O(the client's projects), not O(donations)); the fast path is at least 100x faster than the
naive SUM at 5M.

Each round measures the fast path of every ledger in a new child process with its own
engine and connections (`--fast-child`), the ledgers in alternating order, and then the naive
SUM of every ledger in this process. A cache miss in the product happens in a long-running
API process, not in the one that just bulk-loaded 5M rows; measured in the building process,
the PostgreSQL fast path of the 10k ledger ran at 0.41 ms against 0.67 ms for the 5M ledger,
while fresh processes on the very same two schemas measured 0.61-0.65 ms for both, in either
order, with or without a naive scan or `verify` before (the three statements themselves,
timed with psycopg alone, cost the same on both ledgers).

How the ledgers are built (quickly but honestly): the reference data (5 clients, 1,000
projects with 1-3 needs each, memberships, 2 matching funds) goes through
`services.importing.import_lines`, exactly as `clientstats import` applies it. The donations
(platform, client, external, offline, forwardings out of pools, matching donations that follow
the matching rules, about 1 % revoked) are generated deterministically and bulk-inserted
straight into `donations` and `revocations` with `executemany` in chunks of 50,000 rows; then
`project_totals`, `client_totals` and `matching_fund_totals` are recomputed from those tables
with one SQL statement each, so every aggregate is exactly consistent with the ledger.
`services.verification.verify` (the `clientstats verify` logic) then recomputes every figure
of every client from the entries and must find no difference; it runs on every ledger up to
`--verify-up-to` donations (default 100,000; pass a larger value to verify the 5M one too).
The measured client owns 100 of the 1,000 projects, so the naive query reads about a tenth of
the donations through the `project_id` index, plus one pass for the matching donations.

SQLite ledgers of 1M donations or more are cached under /tmp/clientstats-bench/ between
runs (`--rebuild` regenerates them); the report says whether each one was regenerated.
`--database-url postgresql://...` runs the same on PostgreSQL in fresh schemas that are
dropped at the end (never cached; ANALYZE runs after the bulk load, as autovacuum would).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from common import (
    emit,
    markdown_header,
    median,
    percentile,
    progress,
    table,
    verdict,
)
from sqlalchemy import Engine, create_engine, text

from clientstats.domain.stats import Statistics
from clientstats.services.importing import import_lines
from clientstats.services.statistics import get_snapshot_or_raise
from clientstats.services.verification import verify
from clientstats.storage.database import make_engine, normalize_url, write_transaction
from clientstats.storage.schema import ensure_schema

LAYOUT_VERSION = 1  # bump when the generated ledger changes, so cached files are rebuilt
CACHE_DIR = Path("/tmp/clientstats-bench")
TARGET = "bench-target"
CLIENTS = (  # permalink, has a pool, number of projects, share of client donations
    (TARGET, True, 100, 30),
    ("other-1", True, 150, 25),
    ("other-2", False, 150, 20),
    ("other-3", True, 150, 15),
    ("other-4", False, 150, 10),
)
PROJECTS = 1000
FUNDS = ((1, TARGET, 20, 200_000_000, 5_000), (2, "other-1", 20, 50_000_000, 2_500))
CHUNK = 50_000
GIFTS = (500, 1000, 1500, 2000, 2500, 3000, 5000, 7500, 10_000, 25_000, 100_000)
GOAL_GROWTH = 1.5
GOAL_SPEEDUP = 100.0
LEDGER_COLUMNS = (
    "donations", "regenerated", "revoked", "import ref. data s", "bulk insert s",
    "recompute s", "verify",
)  # fmt: skip
LATENCY_COLUMNS = (
    "donations", "fast p50 ms", "fast p90 ms", "fast p99 ms", "naive p50 ms", "naive runs ms",
    "speedup",
)  # fmt: skip
COLUMNS = (
    "token", "channel", "amount_in_cents", "project_id", "pool_client_id", "client_id",
    "client_reference", "tracking_via", "matching_fund_id", "matched_token",
    "redirected_from_project_id", "failure_code", "created_at", "booked_at",
)  # fmt: skip


@dataclass
class Layout:
    """The reference data both the generator and the importer work from."""

    members: dict[str, list[int]]
    funds: list[tuple[int, str, frozenset[int], int, int]]  # id, client, projects, budget, max


def make_layout(seed: int) -> Layout:
    """Deterministic memberships and matching funds."""
    rng = random.Random(seed)
    all_projects = list(range(1, PROJECTS + 1))
    members = {c: sorted(rng.sample(all_projects, count)) for c, _, count, _ in CLIENTS}
    funds = [
        (fund_id, owner, frozenset(rng.sample(members[owner], n)), budget, maximum)
        for fund_id, owner, n, budget, maximum in FUNDS
    ]
    return Layout(members, funds)


def reference_events(layout: Layout, seed: int) -> Iterator[bytes]:
    """Clients, projects, needs, memberships and funds as ledger event lines."""
    rng = random.Random(seed + 1)
    for permalink, pool, _, _ in CLIENTS:
        yield orjson.dumps({"event": "client", "id": permalink, "name": permalink, "pool": pool})
    need_id = 0
    for project_id in range(1, PROJECTS + 1):
        yield orjson.dumps({"event": "project", "id": project_id, "title": f"Project {project_id}"})
        for _ in range(rng.randint(1, 3)):
            need_id += 1
            amount = rng.choice((50_000, 100_000, 250_000, 500_000, 1_000_000, 5_000_000))
            need = {"id": need_id, "project_id": project_id, "requested_amount_in_cents": amount}
            yield orjson.dumps({"event": "need", "title": f"Need {need_id}", **need})
    for permalink, projects in layout.members.items():
        for project_id in projects:
            membership = {"client_id": permalink, "project_id": project_id, "member": True}
            yield orjson.dumps({"event": "client_project", **membership})
    for fund_id, owner, funded, budget, maximum in layout.funds:
        yield orjson.dumps(
            {
                "event": "matching_fund",
                "id": fund_id,
                "client_id": owner,
                "title": f"Fund {fund_id}",
                "provided_amount_in_cents": budget,
                "maximum_matching_amount_in_cents": maximum,
                "state": "activated",
                "project_ids": sorted(funded),
            }
        )


class DonationGenerator:
    """Ledger rows following the booking rules: matching, pools, forwardings, revocations."""

    def __init__(self, layout: Layout, seed: int, dialect: str) -> None:
        self.rng = random.Random(seed + 2)
        self.layout = layout
        self.sqlite = dialect == "sqlite"
        self.pools = {c: 0 for c, pool, _, _ in CLIENTS if pool}
        self.remaining = {f[0]: f[3] for f in layout.funds}
        self.funded_projects = frozenset().union(*(f[2] for f in layout.funds))
        self.booked_at = self._time(datetime(2026, 1, 1, tzinfo=UTC))
        self.start = datetime(2024, 1, 1, tzinfo=UTC)
        self.revocations: list[tuple[Any, ...]] = []

    def _time(self, at: datetime) -> Any:
        # SQLite stores naive UTC text in SQLAlchemy's format; PostgreSQL takes aware datetimes.
        return at.strftime("%Y-%m-%d %H:%M:%S.%f") if self.sqlite else at

    def rows(self, count: int) -> Iterator[tuple[Any, ...]]:
        """`count` donation rows (matching donations included), in booking order."""
        emitted = index = 0
        while emitted < count:
            index += 1
            at = self.start + timedelta(seconds=index * 7)
            for row in self._donation(index, at, last=emitted == count - 1):
                emitted += 1
                yield row

    def _donation(self, index: int, at: datetime, *, last: bool) -> list[tuple[Any, ...]]:
        rng = self.rng
        token, created = f"b{index:09d}", self._time(at)
        amount = rng.choice(GIFTS)
        # The very last row must not bring a matching donation along: the count is exact.
        roll = 0.95 if last else rng.random()
        client = pool = reference = None
        if roll < 0.27:
            client = rng.choices([c[0] for c in CLIENTS], [c[3] for c in CLIENTS])[0]
            channel, reference = "client", f"ref-{index}"
            if client in self.pools and rng.random() < 0.1:
                pool, project = client, None
            else:
                project = rng.choice(self.layout.members[client])
        elif roll < 0.32:
            channel, pool, project = "offline", rng.choice(sorted(self.pools)), None
            amount = rng.choice((10_000, 50_000, 100_000, 300_000))
        elif roll < 0.35 and (forwarding := self._forwarding(index, created)) is not None:
            return [forwarding]
        else:
            channel = "external" if roll > 0.90 else "platform"
            project = rng.randint(1, PROJECTS)
        if pool is not None:
            self.pools[pool] += amount
        tracking = rng.choice(("newsletter", "facebook")) if rng.random() < 0.1 else None
        row = (token, channel, amount, project, pool, client, reference, tracking)
        rows = [(*row, None, None, None, None, created, self.booked_at)]
        matching = self._matching(token, channel, amount, project, created)
        if matching is not None:
            rows.append(matching)
        elif channel != "client" and pool is None and rng.random() < 0.01:
            self.revocations.append((token, created, self.booked_at))
        return rows

    def _forwarding(self, index: int, created: Any) -> tuple[Any, ...] | None:
        client = self.rng.choice(sorted(self.pools))
        amount = self.rng.choice((10_000, 25_000, 50_000))
        if self.pools[client] < amount:
            return None
        self.pools[client] -= amount
        project = self.rng.choice(self.layout.members[client])
        return (
            f"b{index:09d}", "forwarding", amount, project, None, client, f"ref-{index}", None,
            None, None, None, None, created, self.booked_at,
        )  # fmt: skip

    def _matching(
        self, token: str, channel: str, amount: int, project: int | None, created: Any
    ) -> tuple[Any, ...] | None:
        """The lowest-id activated fund with budget left matches."""
        if channel not in ("platform", "client") or project not in self.funded_projects:
            return None
        for fund_id, _, projects, _, maximum in self.layout.funds:
            if project not in projects or self.remaining[fund_id] <= 0:
                continue
            matched = min(amount, maximum, self.remaining[fund_id])
            self.remaining[fund_id] -= matched
            return (
                f"matching:{fund_id}:{token}", "matching", matched, project, None, None, None,
                None, fund_id, token, None, None, created, self.booked_at,
            )  # fmt: skip
        return None


_CONFIRMED = (
    "d.failure_code IS NULL AND NOT EXISTS (SELECT 1 FROM revocations v WHERE v.token = d.token)"
)
RECOMPUTE = (
    f"""UPDATE project_totals SET money_in_cents = COALESCE((
        SELECT SUM(d.amount_in_cents) FROM donations d
        WHERE d.project_id = project_totals.project_id AND {_CONFIRMED}), 0)""",
    f"""UPDATE client_totals SET
        client_donated_in_cents = COALESCE((SELECT SUM(d.amount_in_cents) FROM donations d
            WHERE d.channel = 'client' AND d.client_id = client_totals.client_id
            AND {_CONFIRMED}), 0),
        client_donations_count = (SELECT COUNT(*) FROM donations d
            WHERE d.channel = 'client' AND d.client_id = client_totals.client_id
            AND {_CONFIRMED}),
        pool_in_cents = COALESCE((SELECT SUM(d.amount_in_cents) FROM donations d
            WHERE d.pool_client_id = client_totals.client_id AND {_CONFIRMED}), 0),
        pool_out_cents = COALESCE((SELECT SUM(d.amount_in_cents) FROM donations d
            WHERE d.channel = 'forwarding' AND d.client_id = client_totals.client_id
            AND {_CONFIRMED}), 0),
        version = version + 1""",
    f"""UPDATE matching_fund_totals SET matched_in_cents = COALESCE((
        SELECT SUM(d.amount_in_cents) FROM donations d
        WHERE d.channel = 'matching' AND d.matching_fund_id = matching_fund_totals.fund_id
        AND {_CONFIRMED}), 0)""",
)


def build_ledger(engine: Engine, size: int, seed: int) -> dict[str, Any]:
    """Reference data through the importer, donations in bulk, aggregates recomputed."""
    ensure_schema(engine)
    layout = make_layout(seed)
    started = time.perf_counter()
    report = import_lines(engine, reference_events(layout, seed), batch_size=1000)
    if not report.ok:
        raise RuntimeError(f"reference data rejected: {report.rejected[:5]}")
    imported = time.perf_counter()
    generator = DonationGenerator(layout, seed, engine.dialect.name)
    mark = "?" if engine.dialect.name == "sqlite" else "%s"
    insert = f"INSERT INTO donations ({', '.join(COLUMNS)}) VALUES ({', '.join([mark] * 14)})"
    rows = generator.rows(size)
    inserted = 0
    while chunk := [row for _, row in zip(range(CHUNK), rows, strict=False)]:
        with write_transaction(engine) as conn:
            conn.exec_driver_sql(insert, chunk)
        inserted += len(chunk)
        if inserted % 500_000 == 0:
            progress(f"  {inserted:,} donations inserted")
    revoke = (
        f"INSERT INTO revocations (token, created_at, booked_at) VALUES ({mark}, {mark}, {mark})"
    )
    with write_transaction(engine) as conn:
        for start in range(0, len(generator.revocations), CHUNK):
            conn.exec_driver_sql(revoke, generator.revocations[start : start + CHUNK])
    bulk = time.perf_counter()
    with write_transaction(engine) as conn:
        for statement in RECOMPUTE:
            conn.execute(text(statement))
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
    done = time.perf_counter()
    return {
        "layout_version": LAYOUT_VERSION,
        "seed": seed,
        "donations": inserted,
        "revocations": len(generator.revocations),
        "reference_lines": report.lines,
        "import_seconds": round(imported - started, 1),
        "bulk_insert_seconds": round(bulk - imported, 1),
        "recompute_seconds": round(done - bulk, 1),
        "built_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
    }


def naive_statistics(engine: Engine, permalink: str) -> Statistics:
    """The same figures the slow way: SUM over the donations themselves."""
    confirmed = "d.failure_code IS NULL AND v.id IS NULL"
    revoked_join = "LEFT JOIN revocations v ON v.token = d.token"
    with engine.connect() as conn, conn.begin():
        c = {"c": permalink}
        has_pool = conn.execute(
            text("SELECT has_pool FROM clients WHERE permalink = :c"), c
        ).scalar_one()
        requested: dict[int, int] = dict(
            conn.execute(
                text(
                    "SELECT cp.project_id, COALESCE(SUM(n.requested_amount_in_cents), 0) "
                    "FROM client_projects cp LEFT JOIN needs n ON n.project_id = cp.project_id "
                    "WHERE cp.client_id = :c GROUP BY cp.project_id"
                ),
                c,
            ).all()
        )
        money: dict[int, int] = dict(
            conn.execute(
                text(
                    "SELECT d.project_id, SUM(d.amount_in_cents) FROM donations d "
                    "JOIN client_projects cp ON cp.project_id = d.project_id "
                    f"{revoked_join} WHERE cp.client_id = :c AND {confirmed} "
                    "GROUP BY d.project_id"
                ),
                c,
            ).all()
        )

        def total(where: str, what: str = "COALESCE(SUM(d.amount_in_cents), 0)") -> Any:
            query = f"SELECT {what} FROM donations d {revoked_join} WHERE {where} AND {confirmed}"
            return conn.execute(text(query), c).one()

        donated, count = total(
            "d.channel = 'client' AND d.client_id = :c",
            "COALESCE(SUM(d.amount_in_cents), 0), COUNT(*)",
        )
        (pool_in,) = total("d.pool_client_id = :c")
        (pool_out,) = total("d.channel = 'forwarding' AND d.client_id = :c")
        (matched,) = total(
            "d.channel = 'matching' AND d.matching_fund_id IN "
            "(SELECT f.id FROM matching_funds f WHERE f.client_id = :c)"
        )
    requested_sum = sum(int(r) for r in requested.values())
    open_sum = sum(max(0, int(r) - int(money.get(p, 0))) for p, r in requested.items())
    return Statistics(
        donated_amount_in_cents=requested_sum - open_sum,
        pool_balance_in_cents=int(pool_in) - int(pool_out) if has_pool else 0,
        open_amount_in_cents=open_sum,
        requested_amount_in_cents=requested_sum,
        projects_count=len(requested),
        client_donated_amount_in_cents=int(donated),
        client_matched_amount_in_cents=int(matched),
        client_donations_count=int(count),
    )


@dataclass
class Ledger:
    """One prepared database and what is known about it."""

    size: int
    url: str
    engine: Engine
    built: dict[str, Any]
    regenerated: bool
    verified: str = "not run"


def sqlite_ledger(size: int, args: argparse.Namespace, workdir: Path) -> Ledger:
    """A SQLite ledger, taken from the /tmp cache when it holds an identical one."""
    cached = size >= args.cache_min
    path = CACHE_DIR / f"miss-ledger-{size}.db" if cached else workdir / f"ledger-{size}.db"
    meta_path = path.with_suffix(".json")
    wanted = {"layout_version": LAYOUT_VERSION, "seed": args.seed}
    if cached and not args.rebuild and path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if all(meta.get(k) == v for k, v in wanted.items()):
            engine = make_engine(f"sqlite:///{path}")
            try:
                ensure_schema(engine)
                progress(f"{size:,}: reusing cached {path} (built {meta['built_at']})")
                return Ledger(size, f"sqlite:///{path}", engine, meta, regenerated=False)
            except Exception as exc:  # an outdated schema: rebuild below
                progress(f"{size:,}: cached {path} unusable ({exc}); rebuilding")
                engine.dispose()
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), meta_path):
        stale.unlink(missing_ok=True)
    progress(f"{size:,}: building {path}")
    engine = make_engine(f"sqlite:///{path}")
    meta = build_ledger(engine, size, args.seed)
    engine.dispose()
    with sqlite3.connect(path) as raw:  # fold the WAL in, so the cached file stands alone
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    if cached:
        meta_path.write_text(json.dumps(meta, indent=1))
    return Ledger(size, f"sqlite:///{path}", make_engine(f"sqlite:///{path}"), meta, True)


def postgres_ledger(size: int, args: argparse.Namespace) -> Ledger:
    """A PostgreSQL ledger in a fresh schema of the given database."""
    schema = f"bench_miss_{size}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(normalize_url(args.database_url))
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    admin.dispose()
    joiner = "&" if "?" in args.database_url else "?"
    url = f"{args.database_url}{joiner}options=-csearch_path%3D{schema}"
    progress(f"{size:,}: building PostgreSQL schema {schema}")
    engine = make_engine(url)
    meta = build_ledger(engine, size, args.seed)
    meta["schema"] = schema
    return Ledger(size, url, engine, meta, regenerated=True)


def drop_postgres(ledgers: list[Ledger], args: argparse.Namespace) -> None:
    """Drop the schemas this run created."""
    admin = create_engine(normalize_url(args.database_url))
    with admin.begin() as conn:
        for ledger in ledgers:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {ledger.built['schema']} CASCADE"))
    admin.dispose()


def timed_ms(call: Any) -> tuple[float, Any]:
    """Run `call` once; its duration in ms and its result."""
    started = time.perf_counter_ns()
    result = call()
    return (time.perf_counter_ns() - started) / 1e6, result


def fast_path_in_child(ledger: Ledger, calls: int, warmup: int) -> list[float]:
    """Timings (ms) of `calls` fast-path calls in a new process with its own engine."""
    command = [sys.executable, __file__, "--fast-child", ledger.url, "--calls", str(calls)]
    done = subprocess.run(
        [*command, "--warmup", str(warmup)], capture_output=True, text=True, check=True
    )
    timings: list[float] = json.loads(done.stdout)
    return timings


def fast_child(url: str, calls: int, warmup: int) -> None:
    """The child of fast_path_in_child: print the timings as JSON."""
    engine = make_engine(url)
    for _ in range(warmup):
        get_snapshot_or_raise(engine, TARGET)
    timings = [timed_ms(lambda: get_snapshot_or_raise(engine, TARGET))[0] for _ in range(calls)]
    engine.dispose()
    print(json.dumps(timings))


def measure(ledgers: list[Ledger], args: argparse.Namespace) -> dict[int, dict[str, Any]]:
    """Fast path and naive baseline, interleaved across ledgers round by round."""
    results: dict[int, dict[str, Any]] = {}
    for ledger in ledgers:
        for _ in range(args.warmup):
            get_snapshot_or_raise(ledger.engine, TARGET)
        figures = get_snapshot_or_raise(ledger.engine, TARGET).statistics
        naive_ms, slow = timed_ms(lambda e=ledger.engine: naive_statistics(e, TARGET))
        if figures != slow:
            raise RuntimeError(f"{ledger.size:,}: fast path {figures} != naive {slow}")
        results[ledger.size] = {"fast": [], "naive": [], "figures": figures}
        progress(f"{ledger.size:,}: fast path and naive SUM agree; naive warm-up {naive_ms:.0f} ms")
    per_round = max(1, args.calls // args.rounds)
    for round_ in range(1, args.rounds + 1):
        order = ledgers if round_ % 2 else ledgers[::-1]
        for ledger in order:
            results[ledger.size]["fast"] += fast_path_in_child(ledger, per_round, args.warmup)
        for ledger in order:
            engine, mine = ledger.engine, results[ledger.size]
            mine["naive"] += [
                timed_ms(lambda e=engine: naive_statistics(e, TARGET))[0]
                for _ in range(args.naive_calls_per_round)
            ]
            progress(
                f"round {round_} {ledger.size:,}: fast median {median(mine['fast']):.3f} ms, "
                f"naive median {median(mine['naive']):.1f} ms"
            )
    return results


def report(
    ledgers: list[Ledger], results: dict[int, dict[str, Any]], args: argparse.Namespace
) -> list[str]:
    """The markdown report."""
    backend = "SQLite" if args.database_url is None else "PostgreSQL"
    lines = markdown_header(
        f"Statistics cache miss: fast path vs naive SUM ({backend})",
        "Latency of `services.statistics.get_snapshot_or_raise` (the cache-miss fast path over "
        "the maintained aggregates) for a client with 100 projects, and of a naive `SUM` over "
        "the donations computing the same figures, on ledgers of different sizes, round by "
        "round: the fast path of each ledger in a new child process, then the naive SUMs.",
    )
    lines += [
        f"- database: {backend}"
        + (f" ({args.database_url}, fresh schemas)" if args.database_url else " files"),
        f"- fast path: {args.calls} calls per ledger in {args.rounds} rounds, each round in a "
        f"new process ({args.warmup} warm-up calls each); ledger order alternating; naive: "
        f"{args.naive_calls_per_round} call(s) per round",
        "",
        "## Ledgers",
        "",
    ]
    lines += table(
        LEDGER_COLUMNS,
        [
            (
                f"{ledger.size:,}",
                "yes" if ledger.regenerated else f"no (cached, built {ledger.built['built_at']})",
                f"{ledger.built['revocations']:,}",
                ledger.built["import_seconds"],
                ledger.built["bulk_insert_seconds"],
                ledger.built["recompute_seconds"],
                ledger.verified,
            )
            for ledger in ledgers
        ],
    )
    lines += ["", "## Latency", ""]
    rows = []
    for ledger in ledgers:
        mine = results[ledger.size]
        fast, naive = mine["fast"], mine["naive"]
        rows.append(
            (
                f"{ledger.size:,}",
                f"{median(fast):.3f}",
                f"{percentile(fast, 0.9):.3f}",
                f"{percentile(fast, 0.99):.3f}",
                f"{median(naive):.1f}",
                ", ".join(f"{x:.0f}" for x in naive),
                f"{median(naive) / median(fast):,.0f}x",
            )
        )
    lines += table(
        LATENCY_COLUMNS,
        rows,
    )
    small, large = results[ledgers[0].size], results[ledgers[-1].size]
    growth = median(large["fast"]) / median(small["fast"])
    speedup = median(large["naive"]) / median(large["fast"])
    figures = large["figures"]
    lines += [
        "",
        f"Figures of {TARGET} on the largest ledger (fast path and naive agree): "
        f"`{orjson.dumps(figures.as_response()).decode()}`",
        "",
        "## Goals",
        "",
        f"- miss latency {ledgers[-1].size:,} / {ledgers[0].size:,} (medians): "
        f"**{growth:.2f}x**; goal within {GOAL_GROWTH}x: {verdict(growth <= GOAL_GROWTH)}",
        f"- speedup over the naive SUM at {ledgers[-1].size:,}: **{speedup:,.0f}x**; "
        f"goal >= {GOAL_SPEEDUP:.0f}x: {verdict(speedup >= GOAL_SPEEDUP)}",
    ]
    return lines


def main() -> None:
    """Parse options, build or reuse the ledgers, measure, report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,5000000", help="donation counts, comma-separated")
    parser.add_argument("--database-url", help="postgresql://... to run on PostgreSQL")
    parser.add_argument("--calls", type=int, default=200, help="fast-path calls per ledger")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--naive-calls-per-round", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=20, help="fast-path warm-up calls")
    parser.add_argument("--seed", type=int, default=2015)
    parser.add_argument("--verify-up-to", type=int, default=100_000)
    parser.add_argument("--cache-min", type=int, default=1_000_000, help="cache ledgers >= this")
    parser.add_argument("--rebuild", action="store_true", help="regenerate cached ledgers")
    parser.add_argument("--output", type=Path, help="also write the report to this file")
    parser.add_argument("--fast-child", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fast_child:
        fast_child(args.fast_child, args.calls, args.warmup)
        return
    if args.database_url and not args.database_url.startswith(("postgresql://", "postgres://")):
        sys.exit("bench_cache_miss: --database-url must be a postgresql:// URL")
    sizes = sorted(int(s) for s in args.sizes.split(","))
    workdir = Path(CACHE_DIR / f"run-{uuid.uuid4().hex[:8]}")
    ledgers: list[Ledger] = []
    try:
        for size in sizes:
            if args.database_url:
                ledger = postgres_ledger(size, args)
            else:
                ledger = sqlite_ledger(size, args, workdir)
            ledgers.append(ledger)
            if size <= args.verify_up_to:
                progress(f"{size:,}: verifying every client's figures against the ledger")
                checked = verify(ledger.engine)
                if checked.differences:
                    raise RuntimeError(f"verify found differences: {checked.differences[:5]}")
                ledger.verified = f"0 differences over {checked.entries:,} entries"
        results = measure(ledgers, args)
        lines = report(ledgers, results, args)
    finally:
        for ledger in ledgers:
            ledger.engine.dispose()
        if args.database_url and ledgers:
            drop_postgres(ledgers, args)
        shutil.rmtree(workdir, ignore_errors=True)
    emit(lines, args.output)


if __name__ == "__main__":
    main()
