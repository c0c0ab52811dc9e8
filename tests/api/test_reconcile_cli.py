"""`clientstats reconcile CLIENT FILE`: every disagreement listed, and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from clientstats.domain.requests import RequestKind
from clientstats.services import client_requests
from clientstats.services.importing import import_lines
from clientstats.services.processing import process_batch
from clientstats.storage.database import make_engine
from clientstats.storage.schema import ensure_schema
from tests.conftest import server_env

SEED: list[dict[str, Any]] = [
    {"event": "client", "id": "vf", "name": "Volksfreund", "pool": True},
    {"event": "client", "id": "tb", "name": "Tageblatt", "pool": True},
    {"event": "project", "id": 1, "title": "Open"},
    {"event": "project", "id": 3, "title": "Closed", "closed": True},
    *(
        {"event": "client_project", "client_id": c, "project_id": p, "member": True}
        for c in ("vf", "tb")
        for p in (1, 3)
    ),
]
HEADER = ("receiver_type", "receiver_id", "amount_in_cents", "client_reference", "datetime")


def accept(engine: Engine, client: str, project: int | None, amount: int, reference: str) -> int:
    kind = RequestKind.PLEDGE if reference != "fw" else RequestKind.FORWARDING
    body: dict[str, object] = {"amount_in_cents": amount, "client_reference": reference}
    if kind is RequestKind.PLEDGE:
        body["validate_address"] = False
    accepted = client_requests.accept(
        engine, client_id=client, kind=kind, project_id=project, body=body
    )
    return accepted.request.id


def csv_file(path: Path, rows: list[tuple[str, ...]], *, bom: bool = False) -> Path:
    """A client's file: UTF-8, comma separated, every value double-quoted."""
    lines = [",".join(f'"{value}"' for value in row) for row in [HEADER, *rows]]
    path.write_text(("\ufeff" if bom else "") + "\r\n".join(lines) + "\r\n", encoding="utf-8")
    return path


def run_all(database_url: str, *invocations: tuple[str, ...]) -> list[tuple[int, str, str]]:
    """Run `clientstats reconcile ...` invocations in parallel: (exit code, stdout, stderr)."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "clientstats", "reconcile", *args],
            env=server_env(database_url),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for args in invocations
    ]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        results.append((process.returncode, out.decode(), err.decode()))
    return results


def test_reconcile_lists_what_is_missing_extra_or_different(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    assert import_lines(engine, [json.dumps(e).encode() for e in SEED]).ok
    ids = {
        ref: accept(engine, "vf", project, amount, ref)
        for ref, project, amount in (
            ("a", 1, 2500),
            ("b", None, 1000),
            ("c", 3, 700),  # redirected to the pool; the client still names project 3
            ("d", 1, 500),
            ("e", 1, 100),
            ("f", 1, 300),
            ("fw", 1, 100),  # a forwarding request, not a pledge
        )
    }
    tb = [accept(engine, "tb", 1, 900, "a"), accept(engine, "tb", None, 50, "t2")]
    assert process_batch(engine) == 9
    ids["g"] = accept(engine, "vf", 1, 400, "g")  # still pending
    vf_file = csv_file(
        tmp_path / "vf.csv",
        [
            ("project", "1", "2500", "a", "2024-05-01T10:00:00+02:00"),
            ("pool", "VF", "1000", "b", "2024-05-01T10:01:00+02:00"),
            ("project", "3", "700", "c", "2024-05-01T10:02:00+02:00"),
            ("project", "1", "600", "d", "2024-05-01T10:03:00+02:00"),
            ("pool", "vf", "100", "e", "2024-05-01T10:04:00+02:00"),
            ("project", "1", "400", "g", "2024-05-01T10:05:00+02:00"),
            ("project", "1", "100", "zz", "2024-05-01T10:06:00+02:00"),
            ("project", "1", "2500", "a", "2024-05-01T10:00:00+02:00"),
            ("project", "1", "12.5", "bad", "2024-05-01T10:07:00+02:00"),
            ("project", "1", "100", "fw", "2024-05-01T10:08:00+02:00"),
        ],
    )
    tb_file = csv_file(
        tmp_path / "tb.csv",
        [
            ("project", "1", "900", "a", "2024-05-02T09:00:00Z"),
            ("pool", "tb", "50", "t2", "2. Mai 2024, 9:30 Uhr"),
        ],
        bom=True,
    )

    (vf_code, vf_out, vf_err), (tb_code, tb_out, tb_err) = run_all(
        database_url, ("vf", str(vf_file)), ("TB", str(tb_file))
    )

    assert vf_out.splitlines() == [
        "bad_row\tbad\tline 10: amount_in_cents must be a positive integer",
        "duplicate\ta\tline 9: repeated",
        "different\td\tamount_in_cents: file 600, booked 500",
        "different\te\treceiver: file pool/vf, booked project/1",
        f"missing_in_file\tf\tpledge {ids['f']} is not in the file",
        "missing_here\tfw\tline 11: no such pledge",
        f"not_booked\tg\tpledge {ids['g']} is pending",
        "missing_here\tzz\tline 8: no such pledge",
    ]
    assert vf_err.strip() == "8 finding(s)"
    assert vf_code == 1
    assert len(tb) == 2
    assert (tb_code, tb_out, tb_err.strip()) == (0, "", "0 finding(s)")


def test_reconcile_names_failed_pledges_and_refuses_bad_input(tmp_path: Path) -> None:
    # The database plays no part in these outcomes: SQLite only.
    database_url = f"sqlite:///{tmp_path / 'clientstats.db'}"
    engine = make_engine(database_url)
    ensure_schema(engine)
    seed = [*SEED, {"event": "client", "id": "acme", "name": "ACME", "pool": False}]
    assert import_lines(engine, [json.dumps(e).encode() for e in seed]).ok
    failed = accept(engine, "acme", None, 100, "h")
    assert process_batch(engine) == 1
    engine.dispose()
    row = ("pool", "acme", "100", "h", "2024-05-01")
    good = csv_file(tmp_path / "good.csv", [row])
    header = tmp_path / "header.csv"
    header.write_text('"receiver","amount"\r\n"pool","1"\r\n', encoding="utf-8")

    results = run_all(
        database_url,
        ("acme", str(good)),
        ("nobody", str(good)),
        ("acme", str(header)),
        ("acme", str(tmp_path / "missing.csv")),
    )

    (code, out, err), unknown, bad_header, missing = results
    assert out.splitlines() == [f"not_booked\th\tpledge {failed} is failed (pool_missing)"]
    assert (code, err.strip()) == (1, "1 finding(s)")
    assert unknown == (1, "", "clientstats: Couldn't find Client with permalink=nobody\n")
    assert bad_header[0] == 1
    assert bad_header[2] == (
        "clientstats: the file's header must be "
        "receiver_type,receiver_id,amount_in_cents,client_reference,datetime\n"
    )
    assert missing[0] == 2  # click's usage error: the file does not exist
    assert "missing.csv" in missing[2]
