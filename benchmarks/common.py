"""Shared helpers of the benchmark scripts: machine facts, medians, child processes, reports.

Not a benchmark itself. The scripts import it as a sibling module (`python benchmarks/x.py`
puts this folder first on `sys.path`).
"""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import shlex
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCHMARKS = REPO / "benchmarks"
PYTHON = sys.executable


def load_average() -> str:
    """The 1- and 5-minute load averages, to show how shared the machine was."""
    load1, load5, _ = os.getloadavg()
    return f"{load1:.2f}, {load5:.2f}"


# Taken when a benchmark script starts (it imports this module first thing).
_STARTED = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
_LOAD_AT_START = load_average()


def command_line() -> str:
    """The command that is running, as a person would type it from the repository root."""
    script = Path(sys.argv[0]).resolve()
    with_repo = script.is_relative_to(REPO)
    shown = str(script.relative_to(REPO)) if with_repo else sys.argv[0]
    python = Path(PYTHON)
    python_shown = ".venv/bin/python" if python.parent.parent.name == ".venv" else PYTHON
    return shlex.join([python_shown, shown, *sys.argv[1:]])


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def code_version() -> str:
    """The commit the product code is at, and whether src/ has uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    dirty = f" + uncommitted changes in {len(changed)} src files" if changed else ""
    return f"commit {head}{dirty}"


def machine_facts() -> list[tuple[str, str]]:
    """What a reader needs to judge the figures: when, where, how busy the machine was."""
    return [
        ("started", _STARTED),
        ("finished", _now()),
        ("machine", f"{platform.system()} {platform.machine()}, nproc={os.cpu_count()}"),
        ("python", f"{platform.python_version()} ({PYTHON})"),
        ("sqlite", sqlite3.sqlite_version),
        ("code", code_version()),
        ("load average at start (1 min, 5 min)", _LOAD_AT_START),
        ("load average at end (1 min, 5 min)", load_average()),
    ]


def median(values: Sequence[float]) -> float:
    """The median; benchmark figures on a shared machine are quoted as medians."""
    return float(statistics.median(values))


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (fraction in 0..1) of the values."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))
    return float(ordered[index])


def free_port() -> int:
    """A TCP port on the loopback interface that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clientstats_env(database_url: str, **extra: str) -> dict[str, str]:
    """The environment of a clientstats child process: only the settings we choose."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLIENTSTATS_")}
    env["CLIENTSTATS_DATABASE_URL"] = database_url
    env.update(extra)
    return env


@dataclass
class Child:
    """A child process in its own process group, so that stopping it stops its children too."""

    process: subprocess.Popen[bytes]
    name: str

    def stop(self) -> None:
        """SIGTERM to the group, then SIGKILL if it lingers; idempotent."""
        if self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        except ProcessLookupError:
            pass

    def output(self) -> str:
        """What the process wrote, once it has stopped (stdout and stderr together)."""
        if self.process.stdout is None:
            return ""
        return self.process.stdout.read().decode(errors="replace")


@contextmanager
def child(
    args: Sequence[str],
    *,
    name: str,
    env: dict[str, str] | None = None,
    stderr_file: Path | None = None,
) -> Iterator[Child]:
    """Run a long-lived child process (a server) for the duration of a `with` block.

    `stderr_file`: stderr goes there instead of the pipe (for a server that writes a line
    per request, which would fill a pipe nobody reads).
    """
    with contextlib.ExitStack() as files:
        stderr: Any = subprocess.STDOUT
        if stderr_file is not None:
            stderr = files.enter_context(stderr_file.open("ab"))
        process = subprocess.Popen(
            list(args),
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            start_new_session=True,
        )
    running = Child(process, name)
    try:
        yield running
    finally:
        running.stop()


def wait_for_http(url: str, server: Child, *, timeout: float = 30.0) -> None:
    """Wait until `url` answers 200, failing early if the server process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"{server.name} exited with {server.process.returncode}:\n{server.output()}"
            )
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{server.name} did not answer {url} within {timeout:.0f} s")


@dataclass(frozen=True)
class Finished:
    """A child process that ran to completion: exit status, wall time, CPU time, peak memory."""

    returncode: int
    seconds: float
    max_rss_mib: float
    stdout: bytes
    stderr: bytes
    cpu_seconds: float = 0.0  # user + system time of the child and the children it waited for


def run_measured(args: Sequence[str], *, env: dict[str, str] | None = None) -> Finished:
    """Run a child to completion; its peak RSS and CPU time come from wait4's rusage."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(
            list(args), env=env, stdout=out, stderr=err, start_new_session=True
        )
        try:
            # wait4, not Popen.wait: it reports the peak RSS of this very child.
            _, status, usage = os.wait4(process.pid, 0)
        except BaseException:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        # Linux reports ru_maxrss in KiB.
        cpu = usage.ru_utime + usage.ru_stime
        rss = usage.ru_maxrss / 1024
        return Finished(process.returncode, seconds, rss, out.read(), err.read(), cpu)


def local_postgres_cpu_seconds() -> float | None:
    """CPU time the PostgreSQL server on this machine has used so far; None if none is seen.

    The sum over every process named `postgres` of its user and system time and that of the
    children it has reaped: the postmaster reaps each backend when its connection closes, so
    a backend's whole work is counted whether it is still running or not. The difference of
    two readings is the server's work in between, all databases and users together (run
    under the benchmark lock on an otherwise idle server). Linux /proc only.
    """
    ticks = os.sysconf("SC_CLK_TCK")
    total, seen = 0, False
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the process ended meanwhile
            continue
        name, rest = text[text.index("(") + 1 :].rsplit(")", 1)
        if name != "postgres":
            continue
        seen = True
        fields = rest.split()  # fields 3.. of proc(5): utime is 14, cstime 17
        total += sum(int(value) for value in fields[11:15])
    return total / ticks if seen else None


def own_peak_rss_mib() -> float:
    """This process's peak RSS so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def markdown_header(title: str, purpose: str) -> list[str]:
    """The opening of every recorded result: what, the exact command, when and where."""
    lines = [f"# {title}", "", purpose, "", f"Command: `{command_line()}`", ""]
    lines += [f"- {key}: {value}" for key, value in machine_facts()]
    return [*lines, ""]


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def verdict(ok: bool) -> str:
    """How a goal line ends."""
    return "met" if ok else "NOT met"


def emit(lines: Sequence[str], output: Path | None) -> None:
    """Print the report and, if asked, write it to a file."""
    text = "\n".join(lines).rstrip() + "\n"
    sys.stdout.write(text)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text)
        print(f"(written to {output})", file=sys.stderr)


def progress(message: str) -> None:
    """A progress line on stderr, kept out of the report on stdout."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
