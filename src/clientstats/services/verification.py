"""`clientstats verify`: recompute every figure from the ledger and compare (SPEC §4.1)."""

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
from clientstats.storage.statistics_queries import client_snapshot


@dataclass(frozen=True, slots=True)
class Difference:
    """One figure that the service serves differently from the ledger."""

    client_id: str
    key: str
    served: int
    recomputed: int


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
        report.unmet_revocations = unmet_revocations(conn)
    return report
