"""Tests of reconciliation: reading a client's rows and comparing them with pledges."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from clientstats.domain.reconciliation import (
    COLUMNS,
    Finding,
    ReportedPledge,
    compare,
    parse_row,
)
from clientstats.domain.requests import RequestKind, RequestState, StoredRequest

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def row(**changes: str) -> dict[str, str]:
    values = {
        "receiver_type": "project",
        "receiver_id": "1114",
        "amount_in_cents": "2500",
        "client_reference": "ref-1",
        "datetime": "2024-05-01T12:00:00+02:00",
    }
    values.update(changes)
    return values


def reported(
    reference: str, amount: int = 2500, receiver: tuple[str, str] | None = None, line: int = 2
) -> ReportedPledge:
    return ReportedPledge(line, receiver or ("project", "1114"), amount, reference, "2024-05-01")


def pledge(
    request_id: int,
    reference: str,
    amount: int = 2500,
    project_id: int | None = 1114,
    state: RequestState = RequestState.CONFIRMED,
    failure_code: str | None = None,
) -> StoredRequest:
    return StoredRequest(
        id=request_id,
        kind=RequestKind.PLEDGE,
        client_id="vf",
        client_reference=reference,
        amount_in_cents=amount,
        project_id=project_id,
        tracking_via=None,
        state=state,
        created_at=NOW,
        updated_at=NOW,
        failure_code=failure_code,
    )


# --- parse_row ---------------------------------------------------------------------------


def test_a_project_row_is_read() -> None:
    assert parse_row(2, row()) == ReportedPledge(
        2, ("project", "1114"), 2500, "ref-1", "2024-05-01T12:00:00+02:00"
    )


def test_a_pool_row_is_read_case_insensitively_and_trimmed() -> None:
    parsed = parse_row(
        3,
        row(receiver_type=" Pool ", receiver_id=" VolksFreund ", amount_in_cents=" 100 "),
    )
    assert isinstance(parsed, ReportedPledge)
    assert parsed.receiver == ("pool", "volksfreund")
    assert parsed.amount_in_cents == 100


def test_missing_values_are_named() -> None:
    parsed = parse_row(4, row(receiver_id="", datetime="  "))
    assert parsed == Finding("ref-1", "bad_row", "line 4: missing receiver_id, datetime")


def test_a_row_without_columns_is_a_bad_row() -> None:
    parsed = parse_row(5, {"client_reference": "r"})
    assert isinstance(parsed, Finding)
    assert parsed.kind == "bad_row"
    for column in COLUMNS:
        if column != "client_reference":
            assert column in parsed.detail


def test_an_unknown_receiver_type_is_a_bad_row() -> None:
    parsed = parse_row(6, row(receiver_type="need"))
    assert parsed == Finding("ref-1", "bad_row", "line 6: receiver_type must be project or pool")


@pytest.mark.parametrize("amount", ["0", "-5", "12.50", "1e3", "abc", "²", "٣", "0x10"])
def test_an_amount_that_is_not_a_positive_integer_is_a_bad_row(amount: str) -> None:
    parsed = parse_row(7, row(amount_in_cents=amount))
    assert parsed == Finding(
        "ref-1", "bad_row", "line 7: amount_in_cents must be a positive integer"
    )


# --- compare -----------------------------------------------------------------------------


def kinds(findings: list[Finding]) -> list[tuple[str, str]]:
    return [(f.client_reference, f.kind) for f in findings]


def test_agreeing_sides_have_no_findings() -> None:
    file_rows = [reported("a"), reported("b", 100, ("pool", "vf"))]
    booked = [pledge(1, "a"), pledge(2, "b", 100, None)]
    assert compare(file_rows, booked) == []


def test_nothing_on_either_side_has_no_findings() -> None:
    assert compare([], []) == []


def test_a_row_without_pledge_is_missing_here() -> None:
    findings = compare([reported("a", line=9)], [])
    assert findings == [Finding("a", "missing_here", "line 9: no such pledge")]


def test_a_pledge_without_row_is_missing_in_the_file() -> None:
    findings = compare([], [pledge(17, "a")])
    assert findings == [Finding("a", "missing_in_file", "pledge 17 is not in the file")]


def test_a_different_amount_is_named_with_both_values() -> None:
    findings = compare([reported("a", 2600)], [pledge(1, "a", 2500)])
    assert findings == [Finding("a", "different", "amount_in_cents: file 2600, booked 2500")]


def test_a_different_receiver_is_named_with_both_values() -> None:
    findings = compare(
        [reported("a", receiver=("project", "7"))], [pledge(1, "a", project_id=None)]
    )
    assert findings == [Finding("a", "different", "receiver: file project/7, booked pool/vf")]


def test_amount_and_receiver_differences_are_both_listed() -> None:
    findings = compare([reported("a", 1, ("project", "2"))], [pledge(1, "a")])
    assert [f.detail.split(":")[0] for f in findings] == ["amount_in_cents", "receiver"]


@pytest.mark.parametrize(
    ("state", "code", "detail"),
    [
        (RequestState.PENDING, None, "pledge 3 is pending"),
        (RequestState.FAILED, "pool_missing", "pledge 3 is failed (pool_missing)"),
    ],
)
def test_a_pledge_that_is_not_confirmed_is_not_booked(
    state: RequestState, code: str | None, detail: str
) -> None:
    findings = compare([reported("a")], [pledge(3, "a", state=state, failure_code=code)])
    assert findings == [Finding("a", "not_booked", detail)]


def test_a_repeated_row_is_a_duplicate_and_compared_once() -> None:
    findings = compare(
        [reported("a", line=2), reported("a", 999, line=3)],
        [pledge(1, "a")],
    )
    assert findings == [Finding("a", "duplicate", "line 3: repeated")]


def test_findings_are_ordered_by_reference_then_kind() -> None:
    file_rows = [reported("c"), reported("a", 1), reported("b")]
    booked: list[Any] = [pledge(1, "a"), pledge(2, "d"), pledge(3, "b", state=RequestState.PENDING)]
    assert kinds(compare(file_rows, booked)) == [
        ("a", "different"),
        ("b", "not_booked"),
        ("c", "missing_here"),
        ("d", "missing_in_file"),
    ]
