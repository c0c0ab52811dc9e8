"""Latency of the drill-down lists at depth and on a large ledger, and their cache hit.

What is measured, on two SQLite ledgers built by list_ledger.py (5,000,000 and 10,000
donations, the same reference data: the client `bench-target` has 10,000 projects and a
fifth of the donations, 1,000,000 client donations on the large ledger):

1. Depth: the client donations list (`per_page=200`, the client's own credentials) is
   walked from its first page through the `next` links the API returns, to the last page
   (page 5,000 on the large ledger). The walk checks that it met every donation once and
   that their count and sum are the envelope's totals. Then the first page and the deepest
   page (the URL of the last `next` link) are timed alternately. Goal: deep / first <= 2x.
2. Size: the first page of the projects list and of the client donations list on the 5M
   ledger against the same pages on the 10k ledger, timed alternately. Goal: <= 1.5x.
3. Cache hit: the cached first page of the projects list (public) and of the client
   donations list (with credentials) under `wrk`, against benchmarks/raw_asgi.py sending
   the same bytes and headers under the same server options, alternating rounds as in
   bench_cache_hit.py. Goal: >= 0.7x the raw app's req/s.

The timed requests of 1 and 2 must be cache misses: the servers run with
`CLIENTSTATS_CACHE_TTL=1` and a URL is asked again only after more than that second, so
every sample computes its page from the database (the report lists the miss and hit
latencies of one URL as a check). Each latency is one request on a kept-alive
connection, measured by the client from sending to the last byte.

Needs `wrk` (Debian/Ubuntu: `apt-get install -y wrk`).
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
from bench_cache_hit import cpu_seconds, parse_wrk
from common import (
    BENCHMARKS,
    PYTHON,
    Child,
    child,
    clientstats_env,
    emit,
    free_port,
    markdown_header,
    median,
    percentile,
    progress,
    table,
    verdict,
    wait_for_http,
)
from list_ledger import TARGET, ledger

GOAL_DEPTH = 2.0
GOAL_SIZE = 1.5
GOAL_HIT = 0.7
MISS_TTL = 1  # seconds: the server's cache lifetime while misses are timed
BASE = "/de/api_v4"
DONATIONS = f"{BASE}/clients/{TARGET}/client_donations"
PROJECTS = f"{BASE}/clients/{TARGET}/projects"
# Headers uvicorn adds itself, as in bench_cache_hit.py.
_SERVER_HEADERS = {"date", "server", "connection"}


@dataclass
class Server:
    """A running `clientstats serve` on a copy of one ledger."""

    name: str
    port: int
    process: Child
    auth: str
    facts: dict[str, Any]
    regenerated: bool
    connection: http.client.HTTPConnection = field(init=False)

    def __post_init__(self) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)

    def get(self, target: str, *, auth: bool = False) -> tuple[float, int, bytes, list[Any]]:
        """(ms, status, body, headers) of one GET on the kept-alive connection."""
        headers = {"Authorization": self.auth} if auth else {}
        for attempt in (1, 2):
            try:
                started = time.perf_counter()
                self.connection.request("GET", target, headers=headers)
                response = self.connection.getresponse()
                body = response.read()
                break
            except (http.client.RemoteDisconnected, ConnectionError):
                # The server closed the idle kept-alive connection: the next one is new.
                self.connection.close()
                if attempt == 2:
                    raise
        ms = (time.perf_counter() - started) * 1000
        return ms, response.status, body, response.getheaders()


def _relative(url: str) -> str:
    """Path and query of an absolute link, to send on our own connection."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _link(envelope: dict[str, Any], rel: str) -> str | None:
    for link in envelope.get("links", []):
        if link.get("rel") == rel:
            return str(link["href"])
    return None


@contextmanager
def served(
    name: str, size: int, args: argparse.Namespace, workdir: Path, *, ttl: int
) -> Iterator[Server]:
    """A server on a private copy of the cached ledger (the copy gets the credentials)."""
    from clientstats.services.credentials import issue_credentials
    from clientstats.storage.database import make_engine

    source, facts, regenerated = ledger(size, args.seed, rebuild=args.rebuild)
    copy = workdir / f"ledger-{size}.db"  # one copy per ledger, served again after a stop
    if not copy.exists():
        subprocess.run(["cp", "--reflink=auto", str(source), str(copy)], check=True)
    engine = make_engine(f"sqlite:///{copy}")
    issued = issue_credentials(engine, TARGET)
    engine.dispose()
    token = base64.b64encode(f"{issued['username']}:{issued['password']}".encode()).decode()
    port = free_port()
    env = clientstats_env(f"sqlite:///{copy}", CLIENTSTATS_CACHE_TTL=str(ttl))
    command = [PYTHON, "-m", "clientstats", "serve", "--port", str(port), "--no-worker"]
    with child(command, name=f"clientstats serve ({name})", env=env) as process:
        wait_for_http(f"http://127.0.0.1:{port}/health/live", process, timeout=120)
        server = Server(name, port, process, f"Basic {token}", facts, regenerated)
        try:
            yield server
        finally:
            server.connection.close()


# -- 1. the walk through the next links ------------------------------------------------------


@dataclass
class Walk:
    """What following the `next` links from the first page found."""

    pages: int = 0
    entries: int = 0
    amount: int = 0
    total_entries: int = 0
    total_amount: int = 0
    duplicates: int = 0
    deepest: str = ""
    first: str = ""
    ms: list[float] = field(default_factory=list)
    statuses: set[int] = field(default_factory=set)


def walk(server: Server, per_page: int) -> Walk:
    """Follow `next` from the first page to the last, counting and summing every donation."""
    found = Walk(first=f"{DONATIONS}?per_page={per_page}")
    seen: set[str] = set()
    target: str | None = found.first
    while target is not None:
        ms, status, body, _ = server.get(target, auth=True)
        found.statuses.add(status)
        if status != 200:
            raise RuntimeError(f"{target} answered {status}: {body[:300]!r}")
        envelope = orjson.loads(body)
        if found.pages == 0:
            found.total_entries = envelope["total_entries"]
            found.total_amount = envelope["total_amount_in_cents"]
        found.pages += 1
        found.ms.append(ms)
        for item in envelope["data"]:
            found.duplicates += item["token"] in seen
            seen.add(item["token"])
            found.entries += 1
            found.amount += item["amount_in_cents"]
        found.deepest = target
        following = _link(envelope, "next")
        target = _relative(following) if following else None
        if found.pages % 500 == 0:
            progress(f"  walked {found.pages:,} pages, last {ms:.1f} ms")
    return found


# -- 1 and 2. miss latencies ---------------------------------------------------------------------


def time_misses(
    series: dict[str, tuple[Server, str, bool]], samples: int
) -> dict[str, list[float]]:
    """`samples` cache-miss latencies per series, round-robin so a URL waits out the TTL."""
    timings: dict[str, list[float]] = {name: [] for name in series}
    last_asked = {name: time.monotonic() for name in series}  # each was just warmed up
    for round_ in range(samples):
        names = list(series) if round_ % 2 == 0 else list(series)[::-1]
        for name in names:
            server, target, auth = series[name]
            wait = last_asked[name] + MISS_TTL + 0.2 - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            ms, status, body, _ = server.get(target, auth=auth)
            last_asked[name] = time.monotonic()
            if status != 200:
                raise RuntimeError(f"{name}: {target} answered {status}: {body[:300]!r}")
            timings[name].append(ms)
    return timings


def hit_check(server: Server, target: str, auth: bool) -> tuple[float, float]:
    """(miss ms, median hit ms) of one URL: shows that the spaced requests were misses."""
    time.sleep(MISS_TTL + 0.2)
    miss = server.get(target, auth=auth)[0]
    hits = [server.get(target, auth=auth)[0] for _ in range(20)]
    return miss, median(hits)


def deep_page_plan(database: Path, deepest: str) -> list[str]:
    """SQLite's plan for the page after the deepest cursor, with bound parameters as served.

    Best effort: it calls the product's list internals, which may change; then it says so.
    """
    from urllib.parse import parse_qs

    from sqlalchemy import event

    from clientstats.api.lists.pagination import decode_cursor, fingerprint
    from clientstats.api.lists.resources import RESOURCES
    from clientstats.domain.list_query import parse_list_query
    from clientstats.storage import list_queries
    from clientstats.storage.database import make_engine, read_transaction
    from clientstats.storage.keyset import page_rows

    try:
        parts = urlsplit(deepest)
        params = {k: v[0] for k, v in parse_qs(parts.query).items()}
        spec = RESOURCES["/clients/{client_id}/client_donations"].spec
        assert spec is not None
        lq = parse_list_query(params, spec, length=len(parts.query))
        after, _ = decode_cursor(params["cursor"], fingerprint(parts.path.lower(), lq))
        engine = make_engine(f"sqlite:///{database}")
        sent: list[tuple[str, Any]] = []
        event.listen(engine, "before_cursor_execute", lambda *a: sent.append((a[2], a[3])))
        with read_transaction(engine) as conn:
            query = list_queries.client_donations_query(TARGET, {})
            keys = list_queries.sort_keys("client_donations", lq.order)
            page_rows(conn, query, keys, limit=lq.per_page + 1, after=after)
            statement, parameters = sent[-1]
            raw: Any = conn.connection.driver_connection
            plan = [
                str(row[3]) for row in raw.execute(f"EXPLAIN QUERY PLAN {statement}", parameters)
            ]
        engine.dispose()
        where = statement[statement.rindex("WHERE") :].replace("\n", " ")
        return [f"`{where}`", "", *(f"- `{step}`" for step in plan)]
    except Exception as exc:  # the internals moved: the report says so instead of failing
        return [f"(plan not available: {type(exc).__name__}: {exc})"]


# -- 3. cache hits under wrk against the raw ASGI app ----------------------------------------


def run_wrk(url: str, args: argparse.Namespace, duration: int, headers: Sequence[str]) -> str:
    """wrk once against url with the given request headers; its output."""
    command = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{duration}s", "--latency"]
    for header in headers:
        command += ["-H", header]
    done = subprocess.run([*command, url], capture_output=True, text=True, timeout=duration + 60)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr}")
    return done.stdout


def cache_hits(
    server: Server, target: str, auth: bool, args: argparse.Namespace, workdir: Path
) -> list[Any]:
    """wrk against the cached page and against raw_asgi.py with its bytes, alternating."""
    server.get(target, auth=auth)  # the miss that fills the cache
    _, status, body, got = server.get(target, auth=auth)
    if status != 200:
        raise RuntimeError(f"{target} answered {status}")
    kept = [(k.lower(), v) for k, v in got if k.lower() not in _SERVER_HEADERS]
    response_file = workdir / "response.json"
    response_file.write_text(json.dumps({"body": body.decode(), "headers": kept}))
    raw_port = free_port()
    raw_cmd = [PYTHON, str(BENCHMARKS / "raw_asgi.py"), "--port", str(raw_port)]
    headers = [f"Authorization: {server.auth}"] if auth else []
    with child([*raw_cmd, "--response", str(response_file)], name="raw ASGI app") as raw:
        wait_for_http(f"http://127.0.0.1:{raw_port}{target}", raw)
        urls = {
            "clientstats": f"http://127.0.0.1:{server.port}{target}",
            "raw ASGI": f"http://127.0.0.1:{raw_port}{target}",
        }
        pids = {"clientstats": server.process.process.pid, "raw ASGI": raw.process.pid}
        for url in urls.values():
            run_wrk(url, args, args.warmup, headers)
        runs = []
        for round_ in range(1, args.rounds + 1):
            order = list(urls) if round_ % 2 else list(urls)[::-1]
            for name in order:
                before = cpu_seconds(pids[name])
                output = run_wrk(urls[name], args, args.duration, headers)
                cpu = cpu_seconds(pids[name]) - before
                runs.append(parse_wrk(output, server=name, round_=round_, cpu=cpu))
                progress(
                    f"  round {round_} {name}: {runs[-1].requests_per_s:.0f} req/s, "
                    f"p99 {runs[-1].p99_ms:.2f} ms, errors {runs[-1].errors}"
                )
    return [len(body), runs]


# -- the run and its report ------------------------------------------------------------------


def _ratios(runs: list[Any]) -> list[float]:
    """Per-round req/s ratios clientstats / raw ASGI (each round's two runs back to back)."""
    by_round: dict[int, dict[str, float]] = {}
    for run in runs:
        by_round.setdefault(run.round, {})[run.server] = run.requests_per_s
    return [r["clientstats"] / r["raw ASGI"] for _, r in sorted(by_round.items())]


def measure(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Build or reuse the ledgers, serve both, walk, time misses, then the cache hits."""
    found: dict[str, Any] = {}
    with ExitStack() as stack:
        small = stack.enter_context(served("small", args.small, args, workdir, ttl=MISS_TTL))
        large = stack.enter_context(served("large", args.large, args, workdir, ttl=MISS_TTL))
        found["ledgers"] = [small, large]
        progress(f"walking the client donations of the {args.large:,} ledger by `next` links")
        found["walk"] = deep = walk(large, args.per_page)
        progress(f"walked {deep.pages:,} pages ({deep.entries:,} donations)")
        found["plan"] = deep_page_plan(workdir / f"ledger-{args.large}.db", deep.deepest)
        first_donations = f"{DONATIONS}?per_page={args.per_page}"
        series = {
            "donations first page, large": (large, first_donations, True),
            "donations deepest page, large": (large, deep.deepest, True),
            "donations first page, small": (small, first_donations, True),
            "projects first page, large": (large, PROJECTS, False),
            "projects first page, small": (small, PROJECTS, False),
        }
        for server, target, auth in series.values():  # warm each URL's code path
            server.get(target, auth=auth)
        progress(f"timing {args.samples} cache misses per series")
        found["misses"] = time_misses(series, args.samples)
        found["hit_check"] = hit_check(large, first_donations, True)
        found["series"] = {name: target for name, (_, target, _) in series.items()}
        stack.close()
        hit_server = stack.enter_context(served("large-hits", args.large, args, workdir, ttl=1200))
        found["hits"] = {}
        for name, target, auth in (
            ("projects first page (public)", PROJECTS, False),
            ("client donations first page (credentials)", first_donations, True),
        ):
            progress(f"cache hits of the {name} under wrk, against the raw ASGI app")
            found["hits"][name] = (target, *cache_hits(hit_server, target, auth, args, workdir))
    return found


def report(found: dict[str, Any], args: argparse.Namespace) -> list[str]:
    """The markdown report."""
    lines = markdown_header(
        "Drill-down lists: depth, ledger size and cache hit",
        "Latency of cache misses of the client donations and projects lists on ledgers of "
        f"{args.large:,} and {args.small:,} donations (the client donations list walked to its "
        "last page by its `next` links), and req/s of cached list pages under wrk against a "
        "raw ASGI app sending the same bytes. Servers: `clientstats serve --no-worker` "
        "(uvicorn, 1 worker) on SQLite copies of the ledgers.",
    )
    lines += ["## Ledgers", ""]
    rows = []
    for server in found["ledgers"]:
        f = server.facts
        rows.append(
            (
                f"{f['donations']:,}",
                f"{f['target_client_donations']:,}",
                f"{f['revocations']:,}",
                "yes" if server.regenerated else f"no (cached, built {f['built_at']})",
                f"{f['import_seconds']} / {f['bulk_insert_seconds']} / "
                f"{f['aggregates_seconds']} / {f['verify_seconds']}",
                f["verified"],
            )
        )
    lines += table(
        ["donations", f"confirmed client donations of {TARGET}", "revocations", "regenerated",
         "build s: ref. data / bulk insert / aggregates / verify", "`verify` at build"],
        rows,
    )  # fmt: skip
    lines += [
        "",
        "The ledger files are cached in /tmp/clientstats-bench/ by a content key (the hash of "
        "list_ledger.py, bench_cache_miss.py, the migrations, the storage modules of the "
        "aggregates, the size and the seed); each run serves a "
        "copy. `verify` (the logic of `clientstats verify`) runs once, when a ledger is built.",
        "",
    ]
    lines += _walk_lines(found["walk"], args)
    lines += _plan_lines(found["plan"])
    lines += _miss_lines(found, args)
    lines += _hit_lines(found, args)
    return lines


def _walk_lines(deep: Walk, args: argparse.Namespace) -> list[str]:
    buckets = []
    step = max(1, len(deep.ms) // 10)
    for start in range(0, len(deep.ms), step):
        chunk = deep.ms[start : start + step]
        buckets.append((f"{start + 1:,}-{start + len(chunk):,}", f"{median(chunk):.2f}",
                        f"{max(chunk):.2f}"))  # fmt: skip
    agrees = (
        deep.entries == deep.total_entries
        and deep.amount == deep.total_amount
        and deep.duplicates == 0
    )
    lines = [
        "## 1. The walk through the `next` links",
        "",
        f"`GET {deep.first}` with the client's credentials, then every `next` link: "
        f"{deep.pages:,} pages, {deep.entries:,} donations met ({deep.duplicates} twice), "
        f"sum {deep.amount:,} cents; the envelope's `total_entries` {deep.total_entries:,}, "
        f"`total_amount_in_cents` {deep.total_amount:,}: "
        + ("**they agree**" if agrees else "**they DO NOT agree**"),
        f"Deepest page: `{deep.deepest[:160]}{'...' if len(deep.deepest) > 160 else ''}`",
        "",
        "Latency along the walk (ms; these pages were misses, each URL asked once):",
        "",
    ]
    return [*lines, *table(["pages", "median ms", "max ms"], buckets), ""]


def _plan_lines(plan: list[str]) -> list[str]:
    return [
        "SQLite's plan for the page after the deepest cursor (the statement the server sends, "
        "with its bound parameters):",
        "",
        *plan,
        "",
    ]


def _miss_lines(found: dict[str, Any], args: argparse.Namespace) -> list[str]:
    misses = found["misses"]
    rows = [
        (name, f"{median(ms):.2f}", f"{percentile(ms, 0.9):.2f}", f"{min(ms):.2f}",
         f"{max(ms):.2f}", f"`{found['series'][name][:90]}`")
        for name, ms in misses.items()
    ]  # fmt: skip
    m = {name: median(ms) for name, ms in misses.items()}
    depth = m["donations deepest page, large"] / m["donations first page, large"]
    size_d = m["donations first page, large"] / m["donations first page, small"]
    size_p = m["projects first page, large"] / m["projects first page, small"]
    miss, hit = found["hit_check"]
    lines = [
        "## 2. Cache-miss latencies",
        "",
        f"{args.samples} samples per series, round-robin over the series (order reversed "
        f"every round), each URL asked again only after the server's cache TTL ({MISS_TTL} s) "
        f"ran out. Check: the donations first page (large) took {miss:.2f} ms after the TTL "
        f"and {hit:.2f} ms (median of 20) when asked again at once, from the cache.",
        "",
        *table(["series", "median ms", "p90 ms", "min ms", "max ms", "request"], rows),
        "",
        "## Goals",
        "",
        f"- client donations, deepest page (page {found['walk'].pages:,}) / first page, "
        f"{args.large:,} ledger (medians): **{depth:.2f}x**; goal <= {GOAL_DEPTH}x: "
        f"{verdict(depth <= GOAL_DEPTH)}",
        f"- client donations first page, {args.large:,} / {args.small:,} ledger: "
        f"**{size_d:.2f}x**; goal <= {GOAL_SIZE}x: {verdict(size_d <= GOAL_SIZE)}",
        f"- projects first page, {args.large:,} / {args.small:,} ledger: **{size_p:.2f}x**; "
        f"goal <= {GOAL_SIZE}x: {verdict(size_p <= GOAL_SIZE)}",
    ]
    return lines


def _hit_lines(found: dict[str, Any], args: argparse.Namespace) -> list[str]:
    lines: list[str] = []
    details = ["", "## 3. Cache hits under wrk, against the raw ASGI app", ""]
    details.append(
        f"`wrk -t{args.threads} -c{args.connections} -d{args.duration}s --latency` per run, "
        f"{args.rounds} rounds alternating (A B, B A, ...), {args.warmup} s warm-up each; the "
        f"server ({args.large:,} ledger, default cache TTL) and wrk share the 2 cores."
    )
    for name, (target, size, runs) in found["hits"].items():
        ratios = _ratios(runs)
        ratio = median(ratios)
        details += ["", f"### {name}: `{target}` ({size:,} bytes)", ""]
        details += table(
            ["round", "server", "req/s", "p50 ms", "p99 ms", "server CPU us/req", "errors"],
            [(r.round, r.server, f"{r.requests_per_s:.0f}", f"{r.p50_ms:.3f}",
              f"{r.p99_ms:.3f}", f"{r.cpu_us_per_request:.1f}", r.errors) for r in runs],
        )  # fmt: skip
        lines.append(
            f"- cached {name}, req/s clientstats / raw ASGI (median of per-round ratios "
            f"{', '.join(f'{x:.3f}' for x in ratios)}): **{ratio:.3f}**; goal >= {GOAL_HIT}: "
            f"{verdict(ratio >= GOAL_HIT)}"
        )
    return [*lines, *details]


def main() -> None:
    """Parse options, run the benchmark, print (and optionally record) the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", type=int, default=5_000_000, help="donations, large ledger")
    parser.add_argument("--small", type=int, default=10_000, help="donations, small ledger")
    parser.add_argument("--per-page", type=int, default=200)
    parser.add_argument("--samples", type=int, default=30, help="cache misses per series")
    parser.add_argument("--rounds", type=int, default=3, help="wrk rounds per cached page")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--warmup", type=int, default=3, help="wrk warm-up seconds per server")
    parser.add_argument("--connections", type=int, default=32, help="wrk -c")
    parser.add_argument("--threads", type=int, default=1, help="wrk -t")
    parser.add_argument("--seed", type=int, default=2015)
    parser.add_argument("--rebuild", action="store_true", help="build the ledgers anew")
    parser.add_argument("--output", type=Path, help="also write the report to this file")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench_lists: `wrk` is not installed (`apt-get install -y wrk`)")
    # A stopped run unwinds too, so the servers it started are stopped with it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="bench-lists-", dir="/tmp") as workdir:
        found = measure(args, Path(workdir))
    emit(report(found, args), args.output)


if __name__ == "__main__":
    main()
