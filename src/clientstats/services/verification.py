"""`clientstats verify`: recompute every figure from the ledger and compare."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine

from clientstats.domain.stats import RESPONSE_KEYS, LedgerTotals, Statistics, client_statistics
from clientstats.storage.change_feed import ClientVersion
from clientstats.storage.database import read_transaction
from clientstats.storage.ledger_queries import (
    load_reference_data,
    stream_entries,
    unmet_revocations,
)
from clientstats.storage.list_aggregates import StoredListAggregates
from clientstats.storage.statistics_queries import client_snapshot


@dataclass(frozen=True, slots=True)
class Difference:
    """One figure that the service serves differently from the ledger."""

    client_id: str  # or "project N" / "matching_fund N" for a figure of the lists
    key: str
    served: int | str | None
    recomputed: int | str | None


@dataclass(frozen=True, slots=True)
class Verified:
    """A client's figures recomputed from the ledger, and the version they belong to."""

    version: ClientVersion
    statistics: Statistics


@dataclass(slots=True)
class VerificationReport:
    """What `verify` found."""

    clients: int = 0
    entries: int = 0
    differences: list[Difference] = field(default_factory=list)
    negative_pools: dict[str, int] = field(default_factory=dict)
    verified: dict[str, Verified] = field(default_factory=dict)
    # Revocations kept for a donation that has not arrived: warnings, not differences.
    unmet_revocations: dict[str, datetime] = field(default_factory=dict)


def verify(engine: Engine) -> VerificationReport:
    """Recompute all clients' figures from the entries and compare them with the fast path."""
    report = VerificationReport()
    with read_transaction(engine) as conn:
        reference = load_reference_data(conn)
        totals = LedgerTotals()
        for donation, revoked in stream_entries(conn):
            totals.add(donation, revoked=revoked)
            report.entries += 1
        for permalink, client in sorted(reference.clients.items()):
            report.clients += 1
            expected = client_statistics(
                client_id=permalink,
                has_pool=client.has_pool,
                project_ids=reference.project_ids_by_client.get(permalink, []),
                needs_by_project=reference.needs_by_project,
                funds=reference.funds,
                totals=totals,
            )
            snapshot = client_snapshot(conn, permalink)
            assert snapshot is not None
            report.verified[permalink] = Verified(snapshot.version, expected)
            for key in RESPONSE_KEYS:
                served, recomputed = getattr(snapshot.statistics, key), getattr(expected, key)
                if served != recomputed:
                    report.differences.append(Difference(permalink, key, served, recomputed))
            if expected.pool_balance_in_cents < 0:
                report.negative_pools[permalink] = expected.pool_balance_in_cents
        report.differences += list_differences(StoredListAggregates(conn), totals)
        report.unmet_revocations = unmet_revocations(conn)
    return report


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def list_differences(stored: StoredListAggregates, totals: LedgerTotals) -> list[Difference]:
    """The aggregates behind the drill-down lists compared with the ledger."""
    found: list[Difference] = []

    def compare(owner: str, key: str, served: object, recomputed: object) -> None:
        if served != recomputed:
            found.append(Difference(owner, key, served, recomputed))  # type: ignore[arg-type]

    for project_id, (count, matched, last) in sorted(stored.projects.items()):
        owner = f"project {project_id}"
        compare(owner, "donations_count", count, totals.project_donations.get(project_id, 0))
        compare(
            owner, "matched_amount_in_cents", matched, totals.project_matched.get(project_id, 0)
        )
        expected_last = totals.project_last_donation.get(project_id)
        compare(owner, "last_donation_at", _iso(last), _iso(expected_last))
    keys = set(stored.client_projects) | {
        k for k, n in totals.client_project_donations.items() if n
    }
    for client_id, project_id in sorted(keys):
        amount, count = stored.client_projects.get((client_id, project_id), (0, 0))
        key = (client_id, project_id)
        compare(
            client_id,
            f"project {project_id} client_donated_amount_in_cents",
            amount,
            totals.client_project_donated.get(key, 0),
        )
        compare(
            client_id,
            f"project {project_id} client_donations_count",
            count,
            totals.client_project_donations.get(key, 0),
        )
    for client_id, (pool_in, pool_out) in sorted(stored.pool_counts.items()):
        compare(client_id, "pool donations_count", pool_in, totals.pool_in_count.get(client_id, 0))
        compare(
            client_id, "pool forwardings_count", pool_out, totals.pool_out_count.get(client_id, 0)
        )
    for fund_id, count in sorted(stored.fund_counts.items()):
        expected = totals.fund_matched_count.get(fund_id, 0)
        compare(f"matching_fund {fund_id}", "matched_donations_count", count, expected)
    return found
