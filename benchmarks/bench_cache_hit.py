"""Throughput and latency of the statistics endpoint on a cache hit, against a raw ASGI ceiling.

What is measured: requests/s and latency p50/p99 of
`GET /de/api_v4/clients/{client}/project_statistics.json` served by `clientstats serve`
(uvicorn, one worker, SQLite seeded with `clientstats demo`) once its response is cached,
under `wrk -t1 -c32 --latency`. The baseline, measured in the same run under the same load,
is benchmarks/raw_asgi.py: a minimal ASGI app sending the very same bytes and headers under
the same server options (uvicorn, httptools, uvloop, access log off). The two servers are
measured alternately over several rounds (A B, B A, ...) and the medians are compared.

Goals: product req/s at least 0.85 of the raw app's (the fast path costs at most 15 % over
the bare server stack), and product p99 latency below 3 ms.

The load generator shares the machine's cores with the server: on 2 cores wrk takes one,
the server the other, so absolute figures are lower than on a dedicated load machine.

Needs `wrk` (Debian/Ubuntu: `apt-get install -y wrk`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from common import (
    BENCHMARKS,
    PYTHON,
    child,
    clientstats_env,
    emit,
    free_port,
    markdown_header,
    median,
    progress,
    table,
    verdict,
    wait_for_http,
)

GOAL_RATIO = 0.85
GOAL_OBSERVABILITY_RATIO = 0.90  # metrics and access log on may cost at most 10 %
OBSERVED = "clientstats +metrics +log"
OBSERVABILITY_OFF = {"CLIENTSTATS_METRICS": "false", "CLIENTSTATS_ACCESS_LOG": "false"}
OBSERVABILITY_ON = {"CLIENTSTATS_METRICS": "true", "CLIENTSTATS_ACCESS_LOG": "true"}
GOAL_P99_MS = 3.0
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
# Headers uvicorn adds itself (the raw app gets them from uvicorn just the same), and the
# hop-by-hop `connection: close` that answers urllib's own `Connection: close`.
_SERVER_HEADERS = {"date", "server", "connection"}


@dataclass(frozen=True)
class WrkRun:
    """One wrk run's figures."""

    server: str
    round: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    cpu_us_per_request: float


def _duration_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"unexpected wrk duration {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process and its live descendants (the API
    processes with `--workers N`) have used so far (Linux /proc)."""
    total = 0.0
    for member in _process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _process_tree(pid: int) -> list[int]:
    """The pid and the pids of all its live descendants."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                pending += [int(p) for p in (task / "children").read_text().split()]
            except FileNotFoundError:
                continue
    return found


def parse_wrk(output: str, *, server: str, round_: int, cpu: float) -> WrkRun:
    """The figures of `wrk --latency` output."""

    def find(pattern: str) -> str:
        match = re.search(pattern, output, re.MULTILINE)
        if match is None:
            raise ValueError(f"wrk output lacks {pattern!r}:\n{output}")
        return match.group(1)

    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors += int(non_2xx.group(1)) if non_2xx else 0
    return WrkRun(
        server=server,
        round=round_,
        requests_per_s=float(find(r"^Requests/sec:\s+([\d.]+)")),
        p50_ms=_duration_ms(find(r"^\s+50%\s+(\S+)")),
        p99_ms=_duration_ms(find(r"^\s+99%\s+(\S+)")),
        requests=int(find(r"^\s+(\d+) requests in")),
        errors=errors,
        cpu_us_per_request=cpu * 1e6 / max(1, int(find(r"^\s+(\d+) requests in"))),
    )


def run_wrk(url: str, args: argparse.Namespace, duration: int) -> str:
    """Run wrk once against url and return its output."""
    command = [
        "wrk",
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{duration}s",
        "--latency",
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr}")
    return done.stdout


def fetch(url: str) -> tuple[int, bytes, list[tuple[str, str]]]:
    """Status, body and headers of one GET."""
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read(), [(k.lower(), v) for k, v in response.getheaders()]


def seed_database(database_url: str, scale: int) -> None:
    """Load the demo data set with `clientstats demo`."""
    done = subprocess.run(
        [PYTHON, "-m", "clientstats", "demo", "--scale", str(scale)],
        env=clientstats_env(database_url),
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"clientstats demo failed: {done.stderr}")


def measure(args: argparse.Namespace, workdir: Path) -> list[str]:
    """Seed, start both servers, alternate wrk runs, and build the report."""
    if args.database_url is None:
        return _measure(args, workdir, f"sqlite:///{workdir / 'clientstats.db'}")
    from bench_import_postgres import fresh_database

    with fresh_database(args.database_url, f"bench_cache_hit_{os.getpid()}") as database_url:
        return _measure(args, workdir, database_url)


def _server_env(database_url: str, args: argparse.Namespace) -> dict[str, str]:
    extra = {"CLIENTSTATS_REDIS_URL": args.redis_url} if args.redis_url else {}
    return clientstats_env(database_url, **extra)


def _measure(args: argparse.Namespace, workdir: Path, database_url: str) -> list[str]:
    progress(f"seeding {database_url} with `clientstats demo --scale {args.scale}`")
    seed_database(database_url, args.scale)
    path = f"/de/api_v4/clients/{args.client}/project_statistics.json"
    product_port, raw_port = free_port(), free_port()
    product_cmd = [PYTHON, "-m", "clientstats", "serve", "--port", str(product_port)]
    product_cmd += ["--no-worker"] if args.no_worker else []
    product_cmd += ["--workers", str(args.workers)]
    server_env = _server_env(database_url, args)
    observed_port = free_port()
    with contextlib.ExitStack() as stack:
        if args.compare_observability:
            server_env = {**server_env, **OBSERVABILITY_OFF}
            observed_cmd = [*product_cmd[:5], str(observed_port), *product_cmd[6:]]
            observed = stack.enter_context(
                child(
                    observed_cmd,
                    name="clientstats serve (metrics, access log)",
                    env={**server_env, **OBSERVABILITY_ON},
                    stderr_file=workdir / "access.log",
                )
            )
        prod = stack.enter_context(child(product_cmd, name="clientstats serve", env=server_env))
        product_url = f"http://127.0.0.1:{product_port}{path}"
        wait_for_http(f"http://127.0.0.1:{product_port}/health/live", prod)
        status, body, headers = fetch(product_url)  # the miss that fills the cache
        if status != 200:
            raise RuntimeError(f"{product_url} answered {status}")
        kept = [(k, v) for k, v in headers if k not in _SERVER_HEADERS]
        response_file = workdir / "response.json"
        response_file.write_text(json.dumps({"body": body.decode(), "headers": kept}))
        raw_cmd = [
            PYTHON,
            str(BENCHMARKS / "raw_asgi.py"),
            "--port",
            str(raw_port),
            "--response",
            str(response_file),
        ]
        with child(raw_cmd, name="raw ASGI app") as raw:
            raw_url = f"http://127.0.0.1:{raw_port}{path}"
            wait_for_http(raw_url, raw)
            same = _compare(product_url, raw_url)
            urls = {"clientstats": product_url, "raw ASGI": raw_url}
            pids = {"clientstats": prod.process.pid, "raw ASGI": raw.process.pid}
            if args.compare_observability:
                observed_url = f"http://127.0.0.1:{observed_port}{path}"
                wait_for_http(observed_url, observed)
                _compare(observed_url, raw_url)
                urls[OBSERVED] = observed_url
                pids[OBSERVED] = observed.process.pid
            runs = _alternate(urls, pids, args)
            log_lines = _lines_in(workdir / "access.log")
    progress("in-process cost per call of each ASGI app (no server, no network)")
    costs = asyncio.run(in_process_costs(database_url, path, body, kept, args, workdir))
    lines = _report(args, runs, same, body, kept, costs)
    if args.compare_observability:
        lines += _observability_report(runs, costs, log_lines)
    return lines


async def _per_call_us(app: Any, scope: dict[str, Any], calls: int) -> float:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        pass

    started = time.perf_counter()
    for _ in range(calls):
        await app(scope, receive, send)
    return (time.perf_counter() - started) / calls * 1e6


async def in_process_costs(
    database_url: str,
    path: str,
    body: bytes,
    headers: list[tuple[str, str]],
    args: argparse.Namespace,
    workdir: Path,
) -> dict[str, list[float]]:
    """Microseconds per call of the product's ASGI app and of the raw app, called directly.

    The product app is built by `create_app` from the same settings `serve` reads and started
    through the ASGI lifespan protocol, so it is the shipped app minus uvicorn; a cache hit
    through it is compared with raw_asgi.make_app on the same scope.
    """
    from clientstats.api.app import create_app
    from clientstats.config import load_settings

    os.environ["CLIENTSTATS_DATABASE_URL"] = database_url
    os.environ["CLIENTSTATS_WORKER_IN_PROCESS"] = "false" if args.no_worker else "true"
    if args.redis_url:
        os.environ["CLIENTSTATS_REDIS_URL"] = args.redis_url
    if not args.compare_observability:
        return await _in_process_costs(create_app(load_settings()), path, body, headers, args)
    os.environ.update(OBSERVABILITY_OFF)
    off = create_app(load_settings())
    os.environ.update(OBSERVABILITY_ON)
    on = create_app(load_settings())
    # The access log goes to stderr: to a file while the apps are called (as in the servers).
    saved = os.dup(2)
    with (workdir / "in-process-access.log").open("ab") as log:
        os.dup2(log.fileno(), 2)
        try:
            with_off = await _in_process_costs(off, path, body, headers, args)
            with_on = await _in_process_costs(on, path, body, headers, args)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    return {**with_off, OBSERVED: with_on["clientstats"]}


async def _in_process_costs(
    product: Any,
    path: str,
    body: bytes,
    headers: list[tuple[str, str]],
    args: argparse.Namespace,
) -> dict[str, list[float]]:
    from raw_asgi import make_app

    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    lifespan = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    await inbox.put({"type": "lifespan.startup"})
    task: asyncio.Task[None] = asyncio.create_task(
        product(lifespan, inbox.get, outbox.put)  # type: ignore[arg-type]
    )
    started = await asyncio.wait_for(outbox.get(), 60)
    if started["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"the app did not start: {started}")
    try:
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"127.0.0.1"), (b"user-agent", b"bench")],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
        }
        sent: list[dict[str, Any]] = []

        async def record(message: dict[str, Any]) -> None:
            sent.append(message)

        for _ in range(2):  # the first is the miss that fills this process's cache
            sent.clear()
            await product(scope, _no_body, record)  # type: ignore[arg-type]
        if sent[0]["status"] != 200 or sent[1]["body"] != body:
            raise RuntimeError(f"in-process response differs: {sent}")
        raw = make_app(body, [(k.encode(), v.encode()) for k, v in headers])
        costs: dict[str, list[float]] = {"clientstats": [], "raw ASGI": []}
        for _ in range(args.inprocess_rounds):
            for name, app in (("clientstats", product), ("raw ASGI", raw)):
                costs[name].append(await _per_call_us(app, scope, args.inprocess_calls))
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(outbox.get(), 60)
        await task
    return costs


async def _no_body() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


def _compare(product_url: str, raw_url: str) -> str:
    """Check the two servers send the same body and the same header names."""
    _, product_body, product_headers = fetch(product_url)
    _, raw_body, raw_headers = fetch(raw_url)
    names = sorted(k for k, _ in product_headers), sorted(k for k, _ in raw_headers)
    if product_body != raw_body or names[0] != names[1]:
        raise RuntimeError(f"responses differ: {product_headers} vs {raw_headers}")
    return ", ".join(names[0])


def _alternate(
    urls: dict[str, str], pids: dict[str, int], args: argparse.Namespace
) -> list[WrkRun]:
    """Warm both servers up, then alternate them round by round (ABBA...)."""
    for name, url in urls.items():
        progress(f"warm-up of {name}: {args.warmup} s")
        run_wrk(url, args, args.warmup)
    runs = []
    names = list(urls)
    for round_ in range(1, args.rounds + 1):
        # A B, B A with two servers; with three, each takes each place in turn.
        shift = (round_ - 1) % len(names)
        order = (names[shift:] + names[:shift]) if len(names) > 2 else names
        order = order if round_ % 2 or len(names) > 2 else names[::-1]
        for name in order:
            before = cpu_seconds(pids[name])
            output = run_wrk(urls[name], args, args.duration)
            cpu = cpu_seconds(pids[name]) - before
            run = parse_wrk(output, server=name, round_=round_, cpu=cpu)
            progress(
                f"round {round_} {name}: {run.requests_per_s:.0f} req/s, "
                f"p50 {run.p50_ms:.2f} ms, p99 {run.p99_ms:.2f} ms, errors {run.errors}"
            )
            runs.append(run)
    return runs


def _row(r: WrkRun) -> tuple[object, ...]:
    rate, p50, p99 = f"{r.requests_per_s:.0f}", f"{r.p50_ms:.3f}", f"{r.p99_ms:.3f}"
    cpu = f"{r.cpu_us_per_request:.1f}"
    return (r.round, r.server, rate, p50, p99, cpu, r.requests, r.errors)


def _report(
    args: argparse.Namespace,
    runs: list[WrkRun],
    header_names: str,
    body: bytes,
    headers: list[tuple[str, str]],
    costs: dict[str, list[float]],
) -> list[str]:
    backend = "SQLite"
    if args.database_url:
        server = urlunsplit(urlsplit(args.database_url)._replace(path="/<fresh database>"))
        backend = f"PostgreSQL (`{server}`)"
    lines = markdown_header(
        "Statistics endpoint, cache hit: clientstats vs a raw ASGI app",
        "Requests/s and latency of a cached statistics response served by `clientstats serve` "
        f"(uvicorn, {args.workers} worker(s), httptools, uvloop, access log off, {backend} "
        f"seeded with `clientstats demo --scale {args.scale}`) and by benchmarks/raw_asgi.py "
        "(1 worker) sending the same bytes and headers under the same server options, "
        "measured alternately.",
    )
    lines += [
        f"- clientstats serve: `--workers {args.workers}`, database {backend}, "
        + (f"Redis cache at `{args.redis_url}`" if args.redis_url else "no Redis")
        + "; the raw ASGI app always runs 1 worker, and the server CPU figures of clientstats "
        "sum the supervisor (gunicorn's arbiter with --workers N) and its worker processes",
        f"- load: `wrk -t{args.threads} -c{args.connections} -d{args.duration}s --latency` "
        f"per run, {args.rounds} rounds, {args.warmup} s warm-up per server; "
        "wrk shares the cores with the server",
        f"- response: {len(body)} bytes body, headers: {header_names}",
        "- clientstats serve "
        + ("with `--no-worker`" if args.no_worker else "as shipped (in-process worker on)"),
        f"- sent headers (besides date, server): {headers}",
        "",
        "## Raw figures",
        "",
    ]
    lines += table(
        ["round", "server", "req/s", "p50 ms", "p99 ms", "server CPU us/req", "requests", "errors"],
        [_row(r) for r in runs],
    )
    summary = {}
    for name in dict.fromkeys(r.server for r in runs):
        mine = [r for r in runs if r.server == name]
        summary[name] = (
            median([r.requests_per_s for r in mine]),
            median([r.p50_ms for r in mine]),
            median([r.p99_ms for r in mine]),
            median([r.cpu_us_per_request for r in mine]),
        )
    pairs = [
        (a, b)
        for a in runs
        if a.server == "clientstats"
        for b in runs
        if b.server == "raw ASGI" and b.round == a.round
    ]
    # Each round's two runs are back to back, so their ratio is the least disturbed figure
    # when the background load changes between rounds; the goal uses its median.
    per_round = [a.requests_per_s / b.requests_per_s for a, b in pairs]
    ratio = median(per_round)
    ratio_of_medians = summary["clientstats"][0] / summary["raw ASGI"][0]
    cpu_ratio = median([b.cpu_us_per_request / a.cpu_us_per_request for a, b in pairs])
    p99 = summary["clientstats"][2]
    lines += ["", "## Medians", ""]
    lines += table(
        ["server", "req/s", "p50 ms", "p99 ms", "server CPU us/req"],
        [
            (n, f"{s[0]:.0f}", f"{s[1]:.3f}", f"{s[2]:.3f}", f"{s[3]:.1f}")
            for n, s in summary.items()
        ],
    )
    lines += [
        "",
        "## Goals",
        "",
        f"- req/s ratio clientstats / raw ASGI, median of the per-round ratios: **{ratio:.3f}** "
        f"(per round: {', '.join(f'{x:.3f}' for x in per_round)}; ratio of the medians: "
        f"{ratio_of_medians:.3f}); goal >= {GOAL_RATIO}: {verdict(ratio >= GOAL_RATIO)}",
        f"- clientstats p99 latency (median of rounds): **{p99:.3f} ms**; "
        f"goal < {GOAL_P99_MS} ms: {verdict(p99 < GOAL_P99_MS)} "
        f"(raw ASGI p99 under the same load: {summary['raw ASGI'][2]:.3f} ms)",
        f"- server CPU time per request, raw ASGI / clientstats, median of the per-round "
        f"ratios (less disturbed by other processes than req/s): **{cpu_ratio:.3f}**",
    ]
    product_us, raw_us = median(costs["clientstats"]), median(costs["raw ASGI"])
    raw_cpu = summary["raw ASGI"][3]
    expected = raw_cpu / (raw_cpu + product_us - raw_us)
    lines += [
        "",
        "## In-process cost of the ASGI app alone",
        "",
        f"Each app called directly {args.inprocess_calls:,} times per round with the same "
        "cache-hit scope and a no-op `send` (no uvicorn, no sockets), alternating, "
        f"{args.inprocess_rounds} rounds. This figure hardly depends on other processes.",
        "",
    ]
    lines += table(
        ["app", "us per call (each round)", "median us per call"],
        [
            (name, ", ".join(f"{x:.2f}" for x in values), f"{median(values):.2f}")
            for name, values in costs.items()
        ],
    )
    lines += [
        "",
        f"- the product's app costs **{product_us - raw_us:.2f} us** more per cache hit "
        f"than the raw app; with the raw server's median {raw_cpu:.1f} CPU-us per request "
        f"measured above, that alone predicts a req/s ratio of about **{expected:.3f}** "
        "(derived, not measured: it leaves out the product process's background threads)",
    ]
    if any(r.errors for r in runs):
        lines.append("- WARNING: some runs had socket errors or non-2xx responses (see table)")
    return lines


def _lines_in(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open("rb") as file:
        return sum(1 for line in file if line.startswith(b"{"))


def _observability_report(
    runs: list[WrkRun], costs: dict[str, list[float]], log_lines: int
) -> list[str]:
    """Metrics and access log on vs both off: the same product, alternated in each round."""
    pairs = [
        (on, off)
        for on in runs
        if on.server == OBSERVED
        for off in runs
        if off.server == "clientstats" and off.round == on.round
    ]
    per_round = [on.requests_per_s / off.requests_per_s for on, off in pairs]
    ratio = median(per_round)
    cpu = median([off.cpu_us_per_request / on.cpu_us_per_request for on, off in pairs])
    p99_on = median([on.p99_ms for on, _ in pairs])
    p99_off = median([off.p99_ms for _, off in pairs])
    on_us, off_us = median(costs[OBSERVED]), median(costs["clientstats"])
    off_cpu = median([off.cpu_us_per_request for _, off in pairs])
    derived = off_cpu / (off_cpu + on_us - off_us)
    return [
        "",
        "## Observability: metrics and access log on vs off",
        "",
        f"`{OBSERVED}` is `clientstats serve` with `CLIENTSTATS_METRICS=true` and "
        "`CLIENTSTATS_ACCESS_LOG=true`; `clientstats` above is the same server with both "
        "`false` (the X-Request-ID header is on in both). They ran alternately with the raw "
        "app in every round. The access log went to a file in the benchmark's temporary "
        f"directory (stderr redirected there; real writes, not /dev/null): {log_lines:,} lines.",
        "",
        f"- req/s ratio on / off, median of the per-round ratios: **{ratio:.3f}** (per round: "
        f"{', '.join(f'{x:.3f}' for x in per_round)}); goal >= {GOAL_OBSERVABILITY_RATIO}: "
        f"{verdict(ratio >= GOAL_OBSERVABILITY_RATIO)}",
        f"- server CPU time per request, off / on, median of the per-round ratios: **{cpu:.3f}**",
        f"- p99 latency, median of rounds: {p99_on:.3f} ms on, {p99_off:.3f} ms off",
        f"- in-process, one cache hit: **{on_us:.2f} us** on vs {off_us:.2f} us off "
        f"(+{on_us - off_us:.2f} us for the metrics counters and one access log line); with "
        f"the off server's median {off_cpu:.1f} CPU-us per request, that predicts an on / off "
        f"req/s ratio of about **{derived:.3f}** (derived, not measured; the in-process figure "
        "is the one other processes on the machine disturb least)",
    ]


def main() -> None:
    """Parse options, run the benchmark, print (and optionally record) the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (default 5)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up seconds per server")
    parser.add_argument("--connections", type=int, default=32, help="wrk -c (default 32)")
    parser.add_argument("--threads", type=int, default=1, help="wrk -t (default 1)")
    parser.add_argument("--client", default="volksfreund", help="demo client to request")
    parser.add_argument("--scale", type=int, default=1, help="clientstats demo --scale")
    parser.add_argument("--no-worker", action="store_true", help="serve --no-worker")
    parser.add_argument("--workers", type=int, default=1, help="serve --workers N (default 1)")
    parser.add_argument(
        "--database-url",
        help="serve from PostgreSQL: a database of the server where a fresh database is "
        "created, seeded and dropped afterwards (default: a temporary SQLite file)",
    )
    parser.add_argument("--redis-url", help="CLIENTSTATS_REDIS_URL of the server (default none)")
    parser.add_argument(
        "--compare-observability",
        action="store_true",
        help="also run a second clientstats server with metrics and the access log on (to a "
        "file), and the first with both off; all three alternate",
    )
    parser.add_argument("--inprocess-calls", type=int, default=100_000)
    parser.add_argument("--inprocess-rounds", type=int, default=5)
    parser.add_argument("--output", type=Path, help="also write the report to this file")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit(
            "bench_cache_hit: the load generator `wrk` is not installed; "
            "install it with `apt-get install -y wrk` (Debian/Ubuntu) and run again"
        )
    with tempfile.TemporaryDirectory(prefix="bench-cache-hit-") as workdir:
        lines = measure(args, Path(workdir))
    emit(lines, args.output)


if __name__ == "__main__":
    main()
