"""The `clientstats` command as a subprocess: import, stats, verify, migrate, demo."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from clientstats.domain.booking import Outcome
from clientstats.domain.events import parse_line
from clientstats.domain.memory_book import MemoryBook
from tests.api.conftest import (
    SEED_EVENTS,
    Event,
    donation,
    ndjson,
    new_client_events,
    reference_body,
    run_cli,
)

LINE_ERROR = re.compile(r"line (\d+): \S.*")


def summary(result: subprocess.CompletedProcess[bytes]) -> dict[str, int]:
    """The JSON summary that ends an import's stdout."""
    last = result.stdout.decode().strip().splitlines()[-1]
    parsed: dict[str, int] = json.loads(last)
    return parsed


def stderr_lines(result: subprocess.CompletedProcess[bytes]) -> list[str]:
    return result.stderr.decode().splitlines()


def assert_one_line_failure(result: subprocess.CompletedProcess[bytes]) -> str:
    """Exit status non-zero, exactly one non-empty line on stderr, no traceback."""
    assert result.returncode != 0
    lines = stderr_lines(result)
    assert len(lines) == 1, result.stderr.decode()
    assert lines[0].strip()
    assert "Traceback" not in lines[0]
    return lines[0]


def second_pass_applied(events: list[Event]) -> int:
    """How many events MemoryBook applies when the same events come a second time."""
    book, now = MemoryBook(), datetime.now(UTC)
    lines = [json.dumps(event) for event in events]
    for line in lines:
        book.apply(parse_line(line, now=now))
    return sum(book.apply(parse_line(line, now=now)) is Outcome.APPLIED for line in lines)


def compact(body: object) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


@pytest.fixture(scope="module")
def seeded_cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A SQLite database filled by `clientstats import` from the seed file, and that file."""
    directory = tmp_path_factory.mktemp("cli")
    seed = directory / "seed.ndjson"
    seed.write_bytes(ndjson(SEED_EVENTS))
    url = f"sqlite:///{directory / 'seeded.db'}"
    result = run_cli(url, "import", str(seed))
    assert result.returncode == 0, result.stderr.decode()
    assert result.stderr == b""
    n = len(SEED_EVENTS)
    assert summary(result) == {
        "lines": n,
        "applied": n,
        "unchanged": 0,
        "deferred": 0,
        "failed": 0,
        "rejected": 0,
        "blank": 0,
    }
    yield url, seed


# --- import --------------------------------------------------------------------------------


def test_importing_the_same_file_again_changes_nothing(seeded_cli: tuple[str, Path]) -> None:
    """Only upserts the file itself repeats with other values apply again; the end state stays."""
    url, seed = seeded_cli
    result = run_cli(url, "import", str(seed))
    assert result.returncode == 0, result.stderr.decode()
    n = len(SEED_EVENTS)
    reapplied = second_pass_applied(SEED_EVENTS)
    assert summary(result) == {
        "lines": n,
        "applied": reapplied,
        "unchanged": n - reapplied,
        "deferred": 0,
        "failed": 0,
        "rejected": 0,
        "blank": 0,
    }
    printed = run_cli(url, "stats", "volksfreund")
    assert printed.stdout == compact(reference_body("volksfreund")) + b"\n"


def test_import_with_bad_lines_exits_1_lists_them_and_applies_the_rest(
    sqlite_url: str, tmp_path: Path
) -> None:
    events = new_client_events("cli", requested=10_000, pool=True)
    project = events[1]["id"]
    body = b"".join(
        [
            ndjson(events),  # 1-4
            b"this is not json\n",  # 5
            ndjson([donation("ok-1", project, 1200)]),  # 6
            ndjson([{"event": "revocation", "token": "unknown"}]),  # 7: kept, not an error
            b"\n",  # 8: blank
            ndjson([donation("bad", project, -5)]),  # 9
            ndjson(
                [
                    {
                        "event": "forwarding",
                        "token": "fw",
                        "client_id": "cli",
                        "project_id": project,
                        "amount_in_cents": 100,
                    }
                ]
            ),  # 10: the pool is empty
            ndjson([donation("ok-2", project, 800, "external")]),  # 11
        ]
    )
    path = tmp_path / "events.ndjson"
    path.write_bytes(body)
    result = run_cli(sqlite_url, "import", str(path))
    assert result.returncode == 1
    lines = stderr_lines(result)
    numbers = [int(m.group(1)) for m in map(LINE_ERROR.fullmatch, lines) if m]
    assert len(numbers) == len(lines), lines
    assert numbers == [5, 9, 10]
    assert "pool_empty" in lines[2]
    assert summary(result) == {
        "lines": 11,
        "applied": 6,
        "unchanged": 0,
        "deferred": 1,
        "failed": 1,
        "rejected": 2,
        "blank": 1,
    }
    printed = run_cli(sqlite_url, "stats", "cli")
    assert json.loads(printed.stdout)["donated_amount_in_cents"] == 2000


def test_import_dash_reads_stdin(sqlite_url: str) -> None:
    events = new_client_events("stdin", requested=5000)
    events.append(donation("s-1", events[1]["id"], 700))
    result = run_cli(sqlite_url, "import", "-", stdin=ndjson(events))
    assert result.returncode == 0, result.stderr.decode()
    assert summary(result)["applied"] == 5
    printed = run_cli(sqlite_url, "stats", "stdin")
    body = json.loads(printed.stdout)
    assert (body["donated_amount_in_cents"], body["open_amount_in_cents"]) == (700, 4300)


def test_import_of_a_missing_file_fails_with_one_line(sqlite_url: str, tmp_path: Path) -> None:
    assert_one_line_failure(run_cli(sqlite_url, "import", str(tmp_path / "missing.ndjson")))


# --- stats ---------------------------------------------------------------------------------


@pytest.mark.parametrize("client", ["volksfreund", "GEN-A", "empty"])
def test_stats_prints_exactly_the_response_body(seeded_cli: tuple[str, Path], client: str) -> None:
    url, _ = seeded_cli
    result = run_cli(url, "stats", client)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stderr == b""
    assert result.stdout == compact(reference_body(client.lower())) + b"\n"


def test_stats_of_an_unknown_client_exits_1_with_one_line(seeded_cli: tuple[str, Path]) -> None:
    url, _ = seeded_cli
    result = run_cli(url, "stats", "nobody")
    assert result.returncode == 1
    line = assert_one_line_failure(result)
    assert "Couldn't find Client with permalink=nobody" in line
    assert result.stdout == b""


# --- verify, migrate, demo -----------------------------------------------------------------


def test_verify_exits_0_on_a_consistent_ledger(seeded_cli: tuple[str, Path]) -> None:
    url, _ = seeded_cli
    result = run_cli(url, "verify")
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    last = result.stdout.decode().strip().splitlines()[-1]
    assert re.fullmatch(r"verified 7 clients over \d+ ledger entries: 0 difference\(s\)", last)


def test_verify_warns_of_revocations_that_never_met_their_donation(
    sqlite_url: str, tmp_path: Path
) -> None:
    events = new_client_events("warned", requested=10_000)
    project = events[1]["id"]
    events += [
        {"event": "revocation", "token": "late", "created_at": "2024-05-01T10:00:00+02:00"},
        {"event": "revocation", "token": "lost"},
        donation("late", project, 700),  # meets its revocation
    ]
    path = tmp_path / "events.ndjson"
    path.write_bytes(ndjson(events))
    assert run_cli(sqlite_url, "import", str(path)).returncode == 0
    result = run_cli(sqlite_url, "verify")
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    printed = result.stdout.decode().strip().splitlines()
    assert len(printed) == 2
    assert re.fullmatch(
        r"warning: revocation of lost \(\S+\) never met its donation \(none has that token\)",
        printed[0],
    )
    assert re.fullmatch(r"verified 1 clients over 1 ledger entries: 0 difference\(s\)", printed[1])


def test_migrate_works_on_an_empty_database_and_again(sqlite_url: str) -> None:
    first = run_cli(sqlite_url, "migrate")
    assert first.returncode == 0, first.stderr.decode()
    second = run_cli(sqlite_url, "migrate")
    assert second.returncode == 0, second.stderr.decode()
    assert first.stdout == second.stdout
    assert first.stdout.startswith(b"schema at ")
    assert_one_line_failure(run_cli(sqlite_url, "stats", "anyone"))


def test_demo_then_verify_succeeds(sqlite_url: str) -> None:
    demo = run_cli(sqlite_url, "demo")
    assert demo.returncode == 0, demo.stderr.decode()
    assert summary(demo)["applied"] > 1000
    verified = run_cli(sqlite_url, "verify")
    assert verified.returncode == 0, verified.stdout.decode()
    assert re.search(
        rb"verified 5 clients over \d+ ledger entries: 0 difference\(s\)", verified.stdout
    )


@pytest.mark.parametrize(
    "env",
    [
        {"CLIENTSTATS_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"},
        {"CLIENTSTATS_DATABASE_URL": "mysql://nobody@127.0.0.1/none"},
        {"CLIENTSTATS_CACHE_TTL": "not-a-number"},
    ],
)
def test_a_bad_setting_fails_with_one_line(sqlite_url: str, env: dict[str, str]) -> None:
    assert_one_line_failure(run_cli(sqlite_url, "stats", "anyone", **env))
