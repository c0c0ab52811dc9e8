"""Where an imported event's time goes: microseconds per event by phase, and cProfile hotspots.

Imports a generated event file (the generator of bench_import.py, default 100,000 lines)
in-process with `import_lines` into a fresh SQLite database (or, with `--database-url`, a
fresh schema of a PostgreSQL database), twice: once with light wall-clock timers wrapped
around the phases (reading JSON, validating the decoded object, the booking rules, the
batch's reads, writing the batch's rows and aggregates, commit), once under cProfile. The
phases are named by the functions they wrap; a wrapped function that does not exist in the
code under test is reported as absent, so the script runs on the code before and after a
change. Phase times nest (the booking includes the reads it makes lazily); "other" is the
total minus the outer phases. On PostgreSQL the importer reads and parses the next chunk
in a helper thread while the server writes a batch: time a phase spent in that thread is
shown on a row of its own and left out of the sums, as it ran beside the others.

Not a benchmark with a baseline: a diagnostic that says where to look.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import io
import pstats
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench_import import write_file
from common import emit, markdown_header, progress, table

from clientstats.services.importing import DEFAULT_BATCH_SIZE


@dataclass
class Phase:
    """One wrapped function and the wall time spent in it."""

    label: str
    module: str
    owner: str | None  # a class of the module, or None for a module-level function
    name: str
    outer: bool  # counted against the total (not nested in another outer phase)
    calls: int = 0
    seconds: float = 0.0  # in the importing (main) thread
    helper_seconds: float = 0.0  # in another thread, beside the main thread's phases
    present: bool = False
    restore: list[Callable[[], None]] = field(default_factory=list)


EVENTS, IMPORTING = "clientstats.domain.events", "clientstats.services.importing"
BOOK, LINES = "clientstats.storage.sql_book", "clientstats.services.event_lines"
ROWS, DELTAS = "clientstats.storage.ledger_rows", "clientstats.storage.aggregate_deltas"
LISTS = "clientstats.storage.list_aggregates"
PHASES = (  # label, module, class, function, outer
    ("JSON decoding", "json", None, "loads", True),
    ("JSON decoding", "orjson", None, "loads", True),
    ("validation (decoded object -> event)", EVENTS, None, "parse_event", True),
    ("validation (decoded object -> event)", LINES, None, "parse_event", True),
    ("booking rules (incl. lazy reads)", IMPORTING, None, "apply_event", True),
    ("batch reads (prefetch)", BOOK, "SqlBook", "prefetch", True),
    ("writing rows and aggregates (flush)", BOOK, "SqlBook", "flush", True),
    ("  of which: ledger rows", BOOK, "SqlBook", "_insert_rows", False),
    ("  of which: ledger rows", ROWS, "LedgerRows", "write", False),
    ("  of which: aggregates", BOOK, "SqlBook", "_flush_aggregates", False),
    ("  of which: aggregates", DELTAS, "AggregateDeltas", "write", False),
    ("    of which: list aggregates", LISTS, "ListDeltas", "flush", False),
    ("      of which: last donation times", LISTS, "ListDeltas", "_flush_latest", False),
    ("      of which: last donation times", DELTAS, None, "recompute_last_donation", False),
    ("  of which: versions/change feed", BOOK, "SqlBook", "_bump_versions", False),
    ("  of which: versions/change feed", BOOK, None, "record_change", False),
    ("commit", "sqlalchemy.engine.base", "RootTransaction", "_do_commit", True),
    ("ANALYZE (PostgreSQL)", IMPORTING, "PlannerRefresh", "after_batch", True),
)


def _wrap(phase: Phase) -> None:
    try:
        module = importlib.import_module(phase.module)
    except ImportError:
        return
    holder: Any = module if phase.owner is None else getattr(module, phase.owner, None)
    original = getattr(holder, phase.name, None) if holder is not None else None
    if original is None:
        return
    phase.present = True

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            took = time.perf_counter() - started
            if threading.current_thread() is threading.main_thread():
                phase.seconds += took
            else:
                phase.helper_seconds += took
            phase.calls += 1

    setattr(holder, phase.name, timed)
    phase.restore.append(lambda: setattr(holder, phase.name, original))


@contextmanager
def database(url: str | None, workdir: Path) -> Iterator[Any]:
    """A fresh database engine with the schema: a SQLite file, or a PostgreSQL schema."""
    from sqlalchemy import text

    from clientstats.storage.database import make_engine
    from clientstats.storage.schema import ensure_schema

    if url is None:
        path = workdir / f"profile-{uuid.uuid4().hex[:8]}.db"
        engine = make_engine(f"sqlite:///{path}")
        ensure_schema(engine)
        try:
            yield engine
        finally:
            engine.dispose()
        return
    schema = f"profile_{uuid.uuid4().hex[:8]}"
    admin = make_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in url else "?"
    engine = make_engine(f"{url}{sep}options=-csearch_path%3D{schema}")
    ensure_schema(engine)
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def timed_run(file: Path, args: argparse.Namespace, workdir: Path) -> tuple[list[Phase], float]:
    """Import the file with the phase timers on; the phases and the total seconds."""
    from clientstats.services.importing import import_lines

    phases = [Phase(*spec) for spec in PHASES]
    with database(args.database_url, workdir) as engine:
        for phase in phases:
            _wrap(phase)
        try:
            with file.open("rb") as stream:
                started = time.perf_counter()
                report = import_lines(engine, stream, batch_size=args.batch_size)
                total = time.perf_counter() - started
        finally:
            for phase in phases:
                for restore in phase.restore:
                    restore()
    if report.applied != args.lines:
        raise SystemExit(f"profile_import: not every line applied: {report.summary()}")
    return phases, total


def profiled_run(file: Path, args: argparse.Namespace, workdir: Path) -> list[str]:
    """Import the file under cProfile; the top functions by own and cumulative time."""
    from clientstats.services.importing import import_lines

    profiler = cProfile.Profile()
    with database(args.database_url, workdir) as engine, file.open("rb") as stream:
        profiler.enable()
        import_lines(engine, stream, batch_size=args.batch_size)
        profiler.disable()
    result = []
    for order in ("tottime", "cumulative"):
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).strip_dirs().sort_stats(order).print_stats(args.top)
        body = text.getvalue()
        body = body[body.index("   ncalls") :] if "   ncalls" in body else body
        result += [f"Top {args.top} by {order} (cProfile):", "", "```", body.rstrip(), "```", ""]
    return result


def phase_table(phases: list[Phase], total: float, lines: int) -> list[str]:
    """Microseconds per event of each phase, and the share of the total."""
    merged: dict[str, Phase] = {}
    for phase in phases:
        if not phase.present:
            merged.setdefault(phase.label, phase)
            continue
        kept = merged.get(phase.label)
        if kept is None or not kept.present:
            merged[phase.label] = Phase(phase.label, "", None, "", phase.outer, present=True)
            kept = merged[phase.label]
        kept.calls += phase.calls
        kept.seconds += phase.seconds
        kept.helper_seconds += phase.helper_seconds
    outer = sum(p.seconds for p in merged.values() if p.present and p.outer)
    rows = []
    for p in merged.values():
        if not p.present:
            rows.append((p.label, "absent", "-", "-"))
            continue
        if p.seconds or not p.helper_seconds:
            rows.append(
                (p.label, f"{p.calls:,}", f"{1e6 * p.seconds / lines:.1f}", share(p.seconds, total))
            )
        if p.helper_seconds:
            label = f"{p.label}, in the helper thread (beside the rest: not in the total)"
            rows.append(
                (
                    label,
                    "",
                    f"{1e6 * p.helper_seconds / lines:.1f}",
                    f"({share(p.helper_seconds, total)})",
                )
            )
    other = total - outer
    rows.append(
        (
            "other (reading lines, batching, bookkeeping)",
            "",
            f"{1e6 * other / lines:.1f}",
            share(other, total),
        )
    )
    rows.append(("**total**", "", f"**{1e6 * total / lines:.1f}**", "100 %"))
    return table(["phase", "calls", "us per event", "share"], rows)


def share(seconds: float, total: float) -> str:
    return f"{100 * seconds / total:.0f} %"


def main() -> None:
    """Generate the file, run the timed and the profiled import, print the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--seed", type=int, default=2015)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--database-url", help="a PostgreSQL URL (default: a SQLite file)")
    parser.add_argument("--no-cprofile", action="store_true", help="only the phase timers")
    parser.add_argument("--output", type=Path, help="also write the report to this file")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="profile-import-"))
    try:
        file = workdir / "events.jsonl"
        progress(f"generating {file} ({args.lines:,} lines)")
        write_file(file, args.lines, args.seed)
        progress("timed import")
        phases, total = timed_run(file, args, workdir)
        profile = []
        if not args.no_cprofile:
            progress("cProfile import")
            profile = profiled_run(file, args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    backend = "PostgreSQL" if args.database_url else "SQLite"
    lines = markdown_header(
        "Where an imported event's time goes",
        f"`import_lines` in-process on {args.lines:,} generated lines ({backend}, batch size "
        f"{args.batch_size}): wall time per phase with light timers, then cProfile.",
    )
    lines += [
        f"Timed import: {total:.1f} s, {args.lines / total:,.0f} events/s.",
        "",
        *phase_table(phases, total, args.lines),
        "",
        *profile,
    ]
    emit(lines, args.output)


if __name__ == "__main__":
    main()
