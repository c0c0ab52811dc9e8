"""The processing loop: what it logs for each kind of database fault, and when it retries."""

from __future__ import annotations

import logging
from collections.abc import Callable

import psycopg.errors
import pytest
from sqlalchemy import Engine, create_engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from clientstats import worker as worker_module
from clientstats.worker import Worker


class RecordingEvent:
    """Stands in for the worker's wake event: records each idle wait instead of sleeping."""

    def __init__(self, steps: list[str]) -> None:
        self.steps = steps

    def wait(self, timeout: float | None = None) -> bool:
        self.steps.append("idle")
        return False

    def set(self) -> None:
        pass

    def clear(self) -> None:
        pass


def run_worker(
    monkeypatch: pytest.MonkeyPatch, first_failure: DBAPIError
) -> tuple[list[str], Worker]:
    """Run the loop: the first batch fails with `first_failure`, the second books one and stops."""
    steps: list[str] = []
    engine: Engine = create_engine("sqlite://")
    worker = Worker(engine)
    worker.woken = RecordingEvent(steps)  # type: ignore[assignment]

    def process_batch(_engine: Engine, *, limit: int) -> int:
        steps.append("batch")
        if len(steps) == 1:
            raise first_failure
        worker.stopping.set()
        return 1

    monkeypatch.setattr(worker_module, "process_batch", process_batch)
    worker.run()
    return steps, worker


def failure(orig: Exception) -> DBAPIError:
    return OperationalError("UPDATE client_requests SET state = ...", {}, orig)


RACES: list[tuple[str, Callable[[], Exception]]] = [
    ("deadlock", lambda: psycopg.errors.DeadlockDetected("deadlock detected")),
    ("serialization", lambda: psycopg.errors.SerializationFailure("could not serialize")),
]


@pytest.mark.parametrize("orig", [make for _, make in RACES], ids=[name for name, _ in RACES])
def test_a_lost_deadlock_is_one_line_and_retried_at_once(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    orig: Callable[[], Exception],
) -> None:
    with caplog.at_level(logging.DEBUG, logger=worker_module.__name__):
        steps, _ = run_worker(monkeypatch, failure(orig()))
    assert steps == ["batch", "batch"]  # no idle wait between the lost race and the retry
    records = [r for r in caplog.records if r.name == worker_module.__name__]
    assert [r.getMessage() for r in records] == [
        "worker lost a deadlock or serialization race to another transaction; retrying"
    ]
    assert records[0].levelno == logging.INFO
    assert records[0].exc_info is None  # a lost race is no fault: no traceback


def test_an_unreachable_database_is_logged_as_such_with_its_cause(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    refused = psycopg.OperationalError("connection refused")
    with caplog.at_level(logging.DEBUG, logger=worker_module.__name__):
        steps, _ = run_worker(monkeypatch, failure(refused))
    assert steps == ["batch", "idle", "batch"]  # backs off before trying again
    records = [r for r in caplog.records if r.name == worker_module.__name__]
    assert [r.getMessage() for r in records] == [
        "worker cannot reach the database; retrying",
        "worker recovered",
    ]
    assert records[0].levelno == logging.ERROR and records[0].exc_info is not None


def test_a_refused_statement_is_a_failed_batch_not_an_unreachable_database(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    violation = psycopg.errors.UniqueViolation("duplicate key value")
    with caplog.at_level(logging.DEBUG, logger=worker_module.__name__):
        steps, _ = run_worker(
            monkeypatch, IntegrityError("INSERT INTO donations ...", {}, violation)
        )
    assert steps == ["batch", "idle", "batch"]
    records = [r for r in caplog.records if r.name == worker_module.__name__]
    assert [r.getMessage() for r in records] == [
        "worker failed on a batch; retrying",
        "worker recovered",
    ]
    assert records[0].exc_info is not None
