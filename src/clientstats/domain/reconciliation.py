"""Comparing a client's list of collected pledges with the booked ones."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from clientstats.domain.requests import RequestState, StoredRequest

COLUMNS = ("receiver_type", "receiver_id", "amount_in_cents", "client_reference", "datetime")


@dataclass(frozen=True, slots=True)
class ReportedPledge:
    """One row of the client's file."""

    line: int
    receiver: tuple[str, str]  # ("project", "1114") or ("pool", "<client>")
    amount_in_cents: int
    client_reference: str
    datetime: str


@dataclass(frozen=True, slots=True)
class Finding:
    """One disagreement between the file and the booked pledges."""

    client_reference: str
    kind: str  # missing_here | missing_in_file | different | not_booked | bad_row | duplicate
    detail: str


def parse_row(line: int, row: Mapping[str, str]) -> ReportedPledge | Finding:
    """A file row as a reported pledge, or a finding that says what is wrong with it."""
    reference = (row.get("client_reference") or "").strip()
    missing = [c for c in COLUMNS if not (row.get(c) or "").strip()]
    if missing:
        return Finding(reference, "bad_row", f"line {line}: missing {', '.join(missing)}")
    receiver_type = row["receiver_type"].strip().lower()
    amount = row["amount_in_cents"].strip()
    if receiver_type not in ("project", "pool"):
        return Finding(reference, "bad_row", f"line {line}: receiver_type must be project or pool")
    # isdigit alone admits '²' and other non-ASCII digits that int() refuses or misreads
    if not (amount.isascii() and amount.isdigit()) or int(amount) < 1:
        return Finding(
            reference, "bad_row", f"line {line}: amount_in_cents must be a positive integer"
        )
    receiver_id = row["receiver_id"].strip()
    return ReportedPledge(
        line, (receiver_type, receiver_id.lower()), int(amount), reference, row["datetime"]
    )


def _receiver(request: StoredRequest) -> tuple[str, str]:
    if request.project_id is None:
        return ("pool", request.client_id)
    return ("project", str(request.project_id))


def compare(reported: Iterable[ReportedPledge], booked: Iterable[StoredRequest]) -> list[Finding]:
    """Everything missing, extra or different on either side, ordered by client reference."""
    findings: list[Finding] = []
    by_reference: dict[str, ReportedPledge] = {}
    for row in reported:
        if row.client_reference in by_reference:
            findings.append(
                Finding(row.client_reference, "duplicate", f"line {row.line}: repeated")
            )
            continue
        by_reference[row.client_reference] = row
    ours = {r.client_reference: r for r in booked}
    for reference, row in by_reference.items():
        request = ours.get(reference)
        if request is None:
            findings.append(Finding(reference, "missing_here", f"line {row.line}: no such pledge"))
            continue
        findings.extend(_differences(row, request))
    for reference, request in ours.items():
        if reference not in by_reference:
            findings.append(
                Finding(reference, "missing_in_file", f"pledge {request.id} is not in the file")
            )
    return sorted(findings, key=lambda f: (f.client_reference, f.kind))


def _differences(row: ReportedPledge, request: StoredRequest) -> list[Finding]:
    found = []
    reference = row.client_reference
    if row.amount_in_cents != request.amount_in_cents:
        found.append(
            Finding(
                reference,
                "different",
                (f"amount_in_cents: file {row.amount_in_cents}, booked {request.amount_in_cents}"),
            )
        )
    if row.receiver != _receiver(request):
        found.append(
            Finding(
                reference,
                "different",
                (f"receiver: file {'/'.join(row.receiver)}, booked {'/'.join(_receiver(request))}"),
            )
        )
    if request.state is not RequestState.CONFIRMED:
        state = request.state.value + (f" ({request.failure_code})" if request.failure_code else "")
        found.append(Finding(reference, "not_booked", f"pledge {request.id} is {state}"))
    return found
