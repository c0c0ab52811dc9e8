"""Input that is not UTF-8, or not text at all, gets a one-line answer from every command."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.conftest import new_client_events, run_cli

HEADER = b'"receiver_type","receiver_id","amount_in_cents","client_reference","datetime"\r\n'
ROW = b'"project","1","100","ref-1","2024-05-01T10:00:00+02:00"\r\n'
NOT_UTF8 = os.fsdecode(b"caf\xe9")  # how Python hands a Latin-1 argument to the program


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A SQLite database with the client `shop`, and a folder for input files."""
    directory = tmp_path_factory.mktemp("input")
    events = directory / "shop.ndjson"
    events.write_bytes(b"".join(json.dumps(e).encode() + b"\n" for e in new_client_events("shop")))
    url = f"sqlite:///{directory / 'input.db'}"
    assert run_cli(url, "import", str(events)).returncode == 0
    yield url, directory


def one_line(result: subprocess.CompletedProcess[bytes]) -> str:
    """The only stderr line of a failed command, which printed no traceback."""
    lines = result.stderr.decode(errors="backslashreplace").splitlines()
    assert result.returncode == 1, lines
    assert len(lines) == 1 and lines[0].startswith("clientstats: "), lines
    assert b"Traceback" not in result.stdout + result.stderr
    return lines[0]


# --- reconcile -----------------------------------------------------------------------------


@pytest.mark.parametrize("via", ["file", "stdin"])
def test_reconcile_of_a_latin1_file_names_the_line_and_byte(
    database: tuple[str, Path], via: str
) -> None:
    url, directory = database
    body = HEADER + ROW + b'"project","1","100","caf\xe9","2024-05-01"\r\n'
    path = directory / "latin1.csv"
    path.write_bytes(body)
    offset = body.index(b"\xe9")
    if via == "file":
        result = run_cli(url, "reconcile", "shop", str(path))
    else:
        result = run_cli(url, "reconcile", "shop", "-", stdin=body)
    line = one_line(result)
    assert "not UTF-8" in line
    assert f"line 3, byte {offset}" in line
    assert result.stdout == b""


@pytest.mark.parametrize(
    ("name", "body", "reason"),
    [
        ("gzip", gzip.compress(HEADER + ROW), "not UTF-8"),
        ("huge field", HEADER + b'"project","1","' + b"9" * 200_000 + b'","r","d"\r\n', "line 2"),
        ("utf-16", HEADER.decode().encode("utf-16"), "not UTF-8"),
    ],
)
def test_reconcile_of_a_file_that_is_not_a_csv_text_fails_with_one_line(
    database: tuple[str, Path], name: str, body: bytes, reason: str
) -> None:
    url, directory = database
    path = directory / f"{name}.csv"
    path.write_bytes(body)
    assert reason in one_line(run_cli(url, "reconcile", "shop", str(path)))


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("bom", b"\xef\xbb\xbf" + HEADER + ROW.replace(b"ref-1", b"zw\xc3\xb6lf")),
        (
            "old mac line ends",
            HEADER.replace(b"\r\n", b"\r") + ROW.replace(b"ref-1", b"zw\xc3\xb6lf"),
        ),
        ("field over two lines", HEADER + ROW.replace(b"ref-1", b"zw\xc3\xb6\r\nlf")),
    ],
)
def test_reconcile_reads_any_utf8_csv_the_client_may_send(
    database: tuple[str, Path], name: str, body: bytes
) -> None:
    url, directory = database
    path = directory / f"{name}.csv"
    path.write_bytes(body)
    result = run_cli(url, "reconcile", "shop", str(path))
    assert result.stderr.decode() == "1 finding(s)\n"
    reference = body.split(b'","')[-2].decode()
    assert result.stdout.decode().startswith(f"missing_here\t{reference}\tline ")


# --- arguments -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("stats", NOT_UTF8),
        ("client", "credentials", NOT_UTF8),
        ("reconcile", NOT_UTF8, "-"),
    ],
)
def test_a_client_argument_that_is_not_utf8_fails_with_one_line(
    database: tuple[str, Path], args: tuple[str, ...]
) -> None:
    url, _ = database
    assert "not UTF-8" in one_line(run_cli(url, *args, stdin=HEADER + ROW))


# --- import --------------------------------------------------------------------------------


@pytest.mark.parametrize("via", ["file", "stdin"])
def test_import_of_binary_and_latin1_lines_reports_each_and_applies_the_rest(
    database: tuple[str, Path], via: str
) -> None:
    url, directory = database
    good = {"event": "client", "id": f"good-{via}", "name": "Good"}
    body = b"\n".join(
        [
            b'{"event": "client", "id": "caf\xe9", "name": "x"}',  # 1: Latin-1 inside JSON
            gzip.compress(b"{}").replace(b"\n", b""),  # 2: binary
            b"\x00\x00\x00",  # 3: NUL bytes
            json.dumps(good).encode(),  # 4
            b"\xff\xfe{\x00}\x00",  # 5: UTF-16
        ]
    )
    path = directory / f"binary-{via}.ndjson"
    path.write_bytes(body)
    if via == "file":
        result = run_cli(url, "import", str(path))
    else:
        result = run_cli(url, "import", "-", stdin=body)
    assert result.returncode == 1
    stderr = result.stderr.decode()
    assert b"Traceback" not in result.stderr
    assert [line.split(":")[0] for line in stderr.splitlines()] == [
        f"line {n}" for n in (1, 2, 3, 5)
    ]
    assert json.loads(result.stdout.decode().splitlines()[-1])["applied"] == 1
    assert run_cli(url, "stats", good["id"]).returncode == 0
