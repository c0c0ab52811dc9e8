"""The aggregates behind the drill-down lists: the read-back of a last donation time, and all
of them read at once for `verify`.

Per project: confirmed entries other than matching ones, matched money and the last
donation's time; per client and project: the client's own donations; per matching fund:
its matched donations. storage.aggregate_deltas moves them in the booking transaction.
Revoking a project's latest entry makes the last donation's time an older one, so that one
is read back from the ledger (for the projects that had a revocation only).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, ScalarSelect, exists, select, update

from clientstats.domain.ledger import Channel
from clientstats.storage.tables import (
    client_project_totals,
    client_totals,
    donations,
    matching_fund_totals,
    project_totals,
    revocations,
)
from clientstats.storage.value_lists import PerDialect, in_values, values_param


def _last_confirmed() -> ScalarSelect[datetime]:
    """The newest confirmed entry (matching ones aside) of the project of the updated row."""
    d = donations.c
    revoked = exists().where(revocations.c.token == d.token)
    return (
        select(d.created_at)
        .where(
            d.project_id == project_totals.c.project_id,
            d.channel != Channel.MATCHING.value,
            d.failure_code.is_(None),
            ~revoked,
        )
        # Walks the project's (project_id, created_at) index back from the newest entry.
        .order_by(d.created_at.desc())
        .limit(1)
        .scalar_subquery()
    )


_RECOMPUTE_LATEST = PerDialect(
    lambda dialect: (
        update(project_totals)
        .where(in_values(project_totals.c.project_id, dialect))
        .values(last_donation_at=_last_confirmed())
    )
)


def recompute_last_donation(conn: Connection, project_ids: list[int]) -> None:
    """Set each project's last donation time from its ledger entries (after a revocation)."""
    conn.execute(_RECOMPUTE_LATEST(conn), values_param(conn, project_ids))


class StoredListAggregates:
    """Every stored list aggregate, read at once for `verify` (O(projects + clients))."""

    def __init__(self, conn: Connection) -> None:
        p = project_totals.c
        self.projects = {
            int(row.project_id): (
                int(row.donations_count),
                int(row.matched_in_cents),
                row.last_donation_at,
            )
            for row in conn.execute(
                select(p.project_id, p.donations_count, p.matched_in_cents, p.last_donation_at)
            )
        }
        self.client_projects = {
            (str(row.client_id), int(row.project_id)): (
                int(row.client_donated_in_cents),
                int(row.client_donations_count),
            )
            for row in conn.execute(select(client_project_totals))
        }
        c = client_totals.c
        self.pool_counts = {
            str(row.client_id): (int(row.pool_in_count), int(row.pool_out_count))
            for row in conn.execute(select(c.client_id, c.pool_in_count, c.pool_out_count))
        }
        f = matching_fund_totals.c
        self.fund_counts = {
            int(row.fund_id): int(row.matched_count)
            for row in conn.execute(select(f.fund_id, f.matched_count))
        }
