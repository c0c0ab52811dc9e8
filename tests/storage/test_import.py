"""Importing ledger event lines into each database: reports, batches, idempotency."""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from clientstats.demo_data import generate_demo_events
from clientstats.domain.events import NeedEvent, parse_line
from clientstats.services.importing import ImportReport, apply_batch, import_lines
from clientstats.services.verification import verify
from clientstats.storage.database import read_transaction
from clientstats.storage.ledger_queries import stream_entries
from clientstats.storage.sql_book import SqlBook
from clientstats.storage.statistics_queries import client_snapshot
from clientstats.storage.tables import donations, needs
from tests.strategies import (
    Line,
    client_event,
    donation_event,
    forwarding_event,
    fund_event,
    member_event,
    need_event,
    project_event,
    revocation_event,
    to_lines,
)

REFERENCE: list[Line] = [
    client_event("vf", pool=True),
    client_event("acme"),
    project_event(1),
    project_event(2, closed=True),
    member_event("vf", 1),
    member_event("vf", 2),
    member_event("acme", 1),
    need_event(10, 1, 10_000),
    fund_event(1, "acme", provided=1_000, maximum=600, project_ids=[1]),
]


def run(engine: Engine, stream: list[Line], *, batch_size: int = 1000) -> ImportReport:
    return import_lines(engine, to_lines(stream), batch_size=batch_size)


def figures(engine: Engine, client_id: str) -> dict[str, object]:
    with read_transaction(engine) as conn:
        snapshot = client_snapshot(conn, client_id)
    assert snapshot is not None
    return snapshot.statistics.as_response()


def ledger(engine: Engine) -> dict[str, tuple[int, bool, str | None]]:
    """token -> (amount, revoked, failure code) of every stored entry."""
    with read_transaction(engine) as conn:
        return {
            d.token: (d.amount_in_cents, revoked, d.failure_code and d.failure_code.value)
            for d, revoked in stream_entries(conn)
        }


def reasons(report: ImportReport) -> dict[int, str]:
    return {r.line: r.reason for r in report.rejected}


def test_bad_lines_are_reported_with_number_and_reason_and_the_rest_applied(
    engine: Engine,
) -> None:
    report = run(
        engine,
        [
            *REFERENCE,  # lines 1-9
            "{not json",  # 10
            donation_event("d1", 700, project=1),  # 11
            {"event": "refund", "token": "d1"},  # 12
            donation_event("d2", 0, project=1),  # 13
            donation_event("d3", 900, project=99),  # 14
            {**donation_event("d4", 100, project=1), "colour": "red"},  # 15
            donation_event("d5", 300, project=1),  # 16
        ],
        batch_size=4,
    )
    assert reasons(report) == {
        10: reasons_of("{not json"),
        12: "event: must be one of client, project, client_project, need, matching_fund, "
        "donation, forwarding, revocation",
        13: "amount_in_cents: must be between 1 and 100000000000",
        14: "receiver: unknown project 99",
        15: "colour: is not a known field of donation events",
    }
    assert (report.lines, report.applied, report.unchanged) == (16, 11, 0)
    assert not report.ok
    assert set(ledger(engine)) == {"d1", "d5", "matching:1:d1", "matching:1:d5"}
    assert figures(engine, "vf")["donated_amount_in_cents"] == 700 + 300 + 600 + 300


def reasons_of(line: str) -> str:
    """The reason the parser gives for a line (the report must pass it on unchanged)."""
    try:
        parse_line(line, now=datetime.now(UTC))
    except Exception as error:
        return str(error)
    raise AssertionError(f"{line!r} parses")


def test_blank_lines_are_skipped_but_keep_their_numbers(engine: Engine) -> None:
    report = run(engine, [client_event("vf"), "", "   \t", "{", project_event(1), ""])
    assert reasons(report) == {4: reasons_of("{")}
    assert (report.lines, report.applied, report.unchanged, report.blank) == (6, 2, 0, 3)


EVERY_OUTCOME: list[Line] = [
    "",  # 1: blank
    *REFERENCE,  # 2-10: applied
    "\t",  # 11: blank
    donation_event("d1", 700, project=1),  # 12: applied
    donation_event("d1", 700, project=1),  # 13: unchanged
    revocation_event("d2"),  # 14: deferred
    forwarding_event("f1", "vf", 1, 500),  # 15: failed (the pool is empty)
    "{",  # 16: rejected
    donation_event("d3", 700, project=99),  # 17: rejected (unknown project)
    "  ",  # 18: blank
    client_event("vf", pool=True),  # 19: unchanged
]


@pytest.mark.parametrize("batch_size", [1, 4, 1000])
def test_the_summary_counts_add_up_to_the_lines_read(engine: Engine, batch_size: int) -> None:
    summary = run(engine, EVERY_OUTCOME, batch_size=batch_size).summary()
    assert summary == {
        "lines": 19,
        "applied": 10,
        "unchanged": 2,
        "deferred": 1,
        "failed": 1,
        "rejected": 2,
        "blank": 3,
    }
    assert summary["lines"] == sum(v for k, v in summary.items() if k != "lines")


def test_an_empty_import_does_nothing(engine: Engine) -> None:
    report = import_lines(engine, [])
    assert report.summary() == {
        "lines": 0,
        "applied": 0,
        "unchanged": 0,
        "deferred": 0,
        "failed": 0,
        "rejected": 0,
        "blank": 0,
    }
    assert report.ok


def test_batches_report_progress(engine: Engine) -> None:
    seen: list[int] = []
    lines = to_lines([*REFERENCE, donation_event("d1", 5, project=1)])
    import_lines(engine, lines, batch_size=4, on_batch=lambda report: seen.append(report.lines))
    assert seen == [4, 8, 10]


def test_a_failed_forwarding_is_recorded_reported_and_moves_nothing(engine: Engine) -> None:
    stream = [
        *REFERENCE,
        donation_event("d1", 1_000, channel="offline", pool="vf"),  # 10
        forwarding_event("f1", "vf", 1, 1_001),  # 11: pool_empty
        forwarding_event("f2", "acme", 1, 5),  # 12: pool_missing
        forwarding_event("f3", "vf", 2, 5),  # 13: receiver prohibited
        forwarding_event("f4", "vf", 1, 400),  # 14
    ]
    report = run(engine, stream, batch_size=3)
    assert report.rejected == []
    assert report.failed == 3
    assert {f.line: f.reason for f in report.failures} == {
        11: "forwarding recorded as failed: pool_empty; it moved no money",
        12: "forwarding recorded as failed: pool_missing; it moved no money",
        13: "forwarding recorded as failed: "
        "receiver_prohibited_from_receiving_donations; it moved no money",
    }
    assert not report.ok
    stored = ledger(engine)
    assert stored["f1"] == (1_001, False, "pool_empty")
    assert stored["f4"] == (400, False, None)
    assert figures(engine, "vf")["pool_balance_in_cents"] == 600
    again = run(engine, stream, batch_size=3)
    assert (again.applied, again.unchanged, again.failed, again.rejected) == (0, 14, 0, [])
    assert ledger(engine) == stored


def test_repeats_and_conflicts_across_batch_boundaries(engine: Engine) -> None:
    first = donation_event(
        "d1", 700, channel="client", client="vf", project=1, client_reference="r"
    )
    stream = [
        *REFERENCE,  # 1-9
        first,  # 10
        first,  # 11: same batch, unchanged
        {**first, "amount_in_cents": 701},  # 12: other content
        revocation_event("d1"),  # 13
        first,  # 14: next batch, unchanged (a revoked donation stays booked)
        {**first, "amount_in_cents": 701},  # 15
        revocation_event("d1"),  # 16: revoking twice
        donation_event("d2", 5, channel="client", client="vf", project=1, client_reference="r"),
    ]
    report = run(engine, stream, batch_size=12)
    conflict = "token: d1 is already booked with other content"
    assert reasons(report) == {
        12: conflict,
        15: conflict,
        17: "client_reference: r is already used by d1 of this client",
    }
    assert (report.applied, report.unchanged) == (11, 3)
    assert ledger(engine) == {"d1": (700, True, None), "matching:1:d1": (600, True, None)}
    assert figures(engine, "acme")["client_matched_amount_in_cents"] == 0


SCENARIO: list[Line] = [
    *REFERENCE,
    donation_event("d1", 800, project=1),  # matched 600: the budget has 400 left
    donation_event("d2", 100, channel="client", client="vf", project=1),  # matched 100
    donation_event("d3", 900, channel="client", client="vf", project=2),  # redirected to the pool
    revocation_event("d1"),  # frees 600 of the budget
    donation_event("d4", 900, project=1),  # matched 600
    donation_event("d5", 5_000, channel="offline", pool="vf"),
    forwarding_event("f1", "vf", 1, 5_500),
    revocation_event("d5"),  # the pool goes negative
    need_event(11, 1, 4_000),  # a late need
    {"event": "matching_fund", "id": 1, "state": "closed"},
    donation_event("d6", 50, project=1),  # not matched
]


@pytest.mark.parametrize("batch_size", [1, 2, 5, 1000])
def test_figures_do_not_depend_on_the_batch_size(engine: Engine, batch_size: int) -> None:
    report = run(engine, SCENARIO, batch_size=batch_size)
    assert report.ok, report
    assert figures(engine, "vf") == {
        "donated_amount_in_cents": 100 + 100 + 900 + 600 + 5_500 + 50,
        "pool_balance_in_cents": 900 + 5_000 - 5_500 - 5_000,
        "open_amount_in_cents": 14_000 - 7_250,
        "requested_amount_in_cents": 14_000,
        "projects_count": 2,
        "client_donated_amount_in_cents": 1_000,
        "client_matched_amount_in_cents": 0,
        "client_donations_count": 2,
        "links": [],
    }
    assert figures(engine, "acme")["client_matched_amount_in_cents"] == 700
    result = verify(engine)
    assert result.differences == []
    assert result.negative_pools == {"vf": -4_600}


def test_the_lowest_fund_with_budget_matches_across_batches(engine: Engine) -> None:
    stream = [
        *REFERENCE,  # fund 1 of acme: 1000 cents, at most 600 per donation
        fund_event(3, "vf", provided=5_000, maximum=5_000, project_ids=[1]),
        fund_event(2, "vf", provided=700, maximum=5_000, project_ids=[1, 2]),
        donation_event("d1", 500, project=1),  # fund 1: 500
        donation_event("d2", 900, project=1),  # fund 1: 500, now spent
        donation_event("d3", 900, project=1),  # fund 2: 700, now spent
        donation_event("d4", 900, project=1),  # fund 3: 900
        revocation_event("d2"),  # fund 1 has 500 again
        donation_event("d5", 100, project=1),  # fund 1: 100
    ]
    report = run(engine, stream, batch_size=3)
    assert report.ok
    assert {t: v for t, v in ledger(engine).items() if t.startswith("matching:")} == {
        "matching:1:d1": (500, False, None),
        "matching:1:d2": (500, True, None),
        "matching:2:d3": (700, False, None),
        "matching:3:d4": (900, False, None),
        "matching:1:d5": (100, False, None),
    }
    assert figures(engine, "acme")["client_matched_amount_in_cents"] == 600
    assert figures(engine, "vf")["client_matched_amount_in_cents"] == 1_600


# --- a batch the database refuses ----------------------------------------------------------


def test_a_batch_the_database_refuses_is_applied_line_by_line(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """The constraints are the backstop behind validation: a need of 0 cents gets past a
    hand-made event (the parser refuses one), and only its own line may be lost."""
    now = datetime.now(UTC)
    vf, acme, project = (parse_line(line, now=now) for line in to_lines(REFERENCE[:3]))
    bad = NeedEvent(id=10, project_id=1, title="Zero", requested_amount_in_cents=0)
    batch = [(1, vf), (2, project), (3, bad), (4, acme)]
    report = ImportReport()
    with caplog.at_level(logging.WARNING, logger="clientstats.services.importing"):
        apply_batch(engine, batch, report, now=now)
    assert [r.line for r in report.rejected] == [3]
    assert report.rejected[0].reason.startswith("refused by the database: ")
    assert report.applied == 3
    assert "applying it line by line" in caplog.text
    with read_transaction(engine) as conn:
        assert conn.execute(select(func.count()).select_from(needs)).scalar_one() == 0
        assert client_snapshot(conn, "vf") is not None and client_snapshot(conn, "acme")


def test_concurrent_imports_of_the_same_lines_book_everything_once(engine: Engine) -> None:
    run(engine, REFERENCE)
    stream = [
        donation_event(f"d{n}", 100 + n, channel="client", client="vf", project=1 + n % 2)
        for n in range(40)
    ]
    reports = run_concurrently(engine, stream)
    assert all(r.rejected == [] for r in reports)
    assert sum(r.applied for r in reports) == 40
    assert sum(r.unchanged for r in reports) == 40
    stored = ledger(engine)
    assert sum(1 for token in stored if not token.startswith("matching:")) == 40
    assert verify(engine).differences == []


def run_concurrently(engine: Engine, stream: list[Line]) -> list[ImportReport]:
    lines = to_lines(stream)
    reports: list[ImportReport] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            reports.append(import_lines(engine, lines))
        except BaseException as error:  # reported by the test, not lost in the thread
            errors.append(error)

    threads = [threading.Thread(target=target) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return reports


def test_a_race_the_database_catches_falls_back_to_line_by_line(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Two imports both read that the tokens are new; the unique index refuses the slower one,
    which re-applies its lines and finds them booked. Only PostgreSQL lets writers overlap."""
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite writers take the write lock at BEGIN: the race cannot happen")
    run(engine, [*REFERENCE, project_event(3)])  # no fund matches project 3: no row locks
    barrier = threading.Barrier(2, timeout=30)
    lock = threading.Lock()
    arrivals: Counter[str] = Counter()
    flush = SqlBook.flush

    def flush_together(book: SqlBook) -> None:
        with lock:
            arrivals["flush"] += 1
            first_round = arrivals["flush"] <= 2
        if first_round:  # both batches have read everything and booked nothing yet
            barrier.wait()
        flush(book)

    monkeypatch.setattr(SqlBook, "flush", flush_together)
    stream = [donation_event(f"d{n}", 100 + n, project=3) for n in range(5)]
    with caplog.at_level(logging.WARNING, logger="clientstats.services.importing"):
        reports = run_concurrently(engine, stream)
    assert sorted((r.applied, r.unchanged, len(r.rejected)) for r in reports) == [
        (0, 5, 0),
        (5, 0, 0),
    ]
    assert "applying it line by line" in caplog.text
    assert len([t for t in ledger(engine) if not t.startswith("matching:")]) == 5
    assert verify(engine).differences == []


# --- the demo data set ---------------------------------------------------------------------


def superseded_reference_lines(events: list[dict[str, Any]]) -> int:
    """Reference lines whose entity a later line of the file changes again."""
    keys = Counter(
        (e["event"], e.get("id"), e.get("client_id"), e.get("project_id"))
        for e in events
        if e["event"] in ("client", "project", "client_project", "need", "matching_fund")
    )
    return sum(count for count in keys.values() if count > 1)


def test_the_demo_data_imports_cleanly_and_twice_changes_nothing(engine: Engine) -> None:
    events = list(generate_demo_events(scale=1))
    lines = [json.dumps(event).encode() for event in events]
    first = import_lines(engine, lines)
    assert first.rejected == [] and first.failures == []
    assert first.applied == len(lines)
    result = verify(engine)
    assert result.differences == []
    assert result.clients == 5
    stored = ledger(engine)
    served = {c: figures(engine, c) for c in ("volksfreund", "acme", "kiezbank")}
    assert served["volksfreund"]["client_donations_count"] > 0
    assert served["acme"]["client_matched_amount_in_cents"] > 0

    second = import_lines(engine, lines)
    assert second.rejected == [] and second.failures == []
    assert second.applied + second.unchanged == len(lines)
    # Only reference data the file changes twice (a project opened, later closed) is replayed.
    assert second.applied <= superseded_reference_lines(events)
    assert ledger(engine) == stored
    assert {c: figures(engine, c) for c in served} == served
    assert verify(engine).differences == []
    with read_transaction(engine) as conn:
        tokens = conn.execute(select(func.count()).select_from(donations)).scalar_one()
    assert tokens == len(stored)
