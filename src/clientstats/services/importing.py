"""Applying a stream of ledger event lines in batched transactions."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

from clientstats.domain.booking import Outcome, apply_event
from clientstats.domain.events import (
    ClientProjectEvent,
    DonationEvent,
    Event,
    EventInvalid,
    ForwardingEvent,
    NeedEvent,
    ProjectEvent,
    RevocationEvent,
)
from clientstats.domain.ledger import BookingRejected
from clientstats.services.event_lines import decode_event
from clientstats.services.line_chunks import LineChunks
from clientstats.storage.database import retrying, write_transaction
from clientstats.storage.schema import refresh_planner_statistics
from clientstats.storage.sql_book import SqlBook

log = logging.getLogger(__name__)

MAX_LINE_BYTES = 64 * 1024
# Lines per transaction. Each batch costs a fixed number of statements (prefetch, ledger
# rows, one UPDATE per touched aggregate row, change feed, commit) and reloads the projects
# it names; 5,000 lines spread that over more lines while the batch's state stays a few MiB
# and a writer holds the database's write lock for well under a second.
DEFAULT_BATCH_SIZE = 5000
ANALYZE_FIRST_AT_LINE = 1000
_FAILED_PREFIX = "forwarding recorded as failed: "


@dataclass(frozen=True, slots=True)
class Rejection:
    """A line that was not applied, and why."""

    line: int
    reason: str


@dataclass(slots=True)
class ImportReport:
    """What an import did, line by line summed up."""

    lines: int = 0
    applied: int = 0
    unchanged: int = 0
    failed: int = 0
    deferred: int = 0
    blank: int = 0  # skipped, but numbered and counted in `lines`
    rejected: list[Rejection] = field(default_factory=list)
    failures: list[Rejection] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.rejected and not self.failures

    def count(self, outcome: Outcome) -> None:
        if outcome is Outcome.APPLIED:
            self.applied += 1
        elif outcome is Outcome.UNCHANGED:
            self.unchanged += 1
        elif outcome is Outcome.DEFERRED:
            self.deferred += 1

    def summary(self) -> dict[str, object]:
        """A JSON-ready summary; every line read is counted once, so the counts add up to it."""
        return {
            "lines": self.lines,
            "applied": self.applied,
            "unchanged": self.unchanged,
            "deferred": self.deferred,
            "failed": self.failed,
            "rejected": len(self.rejected),
            "blank": self.blank,
        }


Parsed = tuple[int, Event | EventInvalid]


def _parse(numbered: Iterable[tuple[int, bytes]], now: datetime) -> Iterator[Parsed]:
    for number, raw in numbered:
        if _is_blank(raw):
            continue
        if len(raw) > MAX_LINE_BYTES:
            yield number, EventInvalid({"line": [f"is longer than {MAX_LINE_BYTES} bytes"]})
            continue
        try:
            yield number, decode_event(raw, now=now)
        except EventInvalid as invalid:
            yield number, invalid


def _parse_chunk(chunk: list[tuple[int, bytes]], now: datetime) -> list[Parsed]:
    return list(_parse(chunk, now))


def _is_blank(raw: bytes) -> bool:
    return not raw.strip()


class PlannerRefresh:
    """ANALYZE as an import grows the ledger: after the first batch, then at each doubling.

    So the database's picture of the ledger stays within a factor of two of its size, for a
    few ANALYZEs in all (see storage.schema.refresh_planner_statistics).
    """

    def __init__(self) -> None:
        self.next_at = ANALYZE_FIRST_AT_LINE

    def after_batch(self, engine: Engine, lines: int) -> None:
        """Call after each batch with the number of lines read so far."""
        if lines >= self.next_at:
            self.next_at = 2 * lines
            try:
                refresh_planner_statistics(engine)
            except DBAPIError as exc:
                # Only an optimisation: the batches are committed; the next one will tell
                # whether the database is really gone.
                log.warning("could not refresh the planner statistics: %s", exc.orig)


def import_lines(
    engine: Engine,
    lines: Iterable[bytes],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_batch: Callable[[ImportReport], None] | None = None,
) -> ImportReport:
    """Apply event lines in order; bad lines are reported and skipped, all others applied."""
    report = ImportReport()
    refresh = PlannerRefresh()
    # PostgreSQL writes a batch in its own process: the next chunk is parsed meanwhile.
    ahead = engine.dialect.name == "postgresql"
    with LineChunks(lines, batch_size, _parse_chunk, ahead=ahead) as chunks:
        for chunk in chunks:
            report.lines = chunk.last_line
            report.blank += sum(1 for _, raw in chunk.lines if _is_blank(raw))
            apply_batch(engine, chunk.parsed, report, now=chunk.now, before_writes=chunks.read_next)
            refresh.after_batch(engine, report.lines)
            if on_batch is not None:
                on_batch(report)
    return report


def apply_lines(
    engine: Engine,
    chunk: list[tuple[int, bytes]],
    report: ImportReport,
    refresh: PlannerRefresh | None = None,
) -> None:
    """Parse and apply one chunk of numbered lines in one transaction."""
    if not chunk:
        return
    now = datetime.now(UTC)
    report.lines = chunk[-1][0]
    report.blank += sum(1 for _, raw in chunk if _is_blank(raw))
    apply_batch(engine, _parse_chunk(chunk, now), report, now=now)
    if refresh is not None:
        refresh.after_batch(engine, report.lines)


def apply_batch(
    engine: Engine,
    batch: list[Parsed],
    report: ImportReport,
    *,
    now: datetime,
    before_writes: Callable[[], None] = lambda: None,
) -> None:
    """Apply parsed lines in one transaction; if the database refuses it, line by line.

    `before_writes` is called once the batch is booked, before its rows are sent.
    """
    try:
        outcomes = retrying(
            5, lambda: _apply_in_one_transaction(engine, batch, now=now, before=before_writes)
        )
    except (IntegrityError, DataError) as exc:
        # Validation should have caught it; the database's constraints are the backstop.
        if len(batch) == 1:
            report.rejected.append(Rejection(batch[0][0], f"refused by the database: {exc.orig}"))
            return
        log.warning("a batch was refused by the database (%s); applying it line by line", exc.orig)
        for parsed in batch:
            apply_batch(engine, [parsed], report, now=now)
        return
    for number, outcome in outcomes:
        if isinstance(outcome, Outcome):
            report.count(outcome)
        elif outcome.startswith(_FAILED_PREFIX):
            report.failed += 1
            report.failures.append(Rejection(number, outcome))
        else:
            report.rejected.append(Rejection(number, outcome))


def _apply_in_one_transaction(
    engine: Engine, batch: list[Parsed], *, now: datetime, before: Callable[[], None]
) -> list[tuple[int, Outcome | str]]:
    events = [event for _, event in batch if not isinstance(event, EventInvalid)]
    outcomes: list[tuple[int, Outcome | str]] = []
    with write_transaction(engine, bulk=True) as conn:
        book = SqlBook(conn, now=now)
        _prefetch(book, events)
        for number, event in batch:
            if isinstance(event, EventInvalid):
                outcomes.append((number, str(event)))
                continue
            try:
                outcome = apply_event(book, event)
                outcomes.append(
                    (number, _failure(book, event) if outcome is Outcome.FAILED else outcome)
                )
            except BookingRejected as rejected:
                outcomes.append((number, str(rejected)))
        before()
        book.flush()
    return outcomes


def _failure(book: SqlBook, event: Event) -> str:
    assert isinstance(event, ForwardingEvent)
    booked = book.get_donation(event.forwarding.token)
    code = booked.failure_code if booked is not None else None
    return f"{_FAILED_PREFIX}{code}; it moved no money"


def _prefetch(book: SqlBook, events: list[Event]) -> None:
    """Load in a few statements what the batch's events name (one pass over them)."""
    tokens: list[str] = []
    references: list[tuple[str, str]] = []
    projects: list[int] = []
    revoked: list[str] = []
    needs: list[int] = []
    memberships: list[tuple[str, int]] = []
    for event in events:
        if isinstance(event, DonationEvent | ForwardingEvent):
            entry = event.donation if isinstance(event, DonationEvent) else event.forwarding
            tokens.append(entry.token)
            if entry.project_id is not None:
                projects.append(entry.project_id)
            if entry.client_id and entry.client_reference:
                references.append((entry.client_id, entry.client_reference))
        elif isinstance(event, RevocationEvent):
            tokens.append(event.token)
            revoked.append(event.token)
        elif isinstance(event, ProjectEvent):
            projects.append(event.id)
        elif isinstance(event, NeedEvent | ClientProjectEvent):
            if isinstance(event, NeedEvent):
                needs.append(event.id)
            else:
                memberships.append((event.client_id, event.project_id))
            if event.project_id is not None:
                projects.append(event.project_id)
    book.prefetch(
        tokens=tokens,
        references=references,
        project_ids=projects,
        revoked=revoked,
        need_ids=needs,
        memberships=memberships,
    )
