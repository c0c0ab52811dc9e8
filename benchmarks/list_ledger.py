"""The ledgers of bench_lists.py: one client with 10,000 projects and a fifth of all donations.

Not a benchmark itself. `ledger(size, seed)` returns the path of a SQLite ledger of `size`
donations (matching donations and forwardings included), built once and kept under
/tmp/clientstats-bench/ by a content key: the hash of this file, of bench_cache_miss.py
(whose aggregate recomputation it reuses), of every migration file and of the product's
aggregate backfill code, with the size and the seed. Any change to one of them builds anew.

How a ledger is built (minutes, not an hour, for 5 million rows):
- the schema comes from the product's own migrations (`storage.schema.ensure_schema`);
- the reference data (4 clients, 12,000 projects with 1-3 needs, memberships, 2 matching
  funds) goes through `services.importing.import_lines`, as `clientstats import` applies it;
- the donations (client, platform, external, offline, forwardings out of pools, matching
  donations that follow the matching rules, revocations) are generated deterministically
  and bulk-inserted with sqlite3 `executemany`, 50,000 rows a transaction;
- the maintained aggregates are then filled from the ledger: the statistics' totals
  (migrations up to 0003) by bench_cache_miss.RECOMPUTE, and every aggregate and index a
  later migration adds by that migration itself, as on an operator's upgrade: the schema
  is taken back to 0003 before the bulk load and upgraded to the head after it, so the
  later migrations create their indexes once and backfill their aggregates from the
  loaded ledger;
- `services.verification.verify` (the logic of `clientstats verify`) must then find 0
  differences; its result is stored with the ledger and quoted in the report.

The measured client `bench-target` has 10,000 projects, a pool, a matching fund, and
exactly size/5 confirmed client donations (1,000,000 on the 5M ledger), plus about 0.1 %
more client donations that are revoked. Every 50th donation shares its timestamp with the
one before, so the lists' order has ties a cursor must get right.
"""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from common import BENCHMARKS, progress

CACHE_DIR = Path("/tmp/clientstats-bench")
TARGET = "bench-target"
CLIENTS = (("bench-target", True, 10_000), ("other-1", True, 1_000), ("other-2", False, 1_000))
PROJECTS = 12_000
# id, owner, matched projects, budget, maximum per donation
FUNDS = ((1, TARGET, 300, 100_000_000, 5_000), (2, "other-1", 50, 20_000_000, 2_500))
CHUNK = 50_000
GIFTS = (500, 1000, 1500, 2000, 2500, 3000, 5000, 7500, 10_000, 25_000, 100_000)
COLUMNS = (
    "token", "channel", "amount_in_cents", "project_id", "pool_client_id", "client_id",
    "client_reference", "tracking_via", "matching_fund_id", "matched_token",
    "redirected_from_project_id", "failure_code", "created_at", "booked_at",
)  # fmt: skip
# The migration that created the statistics' aggregates; later ones are backfilled by
# running them again on the loaded ledger.
STATISTICS_REVISION = "0003"


@dataclass
class Layout:
    """Memberships, closed projects and matching funds, from the seed."""

    members: dict[str, list[int]]
    open_members: dict[str, list[int]]
    closed: frozenset[int]
    funds: list[tuple[int, str, frozenset[int], int, int]]
    unfunded: dict[str, list[int]] = field(default_factory=dict)


def make_layout(seed: int) -> Layout:
    """Deterministic reference data: who has which projects, which are closed, the funds."""
    rng = random.Random(seed)
    all_projects = list(range(1, PROJECTS + 1))
    closed = frozenset(rng.sample(all_projects, PROJECTS // 100))
    members = {c: sorted(rng.sample(all_projects, n)) for c, _, n in CLIENTS}
    open_members = {c: [p for p in ps if p not in closed] for c, ps in members.items()}
    funds = [
        (fund_id, owner, frozenset(rng.sample(open_members[owner], n)), budget, maximum)
        for fund_id, owner, n, budget, maximum in FUNDS
    ]
    funded = frozenset().union(*(f[2] for f in funds))
    unfunded = {c: [p for p in ps if p not in funded] for c, ps in open_members.items()}
    return Layout(members, open_members, closed, funds, unfunded)


def reference_events(layout: Layout, seed: int) -> Iterator[bytes]:
    """Clients, projects, needs, memberships and funds as ledger event lines."""
    rng = random.Random(seed + 1)
    for permalink, pool, _ in CLIENTS:
        yield orjson.dumps({"event": "client", "id": permalink, "name": permalink, "pool": pool})
    need_id = 0
    for project_id in range(1, PROJECTS + 1):
        closed = project_id in layout.closed
        yield orjson.dumps(
            {
                "event": "project",
                "id": project_id,
                "title": f"Project {project_id}",
                "closed": closed,
            }
        )
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
                "event": "matching_fund", "id": fund_id, "client_id": owner,
                "title": f"Fund {fund_id}", "provided_amount_in_cents": budget,
                "maximum_matching_amount_in_cents": maximum, "state": "activated",
                "project_ids": sorted(funded),
            }
        )  # fmt: skip


class DonationGenerator:
    """Ledger rows in booking order; exactly size/5 confirmed client donations of TARGET."""

    def __init__(self, layout: Layout, seed: int, size: int) -> None:
        self.rng = random.Random(seed + 2)
        self.layout = layout
        self.size = size
        self.quota = size // 5
        self.pools = {c: 0 for c, pool, _ in CLIENTS if pool}
        self.remaining = {f[0]: f[3] for f in layout.funds}
        self.open_projects = [p for p in range(1, PROJECTS + 1) if p not in layout.closed]
        self.booked_at = "2026-01-01 00:00:00.000000"
        self.start = datetime(2025, 1, 1, tzinfo=UTC)
        self.revocations: list[tuple[str, str, str]] = []
        self.emitted = self.target_done = 0

    def rows(self) -> Iterator[tuple[Any, ...]]:
        """Every donation row (matching donations right after the donation they match)."""
        index = 0
        while self.emitted < self.size:
            index += 1
            # Every 50th donation is booked in the same second as the one before.
            at = self.start + timedelta(seconds=(index - (index % 50 == 0)) * 6)
            created = at.strftime("%Y-%m-%d %H:%M:%S.%f")
            left = self.size - self.emitted
            target_left = self.quota - self.target_done
            # Near the end a donation must not bring a matching donation along: exact counts.
            tight = left - target_left < 2
            due = self.target_done * self.size <= self.emitted * self.quota
            if target_left and (due or left == target_left):
                rows = self._target(index, created, tight=tight)
                self.target_done += 1
            else:
                rows = self._other(index, created, tight=tight)
            self.emitted += len(rows)
            yield from rows

    def _target(self, index: int, created: str, *, tight: bool) -> list[tuple[Any, ...]]:
        rng, amount = self.rng, self.rng.choice(GIFTS)
        pool, project = None, None
        if rng.random() < 0.1:
            pool = TARGET
            self.pools[TARGET] += amount
        else:
            choices = self.layout.unfunded if tight else self.layout.open_members
            project = rng.choice(choices[TARGET])
        return self._client_row(index, created, TARGET, amount, project, pool)

    def _client_row(
        self, index: int, created: str, client: str, amount: int, project: int | None,
        pool: str | None,
    ) -> list[tuple[Any, ...]]:  # fmt: skip
        token = f"b{index:09d}"
        tracking = self.rng.choice(("newsletter", "facebook")) if self.rng.random() < 0.1 else None
        row = (token, "client", amount, project, pool, client, f"ref-{index:09d}", tracking)
        rows = [(*row, None, None, None, None, created, self.booked_at)]
        matching = self._matching(token, amount, project, created)
        return rows if matching is None else [*rows, matching]

    def _other(self, index: int, created: str, *, tight: bool) -> list[tuple[Any, ...]]:
        rng, token = self.rng, f"b{index:09d}"
        roll = 0.99 if tight else rng.random()
        if roll < 0.001:  # a client donation of TARGET that gets revoked
            project = rng.choice(self.layout.unfunded[TARGET])
            self.revocations.append((token, created, self.booked_at))
            return self._client_row(index, created, TARGET, rng.choice(GIFTS), project, None)
        if roll < 0.08:
            client = rng.choice(("other-1", "other-2"))
            pool = client if client in self.pools and rng.random() < 0.1 else None
            amount = rng.choice(GIFTS)
            if pool is not None:
                self.pools[pool] += amount
            project = None if pool else rng.choice(self.layout.open_members[client])
            return self._client_row(index, created, client, amount, project, pool)
        if roll < 0.11:
            pool, amount = rng.choice(sorted(self.pools)), rng.choice((10_000, 50_000, 100_000))
            self.pools[pool] += amount
            return [(token, "offline", amount, None, pool, None, None, None, None, None, None,
                     None, created, self.booked_at)]  # fmt: skip
        if roll < 0.14 and (forwarding := self._forwarding(token, created)) is not None:
            return [forwarding]
        channel = "external" if roll > 0.9 else "platform"
        project = rng.choice(self.open_projects)
        row = (token, channel, rng.choice(GIFTS), project, None, None, None, None, None, None,
               None, None, created, self.booked_at)  # fmt: skip
        matching = (
            self._matching(token, row[2], project, created) if channel == "platform" else None
        )
        if matching is not None:
            return [row, matching]
        if rng.random() < 0.01:
            self.revocations.append((token, created, self.booked_at))
        return [row]

    def _forwarding(self, token: str, created: str) -> tuple[Any, ...] | None:
        client = self.rng.choice(sorted(self.pools))
        amount = self.rng.choice((10_000, 25_000, 50_000))
        if self.pools[client] < amount:
            return None
        self.pools[client] -= amount
        project = self.rng.choice(self.layout.open_members[client])
        return (token, "forwarding", amount, project, None, client, f"fwd-{token}", None, None,
                None, None, None, created, self.booked_at)  # fmt: skip

    def _matching(
        self, token: str, amount: int, project: int | None, created: str
    ) -> tuple[Any, ...] | None:
        """The lowest-id activated fund with budget left that matches the project matches."""
        for fund_id, _, projects, _, maximum in self.layout.funds:
            if project not in projects or self.remaining[fund_id] <= 0:
                continue
            matched = min(amount, maximum, self.remaining[fund_id])
            self.remaining[fund_id] -= matched
            return (f"matching:{fund_id}:{token}", "matching", matched, project, None, None,
                    None, None, fund_id, token, None, None, created, self.booked_at)  # fmt: skip
        return None


def content_key(size: int, seed: int) -> str:
    """What the built file depends on: generator, recomputation, migrations, backfills."""
    digest = hashlib.sha256(f"{size}:{seed}".encode())
    import clientstats.storage as storage_package

    storage = Path(storage_package.__file__).parent
    sources = [BENCHMARKS / "list_ledger.py", BENCHMARKS / "bench_cache_miss.py"]
    sources += sorted((storage / "migrations" / "versions").glob("*.py"))
    sources += sorted(storage.glob("*aggregate*.py")) + sorted(storage.glob("*backfill*.py"))
    for source in sources:
        digest.update(source.name.encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()[:16]


def bulk_insert(path: Path, generator: DonationGenerator) -> int:
    """Insert every generated row with plain sqlite3, durability off while loading."""
    raw = sqlite3.connect(path, isolation_level=None)
    try:
        raw.execute("PRAGMA synchronous=OFF")
        raw.execute("PRAGMA cache_size=-1048576")  # 1 GiB: the indexes stay in memory
        insert = f"INSERT INTO donations ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * 14)})"
        rows, inserted = generator.rows(), 0
        while chunk := [row for _, row in zip(range(CHUNK), rows, strict=False)]:
            raw.execute("BEGIN")
            raw.executemany(insert, chunk)
            raw.execute("COMMIT")
            inserted += len(chunk)
            if inserted % 1_000_000 == 0:
                progress(f"  {inserted:,} donations inserted")
        raw.execute("BEGIN")
        raw.executemany(
            "INSERT INTO revocations (token, created_at, booked_at) VALUES (?, ?, ?)",
            generator.revocations,
        )
        raw.execute("COMMIT")
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        raw.close()
    return inserted


def recompute_statistics_totals(path: Path) -> None:
    """The statistics' aggregates from the ledger, by one UPDATE each (bench_cache_miss)."""
    from bench_cache_miss import RECOMPUTE
    from sqlalchemy import text

    from clientstats.storage.database import make_engine, write_transaction

    engine = make_engine(f"sqlite:///{path}")
    try:
        with write_transaction(engine) as conn:
            for statement in RECOMPUTE:
                conn.execute(text(statement))
    finally:
        engine.dispose()


def migrate_to(path: Path, direction: str, revision: str) -> None:
    """Alembic's downgrade or upgrade of the ledger file with the product's migrations."""
    from clientstats.storage.database import make_engine

    engine = make_engine(f"sqlite:///{path}")
    try:
        _run_migrations(engine, direction, revision)
    finally:
        engine.dispose()


def _run_migrations(engine: Any, direction: str, revision: str) -> None:
    """Alembic's downgrade or upgrade with the product's migration scripts."""
    from alembic import command
    from alembic.config import Config

    from clientstats.storage.database import write_transaction

    config = Config()
    config.set_main_option("script_location", "clientstats.storage:migrations")
    with write_transaction(engine) as conn:
        config.attributes["connection"] = conn
        getattr(command, direction)(config, revision)


def build(path: Path, size: int, seed: int) -> dict[str, Any]:
    """Build one ledger file from nothing and verify it; returns what the report quotes."""
    from clientstats.services.importing import import_lines
    from clientstats.services.verification import verify
    from clientstats.storage.database import make_engine
    from clientstats.storage.schema import ensure_schema, head_revision

    started = time.perf_counter()
    engine = make_engine(f"sqlite:///{path}")
    ensure_schema(engine)
    layout = make_layout(seed)
    report = import_lines(engine, reference_events(layout, seed), batch_size=1000)
    engine.dispose()
    if not report.ok:
        raise RuntimeError(f"reference data rejected: {report.rejected[:5]}")
    later = head_revision() != STATISTICS_REVISION
    if later:  # the later migrations run again after the load: their backfill fills them
        migrate_to(path, "downgrade", STATISTICS_REVISION)
    imported = time.perf_counter()
    generator = DonationGenerator(layout, seed, size)
    inserted = bulk_insert(path, generator)
    loaded = time.perf_counter()
    recompute_statistics_totals(path)
    if later:
        progress(f"{size:,}: migrating to the head, the migrations backfill their aggregates")
        migrate_to(path, "upgrade", "head")
    filled = time.perf_counter()
    progress(f"{size:,}: verifying every client's figures against the ledger")
    engine = make_engine(f"sqlite:///{path}")
    checked = verify(engine)
    engine.dispose()
    if checked.differences:
        raise RuntimeError(f"verify found differences: {checked.differences[:5]}")
    done = time.perf_counter()
    return {
        "size": size,
        "seed": seed,
        "donations": inserted,
        "target_client_donations": generator.target_done,
        "revocations": len(generator.revocations),
        "reference_lines": report.lines,
        "import_seconds": round(imported - started, 1),
        "bulk_insert_seconds": round(loaded - imported, 1),
        "aggregates_seconds": round(filled - loaded, 1),
        "verify_seconds": round(done - filled, 1),
        "verified": f"0 differences over {checked.entries:,} entries, {checked.clients} clients",
        "built_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
    }


def ledger(size: int, seed: int, *, rebuild: bool = False) -> tuple[Path, dict[str, Any], bool]:
    """The cached ledger file for (size, seed) and its build facts; builds it when missing.

    Returns (path, facts, regenerated). The file is the cache's own copy: callers that write
    to it (a server does) must work on a copy.
    """
    key = content_key(size, seed)
    path = CACHE_DIR / f"lists-ledger-{size}-{key}.db"
    meta_path = path.with_suffix(".json")
    if not rebuild and path.exists() and meta_path.exists():
        progress(f"{size:,}: reusing cached {path}")
        return path, json.loads(meta_path.read_text()), False
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    for stale in CACHE_DIR.glob(f"lists-ledger-{size}-*"):
        stale.unlink()
    progress(f"{size:,}: building {path}")
    building = path.with_suffix(".building")
    try:
        meta = build(building, size, seed)
        with sqlite3.connect(building) as raw:  # fold the WAL in: the file stands alone
            raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        building.rename(path)
    finally:
        for leftover in CACHE_DIR.glob(f"{building.name}*"):
            leftover.unlink()
    meta["content_key"] = key
    meta_path.write_text(json.dumps(meta, indent=1))
    return path, meta, True
