"""Live figures: how fast a booking reaches N open stream subscribers of one API process.

What is measured, on one API process (benchmarks/stream_server.py: the app `clientstats
serve` runs, plus read counters) on a SQLite database, with N = 100, 1,000 and 5,000 open
streams of one client held by this script (one asyncio process, raw sockets):

- after a booking (one donation imported by this script, i.e. by another process), the time
  until the last subscriber has received the new figures, median and p99 over the
  bookings, from just before the booking's transaction starts;
- the server's RSS per subscriber (RSS growth from 0 to N open streams, divided by N);
- database reads of the figures per booking (calls of the figures query counted in the
  server), and every SQL statement in the booking's window (the change feed's polls
  included), to show that neither grows with N;
- requests/s of a cache hit of the plain statistics endpoint under `wrk` while N streams are
  open, against benchmarks/raw_asgi.py sending the same bytes (the baseline of
  bench_cache_hit.py), alternating, in the same run; the same pair with no stream open
  first, for comparison.

Goals: p99 <= 2 s at 5,000 subscribers; reads per booking independent of N; the cache hit
with 5,000 streams open >= 0.7x the raw ASGI baseline.

The subscribers, wrk and the server share the machine's cores: the latency includes this
script's own work of reading N events.

Needs `wrk` (Debian/Ubuntu: `apt-get install -y wrk`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shutil
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from bench_cache_hit import cpu_seconds, fetch, parse_wrk
from common import (
    BENCHMARKS,
    PYTHON,
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

from clientstats.services.importing import import_lines
from clientstats.storage.database import make_engine

GOAL_P99_S = 2.0
GOAL_RATIO = 0.7
CLIENT = "bench-live"
PROJECT = 880_001
_SERVER_HEADERS = {"date", "server", "connection"}


class Subscriber(asyncio.Protocol):
    """One open stream; it notes when each event id arrives."""

    def __init__(self, request: bytes, keep_data: bool) -> None:
        self.request = request
        self.keep_data = keep_data
        self.events: list[tuple[float, int]] = []
        self.last_data = b""
        self.status = b""
        self._tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        lines = (self._tail + data).split(b"\n")
        self._tail = lines.pop()
        for line in lines:
            if line.startswith(b"id: "):
                self.events.append((now, int(line[4:])))
            elif self.keep_data and line.startswith(b"data: "):
                self.last_data = line[6:]
            elif not self.status and line.startswith(b"HTTP/1.1 "):
                self.status = line[9:12]


@dataclass
class Level:
    """The figures measured with N subscribers."""

    subscribers: int
    rss_mib: float
    last_s: list[float] = field(default_factory=list)  # last subscriber, per booking
    median_s: list[float] = field(default_factory=list)  # median subscriber, per booking
    reads: list[int] = field(default_factory=list)
    statements: list[int] = field(default_factory=list)
    cpu_s: float = 0.0


def rss_mib(pid: int) -> float:
    """A process's resident set size now (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def counters(base: str) -> dict[str, int]:
    with urllib.request.urlopen(f"{base}/_bench/counters", timeout=10) as response:
        found: dict[str, int] = json.loads(response.read())
        return found


def seed_lines() -> list[bytes]:
    """One client with one project whose need no benchmark run can fill."""
    events = [
        {"event": "client", "id": CLIENT, "name": "Bench Live", "pool": True},
        {"event": "project", "id": PROJECT, "title": "Bench"},
        {"event": "client_project", "client_id": CLIENT, "project_id": PROJECT, "member": True},
        {
            "event": "need",
            "id": PROJECT,
            "project_id": PROJECT,
            "title": "Bench",
            "requested_amount_in_cents": 10**11,
        },
    ]
    return [json.dumps(e).encode() for e in events]


def booking(n: int) -> bytes:
    """A donation that changes the client's figures."""
    return json.dumps(
        {
            "event": "donation",
            "token": f"bench-{n}-{time.time_ns()}",
            "channel": "platform",
            "receiver": {"type": "project", "id": PROJECT},
            "amount_in_cents": 100 + n,
        }
    ).encode()


async def open_streams(port: int, count: int, subscribers: list[Subscriber], wait: float) -> None:
    """Open `count` more streams, in batches the listen backlog takes, and wait for their
    first event."""
    loop = asyncio.get_running_loop()
    path = f"/de/api_v4/clients/{CLIENT}/project_statistics/stream"
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    new: list[Subscriber] = []
    for start in range(0, count, 250):
        batch = [
            Subscriber(request, keep_data=not subscribers and not new and i == 0)
            for i in range(min(250, count - start))
        ]
        await asyncio.gather(
            *(loop.create_connection(lambda s=s: s, "127.0.0.1", port) for s in batch)
        )
        new += batch
    deadline = time.monotonic() + wait
    while any(not s.events for s in new):
        if time.monotonic() > deadline:
            refused = sum(1 for s in new if s.status and s.status != b"200")
            raise RuntimeError(f"streams without a first event ({refused} refused)")
        await asyncio.sleep(0.05)
    subscribers += new


async def measure_bookings(
    level: Level, subscribers: list[Subscriber], args: argparse.Namespace, base: str, engine: object
) -> None:
    """Book, wait until every subscriber has the new figures, note the times and reads."""
    pid_cpu_before = cpu_seconds(args.server_pid)
    for n in range(args.bookings):
        marks = [len(s.events) for s in subscribers]
        before = await asyncio.to_thread(counters, base)
        started = time.perf_counter()
        report = await asyncio.to_thread(import_lines, engine, [booking(n)])  # type: ignore[arg-type]
        if not report.ok:
            raise RuntimeError(f"the booking was refused: {report.summary()}")
        deadline = time.monotonic() + 60
        while any(len(s.events) <= m for s, m in zip(subscribers, marks, strict=True)):
            if time.monotonic() > deadline:
                raise RuntimeError("not every subscriber got the new figures within 60 s")
            await asyncio.sleep(0.005)
        arrivals = [s.events[m][0] - started for s, m in zip(subscribers, marks, strict=True)]
        versions = {s.events[m][1] for s, m in zip(subscribers, marks, strict=True)}
        if len(versions) != 1:
            raise RuntimeError(f"subscribers saw different versions: {versions}")
        await asyncio.sleep(args.pause)  # the booking's window: the reads it causes are done
        after = await asyncio.to_thread(counters, base)
        level.last_s.append(max(arrivals))
        level.median_s.append(median(arrivals))
        level.reads.append(after["statistics_reads"] - before["statistics_reads"])
        level.statements.append(after["statements"] - before["statements"])
    level.cpu_s = cpu_seconds(args.server_pid) - pid_cpu_before


async def wrk_rounds(
    urls: dict[str, str], pids: dict[str, int], args: argparse.Namespace, label: str
) -> list[tuple[str, str, float, float, float]]:
    """Alternate wrk runs against both servers; (label, server, req/s, p99 ms, CPU us/req)."""
    rows = []
    order = list(urls)
    for round_ in range(1, args.rounds + 1):
        for name in order if round_ % 2 else reversed(order):
            cpu = cpu_seconds(pids[name])
            process = await asyncio.create_subprocess_exec(
                "wrk", "-t1", f"-c{args.connections}", f"-d{args.duration}s", "--latency",
                urls[name], stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await process.communicate()
            if process.returncode != 0:
                raise RuntimeError(f"wrk failed: {err.decode()}")
            run = parse_wrk(
                out.decode(), server=name, round_=round_, cpu=cpu_seconds(pids[name]) - cpu
            )
            if run.errors:
                raise RuntimeError(f"wrk saw errors against {name}:\n{out.decode()}")
            rows.append((label, name, run.requests_per_s, run.p99_ms, run.cpu_us_per_request))
            progress(f"{label}: {name} {run.requests_per_s:.0f} req/s")
    return rows


async def run(args: argparse.Namespace, workdir: Path) -> list[str]:
    database_url = f"sqlite:///{workdir / 'clientstats.db'}"
    engine = make_engine(database_url)
    from clientstats.storage.schema import ensure_schema

    ensure_schema(engine)
    if not import_lines(engine, seed_lines()).ok:
        raise RuntimeError("seeding failed")
    port, raw_port = free_port(), free_port()
    env = clientstats_env(
        database_url,
        CLIENTSTATS_WORKER_IN_PROCESS="false",
        CLIENTSTATS_STREAM_MAX_SUBSCRIBERS=str(max(args.sizes) + 100),
    )
    server_cmd = [PYTHON, str(BENCHMARKS / "stream_server.py"), "--port", str(port)]
    base = f"http://127.0.0.1:{port}"
    with child(server_cmd, name="clientstats (stream_server.py)", env=env) as server:
        wait_for_http(f"{base}/health/live", server)
        args.server_pid = server.process.pid
        path = f"/de/api_v4/clients/{CLIENT}/project_statistics.json"
        status, body, headers = fetch(base + path)
        if status != 200:
            raise RuntimeError(f"{path} answered {status}")
        kept = [(k, v) for k, v in headers if k not in _SERVER_HEADERS]
        (workdir / "response.json").write_text(json.dumps({"body": body.decode(), "headers": kept}))
        raw_cmd = [PYTHON, str(BENCHMARKS / "raw_asgi.py"), "--port", str(raw_port)]
        raw_cmd += ["--response", str(workdir / "response.json")]
        with child(raw_cmd, name="raw ASGI app") as raw:
            raw_url = f"http://127.0.0.1:{raw_port}{path}"
            wait_for_http(raw_url, raw)
            urls = {"clientstats": base + path, "raw ASGI": raw_url}
            pids = {"clientstats": server.process.pid, "raw ASGI": raw.process.pid}
            idle_before = await asyncio.to_thread(counters, base)
            await asyncio.sleep(args.pause * 4)
            idle_after = await asyncio.to_thread(counters, base)
            idle_rate = (idle_after["statements"] - idle_before["statements"]) / (args.pause * 4)
            progress("cache hit with no stream open")
            hits = await wrk_rounds(urls, pids, args, "0 streams")
            rss_zero = rss_mib(server.process.pid)
            subscribers: list[Subscriber] = []
            levels = []
            for size in args.sizes:
                progress(f"opening streams up to {size}")
                await open_streams(port, size - len(subscribers), subscribers, wait=120)
                level = Level(size, rss_mib(server.process.pid))
                progress(f"{args.bookings} bookings with {size} subscribers")
                await measure_bookings(level, subscribers, args, base, engine)
                levels.append(level)
            final = subscribers[[s.keep_data for s in subscribers].index(True)].last_data
            same = final == fetch(base + path)[1]
            progress(f"cache hit with {len(subscribers)} streams open")
            hits += await wrk_rounds(urls, pids, args, f"{len(subscribers)} streams")
            for s in subscribers:
                s.transport.close()
    engine.dispose()
    return report(args, levels, hits, rss_zero, idle_rate, same)


def report(
    args: argparse.Namespace,
    levels: list[Level],
    hits: list[tuple[str, str, float, float, float]],
    rss_zero: float,
    idle_rate: float,
    same: bool,
) -> list[str]:
    lines = markdown_header(
        "Live figures: a booking reaching N stream subscribers of one API process",
        "Time from a booking to the last of N subscribers having the new figures, server "
        "memory per subscriber, database reads per booking, and the plain statistics "
        "endpoint's cache hit while the streams are open, against the raw ASGI baseline.",
    )
    lines += [
        "- server: benchmarks/stream_server.py (the app of `clientstats serve`, one process, "
        "uvicorn/httptools/uvloop, with read counters), SQLite, `CLIENTSTATS_WORKER_IN_PROCESS"
        "=false`, freshness poll interval 0.25 s (default), heartbeat 15 s (default)",
        f"- subscribers: this script, one asyncio process, {max(args.sizes):,} raw HTTP/1.1 "
        f"connections at most; bookings: one donation each through `import_lines` in this "
        f"process ({args.bookings} per size, {args.pause} s apart after the last subscriber "
        "has them); time measured from just before the booking's transaction",
        f"- cache hit: `wrk -t1 -c{args.connections} -d{args.duration}s` against the "
        f"statistics endpoint and raw_asgi.py, alternating, {args.rounds} rounds each",
        f"- the last event's data equals the statistics endpoint's body: {same}",
        "",
        "## Booking to subscribers",
        "",
    ]
    rows = []
    for level in levels:
        rows.append(
            (
                f"{level.subscribers:,}",
                f"{median(level.last_s) * 1000:.0f}",
                f"{percentile(level.last_s, 0.99) * 1000:.0f}",
                f"{median(level.median_s) * 1000:.0f}",
                f"{(level.rss_mib - rss_zero) * 1024 / level.subscribers:.1f}",
                f"{median(level.reads):.0f} (max {max(level.reads)})",
                f"{median(level.statements):.0f}",
                f"{level.cpu_s / len(level.last_s) * 1000:.0f}",
            )
        )
    lines += table(
        [
            "subscribers",
            "last subscriber median ms",
            "last subscriber p99 ms",
            "median subscriber ms",
            "RSS KiB / subscriber",
            "figure reads / booking",
            "SQL statements / booking window",
            "server CPU ms / booking",
        ],
        rows,
    )
    lines += [
        "",
        f"Server RSS with no stream open: {rss_zero:.1f} MiB. With no booking, the process "
        f"sends {idle_rate:.1f} SQL statements/s (the change feed's polls).",
        "",
        "## Cache hit of the statistics endpoint",
        "",
    ]
    lines += table(
        ["open streams", "server", "req/s", "p99 ms", "server CPU us/req"],
        [(a, b, f"{c:.0f}", f"{d:.2f}", f"{e:.1f}") for a, b, c, d, e in hits],
    )
    ratios, cpu_ratios = {}, {}
    for label in dict.fromkeys(h[0] for h in hits):
        mine = [h for h in hits if h[0] == label and h[1] == "clientstats"]
        raw = [h for h in hits if h[0] == label and h[1] == "raw ASGI"]
        ratios[label] = median([h[2] for h in mine]) / median([h[2] for h in raw])
        cpu_ratios[label] = median([h[4] for h in raw]) / median([h[4] for h in mine])
    biggest = levels[-1]
    p99 = percentile(biggest.last_s, 0.99)
    ratio = list(ratios.values())[-1]
    reads = sorted({r for level in levels for r in level.reads})
    lines += [
        "",
        "## Goals",
        "",
        f"- p99 of the last subscriber at {biggest.subscribers:,} subscribers: "
        f"**{p99 * 1000:.0f} ms**; goal <= {GOAL_P99_S * 1000:.0f} ms: "
        f"{verdict(p99 <= GOAL_P99_S)}",
        f"- figure reads per booking, every size: {reads}; independent of N: "
        f"{verdict(len(reads) == 1)}",
        "- cache-hit req/s clientstats / raw ASGI (ratio of medians): "
        + ", ".join(f"{label}: **{value:.3f}**" for label, value in ratios.items())
        + f"; goal >= {GOAL_RATIO} with the streams open: {verdict(ratio >= GOAL_RATIO)}",
        "- server CPU time per cache hit, raw ASGI / clientstats (ratio of medians; less "
        "disturbed by other processes than req/s): "
        + ", ".join(f"{label}: **{value:.3f}**" for label, value in cpu_ratios.items()),
    ]
    return lines


def main() -> None:
    """Parse options, run the benchmark, print (and optionally record) the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,5000", help="subscriber counts")
    parser.add_argument("--bookings", type=int, default=20, help="bookings per size")
    parser.add_argument("--pause", type=float, default=0.5, help="seconds after each booking")
    parser.add_argument("--rounds", type=int, default=3, help="wrk rounds per server")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32, help="wrk -c (default 32)")
    parser.add_argument("--output", type=Path, help="also write the report to this file")
    args = parser.parse_args()
    args.sizes = sorted(int(s) for s in args.sizes.split(","))
    if shutil.which("wrk") is None:
        sys.exit("bench_stream: `wrk` is not installed; `apt-get install -y wrk` and run again")
    # Each subscriber is a socket here and one in the server (a child inherits the limit).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = 2 * max(args.sizes) + 1000
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, needed), hard))
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    with tempfile.TemporaryDirectory(prefix="bench-stream-") as workdir:
        lines = asyncio.run(run(args, Path(workdir)))
    emit(lines, args.output)


if __name__ == "__main__":
    main()
