"""Revocations that arrive before their donation, imported into each database."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Engine, text

from clientstats.services.importing import ImportReport, import_lines
from clientstats.services.verification import verify
from clientstats.storage.sql_book import SqlBook
from clientstats.storage.token_locks import TOKEN_LOCKS
from tests.storage.test_import import REFERENCE, figures, ledger
from tests.storage.test_stored_book_properties import revocation_rows
from tests.strategies import (
    Line,
    donation_event,
    forwarding_event,
    revocation_event,
    to_lines,
)

# REFERENCE is lines 1-9: vf (with a pool) shows open project 1 (needs 10000) and closed 2;
# acme's fund 1 matches project 1 (1000 cents, at most 600 per donation).
EARLY: list[Line] = [
    *REFERENCE,
    revocation_event("d1"),  # 10: kept until d1 arrives
    donation_event("d2", 300, channel="client", client="vf", project=1),  # 11: matched 300
    donation_event("d1", 700, channel="client", client="vf", project=1),  # 12: revoked at once
    revocation_event("d1"),  # 13: d1 is revoked already
    revocation_event("d9"),  # 14: d9 never arrives
    donation_event("d3", 900, project=1),  # 15: matched 600, d1 used no budget
]


def run(engine: Engine, stream: list[Line], batch_size: int) -> ImportReport:
    return import_lines(engine, to_lines(stream), batch_size=batch_size)


@pytest.mark.parametrize("batch_size", [1, 4, 1000])
def test_a_revocation_before_its_donation_revokes_it_when_it_arrives(
    engine: Engine, batch_size: int
) -> None:
    report = run(engine, EARLY, batch_size)
    assert report.rejected == [] and report.ok
    assert (report.applied, report.unchanged, report.deferred) == (12, 1, 2)
    assert ledger(engine) == {
        "d1": (700, True, None),
        "d2": (300, False, None),
        "d3": (900, False, None),
        "matching:1:d2": (300, False, None),
        "matching:1:d3": (600, False, None),
    }
    assert figures(engine, "vf")["client_donations_count"] == 1
    assert figures(engine, "vf")["donated_amount_in_cents"] == 300 + 300 + 900 + 600
    assert figures(engine, "acme")["client_matched_amount_in_cents"] == 900
    assert verify(engine).differences == []


@pytest.mark.parametrize("batch_size", [1, 4, 1000])
def test_importing_early_revocations_twice_changes_nothing(engine: Engine, batch_size: int) -> None:
    run(engine, EARLY, batch_size)
    before = {c: figures(engine, c) for c in ("vf", "acme")}
    stored, rows = ledger(engine), revocation_rows(engine)
    again = run(engine, EARLY, batch_size)
    assert again.ok
    assert (again.applied, again.unchanged, again.deferred) == (0, 14, 1)
    assert {c: figures(engine, c) for c in ("vf", "acme")} == before
    assert ledger(engine) == stored
    assert revocation_rows(engine) == rows


def test_a_kept_revocation_is_stored_with_its_own_time_and_kept_as_history(
    engine: Engine,
) -> None:
    early = {**revocation_event("d1"), "created_at": "2024-05-01T10:00:00+02:00"}
    run(engine, [*REFERENCE, early], 1000)
    run(engine, [donation_event("d1", 700, project=1)], 1000)
    revoked, kept = revocation_rows(engine)
    assert [(r.token, r.created_at.isoformat()) for r in revoked] == [
        ("d1", "2024-05-01T08:00:00+00:00")
    ]
    assert [(k.token, k.created_at.isoformat()) for k in kept] == [
        ("d1", "2024-05-01T08:00:00+00:00")
    ]


@pytest.mark.parametrize("batch_size", [1, 1000])
def test_a_kept_revocation_of_a_forwarding_that_fails_has_nothing_to_revoke(
    engine: Engine, batch_size: int
) -> None:
    stream: list[Line] = [
        *REFERENCE,
        revocation_event("f1"),  # 10: kept
        forwarding_event("f1", "vf", 1, 500),  # 11: the pool is empty: recorded as failed
        revocation_event("f1"),  # 12: the kept revocation met f1; nothing to revoke
        revocation_event("f2"),  # 13: kept
        donation_event("d1", 1_000, channel="offline", pool="vf"),  # 14
        forwarding_event("f2", "vf", 1, 400),  # 15: moves 400, revoked at once
    ]
    first = run(engine, stream, batch_size)
    assert [f.line for f in first.failures] == [11] and first.rejected == []
    assert (first.applied, first.unchanged, first.deferred, first.failed) == (11, 1, 2, 1)
    assert ledger(engine)["f1"] == (500, False, "pool_empty")
    assert ledger(engine)["f2"] == (400, True, None)
    assert figures(engine, "vf")["pool_balance_in_cents"] == 1_000
    before = figures(engine, "vf")
    second = run(engine, stream, batch_size)
    assert second.ok
    assert (second.applied, second.unchanged, second.deferred) == (0, 15, 0)
    assert figures(engine, "vf") == before
    assert verify(engine).unmet_revocations == {}


def test_verify_lists_the_revocations_that_never_met_their_donation(engine: Engine) -> None:
    lost = {**revocation_event("lost"), "created_at": "2024-05-01T10:00:00+02:00"}
    run(engine, [*REFERENCE, lost, revocation_event("late")], 1000)
    report = verify(engine)
    assert sorted(report.unmet_revocations) == ["late", "lost"]
    assert report.unmet_revocations["lost"].isoformat() == "2024-05-01T08:00:00+00:00"
    run(engine, [donation_event("late", 700, project=1)], 1000)
    report = verify(engine)
    assert list(report.unmet_revocations) == ["lost"]
    assert report.differences == [] and report.entries == 1


# --- a revocation and its donation in two transactions at once (PostgreSQL) ---------------

_WAITING_FOR_A_TOKEN_LOCK = text(
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
    f" AND classid = {TOKEN_LOCKS}"
)


def test_a_donation_booked_while_its_revocation_is_kept_is_revoked(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each transaction would miss the other's uncommitted row: the donation would stay
    confirmed. The revocation's transaction holds back its commit until the donation's
    transaction has read everything too, or waits for the revocation's to end."""
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite writers take the write lock at BEGIN: the race cannot happen")
    run(engine, REFERENCE, 1000)
    revocation_read, donation_read = threading.Event(), threading.Event()
    flush = SqlBook.flush

    def flush_when_both_have_read(book: SqlBook) -> None:
        if threading.current_thread().name != "revocation":
            donation_read.set()
        else:
            revocation_read.set()
            with engine.connect() as conn:
                while not donation_read.wait(0.01):
                    if conn.execute(_WAITING_FOR_A_TOKEN_LOCK).scalar_one():
                        break  # the donation's transaction waits for this one to commit
                    conn.rollback()  # a new snapshot of pg_locks for the next look
        flush(book)

    monkeypatch.setattr(SqlBook, "flush", flush_when_both_have_read)
    revocation = threading.Thread(
        target=run, args=(engine, [revocation_event("d1")], 1000), name="revocation"
    )
    revocation.start()
    revocation_read.wait()
    run(engine, [donation_event("d1", 700, project=1)], 1000)
    revocation.join()
    assert ledger(engine)["d1"] == (700, True, None)
    assert verify(engine).differences == []
