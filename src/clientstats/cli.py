"""The `clientstats` command: each subcommand calls services, never SQL."""

from __future__ import annotations

import functools
import gc
import os
import sys
from collections.abc import Callable, Iterator
from typing import IO, Any, TypeVar

import click
import orjson
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from clientstats.config import Settings, settings
from clientstats.demo_data import generate_demo_events
from clientstats.errors import ClientstatsError
from clientstats.services.importing import ImportReport, import_lines
from clientstats.services.statistics import get_snapshot_or_raise
from clientstats.services.verification import verify
from clientstats.storage.database import make_engine
from clientstats.storage.schema import ensure_schema, head_revision, migrate

F = TypeVar("F", bound=Callable[..., Any])
MAX_REPORTED_LINES = 1000


def _fail(message: str) -> None:
    click.echo(f"clientstats: {' '.join(message.split())}", err=True)
    sys.exit(1)


def one_line_errors(command: F) -> F:
    """Turn every expected failure into one line on stderr and exit status 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ClientstatsError as exc:
            _fail(exc.message)
        except SQLAlchemyError as exc:
            _fail(f"database error: {str(exc.orig if hasattr(exc, 'orig') else exc).strip()}")
        except OSError as exc:
            _fail(str(exc))

    return wrapper  # type: ignore[return-value]


def _engine(config: Settings) -> Engine:
    engine = make_engine(
        config.database_url, pool_size=config.database_pool_size, timeout=config.database_timeout
    )
    ensure_schema(engine)
    return engine


@click.group()
def main() -> None:
    """clientstats: live, exact client statistics for a fundraising platform."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--no-worker", is_flag=True, help="Do not book requests in the API processes.")
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Number of API processes.",
)
@one_line_errors
def serve(host: str, port: int, no_worker: bool, workers: int) -> None:
    """Run the HTTP API."""
    from clientstats import serving

    config = settings()
    if no_worker:
        config = config.model_copy(update={"worker_in_process": False})
    sock = serving.listen(host, port)  # first: a busy port needs no database to be told
    _engine(config).dispose()
    serving.run(config, sock, workers=workers)


@main.command(name="migrate")
@one_line_errors
def migrate_command() -> None:
    """Bring the database schema up to date."""
    config = settings()
    engine = make_engine(
        config.database_url, pool_size=config.database_pool_size, timeout=config.database_timeout
    )
    migrate(engine)
    click.echo(f"schema at {head_revision()}")


def _lines_with_progress(stream: IO[bytes], total: int | None) -> Iterator[bytes]:
    if total is None or not sys.stderr.isatty():
        yield from stream
        return
    with click.progressbar(length=total, label="importing", file=sys.stderr) as bar:
        for line in stream:
            bar.update(len(line))
            yield line


def _print_report(report: ImportReport) -> None:
    problems = sorted(report.rejected + report.failures, key=lambda r: r.line)
    for problem in problems[:MAX_REPORTED_LINES]:
        click.echo(f"line {problem.line}: {problem.reason}", err=True)
    if len(problems) > MAX_REPORTED_LINES:
        click.echo(f"... and {len(problems) - MAX_REPORTED_LINES} more", err=True)
    click.echo(orjson.dumps(report.summary()).decode())


def _collect_garbage_rarely() -> None:
    """Tune this one-shot process's garbage collector for a bulk load.

    An import makes millions of short-lived objects that reference counting frees; the
    cycle collector, run every 700 allocations by default, mostly re-scans the batch's live
    state (about a tenth of an import's CPU time). Objects made at start-up are frozen out
    of its scans, and it runs after every 50,000 allocations: a batch's garbage, not the
    ledger's size, bounds what it can hold back, so memory stays flat.
    """
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


@main.command(name="import")
@click.argument("file", type=click.Path(allow_dash=True, dir_okay=False))
@one_line_errors
def import_command(file: str) -> None:
    """Apply a ledger event file (JSON Lines); `-` reads stdin."""
    _collect_garbage_rarely()
    config = settings()
    engine = _engine(config)
    if file == "-":
        report = import_lines(engine, sys.stdin.buffer, batch_size=config.import_batch_size)
    else:
        with open(file, "rb") as stream:
            lines = _lines_with_progress(stream, os.fstat(stream.fileno()).st_size)
            report = import_lines(engine, lines, batch_size=config.import_batch_size)
    _print_report(report)
    if not report.ok:
        sys.exit(1)


@main.command()
@click.option("--scale", default=1, show_default=True, type=click.IntRange(1, 1000))
@one_line_errors
def demo(scale: int) -> None:
    """Load a realistic generated data set (several clients, hundreds of projects)."""
    config = settings()
    lines = (orjson.dumps(event) for event in generate_demo_events(scale=scale))
    report = import_lines(_engine(config), lines, batch_size=config.import_batch_size)
    _print_report(report)
    if not report.ok:
        sys.exit(1)


@main.command()
@click.argument("client")
@one_line_errors
def stats(client: str) -> None:
    """Print the statistics response body of CLIENT."""
    snapshot = get_snapshot_or_raise(_engine(settings()), client)
    click.echo(orjson.dumps(snapshot.statistics.as_response()).decode())


@main.command(name="verify")
@click.option(
    "--url",
    "base_url",
    metavar="BASE",
    help="Also compare the answers of the server at BASE (e.g. http://127.0.0.1:8000).",
)
@one_line_errors
def verify_command(base_url: str | None) -> None:
    """Recompute every figure from the ledger; compare it with what is served; exit 1 on any
    difference."""
    from clientstats.services.served_check import (
        check_server,
        check_shared_cache,
        http_fetcher,
    )

    config = settings()
    engine = _engine(config)
    report = verify(engine)
    for d in report.differences:
        click.echo(f"{d.client_id} {d.key}: served {d.served}, ledger says {d.recomputed}")
    served = []
    if config.redis_url:
        from clientstats.cache.redis_cache import RedisCache

        shared = RedisCache(config.redis_url, timeout=config.redis_timeout)
        if not shared.ping():
            raise ClientstatsError(f"the shared cache at {config.redis_url} does not answer")
        served += check_shared_cache(shared, report.verified)
    skipped = 0
    if base_url:
        found, skipped = check_server(
            engine, http_fetcher(base_url), report.verified, where=base_url
        )
        served += found
    for s in served:
        click.echo(f"{s.client_id} ({s.where}): {s.detail}")
    for client_id, balance in sorted(report.negative_pools.items()):
        click.echo(f"warning: pool of {client_id} is negative ({balance} cents)")
    if skipped:
        click.echo(f"note: {skipped} private client(s) not asked at {base_url} (credentials)")
    unmet = list(report.unmet_revocations.items())
    for token, revoked_at in unmet[:MAX_REPORTED_LINES]:
        click.echo(
            f"warning: revocation of {token} ({revoked_at.isoformat()}) never met its donation "
            "(none has that token)"
        )
    if len(unmet) > MAX_REPORTED_LINES:
        click.echo(f"warning: ... and {len(unmet) - MAX_REPORTED_LINES} more such revocations")
    click.echo(
        f"verified {report.clients} clients over {report.entries} ledger entries: "
        f"{len(report.differences) + len(served)} difference(s)"
    )
    if report.differences or served:
        sys.exit(1)


@main.command()
@one_line_errors
def worker() -> None:
    """Book pending pledges and forwarding requests until stopped (SIGINT/SIGTERM)."""
    import signal

    from clientstats.worker import Worker

    process_worker = Worker(_engine(settings()))

    def _stop(_signum: int, _frame: object) -> None:
        process_worker.stopping.set()
        process_worker.woken.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    click.echo("worker started", err=True)
    process_worker.run()


@main.group()
def client() -> None:
    """Manage clients."""


@client.command()
@click.argument("client_id")
@one_line_errors
def credentials(client_id: str) -> None:
    """Issue a new API password for CLIENT_ID and print the credentials as JSON."""
    from clientstats.services.credentials import issue_credentials

    click.echo(orjson.dumps(issue_credentials(_engine(settings()), client_id)).decode())


@main.command()
@click.argument("client_id")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@one_line_errors
def reconcile(client_id: str, file: str) -> None:
    """Compare a client's CSV of collected pledges with the booked ones."""
    from clientstats.services.reconciliation import reconcile as run_reconcile

    engine = _engine(settings())
    # Bytes, not text: the file must be UTF-8 whatever the locale says about stdin.
    if file == "-":
        findings = run_reconcile(engine, client_id, sys.stdin.buffer)
    else:
        with open(file, "rb") as stream:
            findings = run_reconcile(engine, client_id, stream)
    for finding in findings:
        click.echo(f"{finding.kind}\t{finding.client_reference}\t{finding.detail}")
    click.echo(f"{len(findings)} finding(s)", err=True)
    if findings:
        sys.exit(1)
