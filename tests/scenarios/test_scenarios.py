"""Ledger scenario files: hand-computed figures checked in memory, in databases, by verify."""

# A scenario is a `*.ledger` file in this directory, read top to bottom:
#   - an event line is one JSON ledger event, as `clientstats import` reads it;
#   - a `#` line is a comment: the story and the arithmetic, in plain words;
#   - `# expect CLIENT: {...}` gives all 8 figures of CLIENT after the event lines above
#     it (the JSON may continue over the following `#` lines);
#   - `# expect negative pools: {...}` and `# expect unmet revocations: [...]` give what
#     verify() warns about at that point (none if not given);
#   - `# expect rejected: 7, 9`, `# expect deferred: 8` and `# expect failed: 12 pool_empty`
#     name the lines, by their line number in the file, that are rejected, the revocations
#     kept until their donation arrives and the forwardings that fail.
# Each scenario runs in a MemoryBook, imported into SQLite and PostgreSQL (checkpoint by
# checkpoint, line by line, and as one batch) and checked by verify(); then it is imported a
# second time, which must leave the final figures as they are.

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

from clientstats.domain.booking import Outcome
from clientstats.domain.events import EventInvalid, ForwardingEvent, parse_line
from clientstats.domain.ledger import BookingRejected
from clientstats.domain.memory_book import MemoryBook
from clientstats.domain.stats import RESPONSE_KEYS, Statistics
from clientstats.services.importing import import_lines
from clientstats.services.statistics import get_snapshot_or_raise
from clientstats.services.verification import verify

SCENARIO_DIR = Path(__file__).parent
SCENARIO_FILES = sorted(SCENARIO_DIR.glob("*.ledger"))
_FAILURE_CODE = re.compile(r"failed: ([a-z_]+);")

Figures = dict[str, int]


@dataclass
class Checkpoint:
    """What must hold once every event line up to `line` has been applied."""

    line: int
    figures: dict[str, Figures] = field(default_factory=dict)
    negative_pools: dict[str, int] = field(default_factory=dict)
    unmet_revocations: list[str] = field(default_factory=list)


@dataclass
class Scenario:
    """A parsed `.ledger` file: its event lines by line number and what it expects."""

    name: str
    events: dict[int, str]
    checkpoints: list[Checkpoint]
    rejected: set[int]
    failed: dict[int, str]
    deferred: set[int] = field(default_factory=set)

    @property
    def last_line(self) -> int:
        return max(self.events)


@dataclass
class Outcomes:
    """What one way of running a scenario produced."""

    figures: dict[int, dict[str, Figures]] = field(default_factory=dict)
    negative_pools: dict[int, dict[str, int]] = field(default_factory=dict)
    unmet_revocations: dict[int, list[str]] = field(default_factory=dict)
    rejected: dict[int, str] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)
    deferred: int = 0  # how many lines; the database reports no line numbers for them
    deferred_lines: set[int] | None = None


# --- reading scenario files ------------------------------------------------------------------


def _line_numbers(text: str) -> set[int]:
    return {int(part) for part in text.replace(",", " ").split()}


def _failures(text: str) -> dict[int, str]:
    failed = {}
    for item in text.split(","):
        number, code = item.split()
        failed[int(number)] = code
    return failed


def _figures(client: str, value: object) -> Figures:
    assert isinstance(value, dict), f"figures of {client} must be a JSON object"
    assert list(value) == list(RESPONSE_KEYS), f"figures of {client} must name all 8 keys in order"
    assert all(type(v) is int for v in value.values()), f"figures of {client} must be integers"
    return dict(value)


def _read_json(value: str, lines: list[str], index: int, *, where: str) -> tuple[object, int]:
    """Decode `value`, continued over the following comment lines until it parses."""
    while True:
        try:
            return json.loads(value), index
        except json.JSONDecodeError:
            assert index < len(lines), f"{where}: unfinished expectation"
            continuation = lines[index].strip()
            assert continuation.startswith("#"), f"{where}: unfinished JSON"
            value += " " + continuation.lstrip("#")
            index += 1


def parse_scenario(path: Path) -> Scenario:
    """Read a scenario; `# expect` comments attach to the event line above them."""
    lines = path.read_text(encoding="utf-8").splitlines()
    scenario = Scenario(path.stem, {}, [], set(), {})
    checkpoints: dict[int, Checkpoint] = {}
    index = 0
    while index < len(lines):
        number, text = index + 1, lines[index].strip()
        index += 1
        if not text:
            continue
        if not text.startswith("#"):
            scenario.events[number] = text
            continue
        comment = text.lstrip("#").strip()
        if not comment.startswith("expect "):
            continue
        subject, _, value = comment.removeprefix("expect ").partition(":")
        subject = subject.strip()
        if subject == "rejected":
            scenario.rejected |= _line_numbers(value)
            continue
        if subject == "failed":
            scenario.failed.update(_failures(value))
            continue
        if subject == "deferred":
            scenario.deferred |= _line_numbers(value)
            continue
        decoded, index = _read_json(value, lines, index, where=f"{path.name}:{number}")
        assert scenario.events, f"{path.name}:{number}: expectation before any event"
        at = max(scenario.events)
        checkpoint = checkpoints.setdefault(at, Checkpoint(at))
        if subject == "negative pools":
            assert isinstance(decoded, dict), f"{path.name}:{number}: negative pools"
            checkpoint.negative_pools = dict(decoded)
        elif subject == "unmet revocations":
            assert isinstance(decoded, list), f"{path.name}:{number}: unmet revocations"
            checkpoint.unmet_revocations = decoded
        else:
            checkpoint.figures[subject] = _figures(subject, decoded)
    scenario.checkpoints = [checkpoints[line] for line in sorted(checkpoints)]
    _check_scenario(path, scenario)
    return scenario


def _check_scenario(path: Path, scenario: Scenario) -> None:
    assert scenario.events, f"{path.name} has no events"
    assert scenario.checkpoints, f"{path.name} expects no figures"
    assert scenario.checkpoints[-1].line == scenario.last_line, (
        f"{path.name}: the figures after the last event must be expected"
    )
    assert all(c.figures for c in scenario.checkpoints), f"{path.name}: a checkpoint has no figures"
    named = scenario.rejected | set(scenario.failed) | scenario.deferred
    assert named <= set(scenario.events), f"{path.name}: expected lines that are not events"


SCENARIOS = {path.stem: path for path in SCENARIO_FILES}


@pytest.fixture(params=sorted(SCENARIOS))
def scenario(request: pytest.FixtureRequest) -> Scenario:
    return parse_scenario(SCENARIOS[request.param])


# --- way 1: the pure reference ---------------------------------------------------------------


def _as_figures(statistics: Statistics) -> Figures:
    return {key: getattr(statistics, key) for key in RESPONSE_KEYS}


def _memory_negative_pools(book: MemoryBook) -> dict[str, int]:
    balances = {c: book.statistics(c).pool_balance_in_cents for c in book.clients}
    return {c: balance for c, balance in balances.items() if balance < 0}


def run_in_memory(
    scenario: Scenario, book: MemoryBook | None = None
) -> tuple[Outcomes, MemoryBook]:
    """Apply every event line to a MemoryBook, noting figures at each checkpoint."""
    book = MemoryBook() if book is None else book
    outcomes = Outcomes(deferred_lines=set())
    checkpoints = {c.line: c for c in scenario.checkpoints}
    now = datetime.now(UTC)
    for number, text in sorted(scenario.events.items()):
        try:
            event = parse_line(text, now=now)
        except EventInvalid as invalid:
            outcomes.rejected[number] = str(invalid)
        else:
            result = book.apply(event)
            if isinstance(result, BookingRejected):
                outcomes.rejected[number] = str(result)
            elif result is Outcome.DEFERRED:
                assert outcomes.deferred_lines is not None
                outcomes.deferred_lines.add(number)
                outcomes.deferred += 1
            elif result is Outcome.FAILED:
                assert isinstance(event, ForwardingEvent)
                booked = book.get_donation(event.forwarding.token)
                assert booked is not None and booked.failure_code is not None
                outcomes.failed[number] = booked.failure_code.value
        if number in checkpoints:
            clients = checkpoints[number].figures
            outcomes.figures[number] = {c: _as_figures(book.statistics(c)) for c in clients}
            outcomes.negative_pools[number] = _memory_negative_pools(book)
            outcomes.unmet_revocations[number] = list(book.unmet_revocations())
    return outcomes, book


# --- way 2 and 3: a real database, read by the fast path and recomputed by verify -------------


def _feed(scenario: Scenario, after: int, upto: int) -> list[bytes]:
    """Lines 1..upto with only the events in (after, upto] kept, so line numbers stay true."""
    return [
        scenario.events[n].encode() if after < n <= upto and n in scenario.events else b""
        for n in range(1, upto + 1)
    ]


def _served_figures(engine: Engine, client: str) -> Figures:
    figures = _as_figures(get_snapshot_or_raise(engine, client).statistics)
    assert all(type(v) is int for v in figures.values()), f"{client}: {figures!r}"
    return figures


def run_in_database(engine: Engine, scenario: Scenario, *, batch_size: int) -> Outcomes:
    """Import the scenario checkpoint by checkpoint; verify() must agree at every one."""
    outcomes = Outcomes()
    after = 0
    for checkpoint in scenario.checkpoints:
        report = import_lines(
            engine, _feed(scenario, after, checkpoint.line), batch_size=batch_size
        )
        outcomes.rejected.update({r.line: r.reason for r in report.rejected})
        for failure in report.failures:
            code = _FAILURE_CODE.search(failure.reason)
            outcomes.failed[failure.line] = code.group(1) if code else failure.reason
        assert report.failed == len(report.failures)
        outcomes.deferred += report.deferred
        outcomes.figures[checkpoint.line] = {
            c: _served_figures(engine, c) for c in checkpoint.figures
        }
        verification = verify(engine)
        assert verification.differences == [], f"after line {checkpoint.line}"
        outcomes.negative_pools[checkpoint.line] = verification.negative_pools
        outcomes.unmet_revocations[checkpoint.line] = list(verification.unmet_revocations)
        after = checkpoint.line
    return outcomes


# --- the checks --------------------------------------------------------------------------------


def assert_expected(scenario: Scenario, outcomes: Outcomes) -> None:
    """Every hand-computed expectation of the scenario holds for these outcomes."""
    assert sorted(outcomes.rejected) == sorted(scenario.rejected), outcomes.rejected
    assert outcomes.failed == scenario.failed
    assert outcomes.deferred == len(scenario.deferred)
    if outcomes.deferred_lines is not None:
        assert outcomes.deferred_lines == scenario.deferred
    for checkpoint in scenario.checkpoints:
        at = f"{scenario.name} after line {checkpoint.line}"
        for client, expected in checkpoint.figures.items():
            assert outcomes.figures[checkpoint.line][client] == expected, f"{at}: {client}"
        assert outcomes.negative_pools[checkpoint.line] == checkpoint.negative_pools, at
        assert outcomes.unmet_revocations[checkpoint.line] == checkpoint.unmet_revocations, at


def _final_expectation(scenario: Scenario) -> Scenario:
    """The scenario with only its final figures expected (what a second import must leave)."""
    final = scenario.checkpoints[-1]
    return Scenario(scenario.name, scenario.events, [final], set(), {})


def test_scenario_in_memory(scenario: Scenario) -> None:
    outcomes, book = run_in_memory(scenario)
    assert_expected(scenario, outcomes)

    again, _ = run_in_memory(_final_expectation(scenario), book)
    final = scenario.checkpoints[-1]
    assert again.figures[final.line] == final.figures
    assert again.negative_pools[final.line] == final.negative_pools
    assert again.unmet_revocations[final.line] == final.unmet_revocations
    assert again.failed == {}


@pytest.mark.parametrize("batch_size", [1000, 1], ids=["batch_per_checkpoint", "line_by_line"])
def test_scenario_in_database(engine: Engine, scenario: Scenario, batch_size: int) -> None:
    outcomes = run_in_database(engine, scenario, batch_size=batch_size)
    assert_expected(scenario, outcomes)
    memory, _ = run_in_memory(scenario)
    assert outcomes.rejected == memory.rejected, "the database rejects for other reasons"

    again = run_in_database(engine, _final_expectation(scenario), batch_size=batch_size)
    final = scenario.checkpoints[-1]
    assert again.figures[final.line] == final.figures
    assert again.negative_pools[final.line] == final.negative_pools
    assert again.unmet_revocations[final.line] == final.unmet_revocations
    assert again.failed == {}


def test_scenario_in_database_as_one_batch(engine: Engine, scenario: Scenario) -> None:
    """The whole file in one transaction: later lines see what earlier ones booked."""
    whole = _final_expectation(scenario)
    whole.rejected, whole.failed = scenario.rejected, scenario.failed
    whole.deferred = scenario.deferred
    outcomes = run_in_database(engine, whole, batch_size=10_000)
    assert_expected(whole, outcomes)
    memory, _ = run_in_memory(scenario)
    assert outcomes.rejected == memory.rejected, "the database rejects for other reasons"

    again = run_in_database(engine, whole, batch_size=10_000)
    final = scenario.checkpoints[-1]
    assert again.figures[final.line] == final.figures
    assert again.negative_pools[final.line] == final.negative_pools
    assert again.unmet_revocations[final.line] == final.unmet_revocations
    assert again.failed == {}


def test_there_are_scenarios() -> None:
    assert len(SCENARIO_FILES) >= 9


def test_an_incomplete_figures_block_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "broken.ledger"
    path.write_text(
        '{"event": "client", "id": "c", "name": "C"}\n# expect c: {"projects_count": 0}\n'
    )
    with pytest.raises(AssertionError, match="all 8 keys"):
        parse_scenario(path)


def test_figures_after_the_last_event_are_required(tmp_path: Path) -> None:
    figures = json.dumps(dict.fromkeys(RESPONSE_KEYS, 0))
    path = tmp_path / "unchecked_tail.ledger"
    path.write_text(
        '{"event": "client", "id": "c", "name": "C"}\n'
        f"# expect c: {figures}\n"
        '{"event": "project", "id": 1, "title": "P"}\n'
    )
    with pytest.raises(AssertionError, match="after the last event"):
        parse_scenario(path)
