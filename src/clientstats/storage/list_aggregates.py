"""The aggregates behind the drill-down lists, moved in the booking transaction.

Per project: confirmed entries other than matching ones, matched money and the last
donation's time; per client and project: the client's own donations; per matching fund:
its matched donations. Revoking a project's latest entry makes the last donation's time
an older one, so that one is read back from the ledger (for that project only).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from sqlalchemy import Connection, ScalarSelect, bindparam, exists, select, update
from sqlalchemy.dialects import postgresql, sqlite

from clientstats.domain.ledger import Channel, Donation
from clientstats.storage.tables import (
    client_project_totals,
    client_totals,
    donations,
    matching_fund_totals,
    project_totals,
    revocations,
)
from clientstats.storage.value_lists import PerDialect, in_values, values_param

_LAST = project_totals.c.last_donation_at
_LATER = bindparam("t", type_=project_totals.c.last_donation_at.type)


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


class ListDeltas:
    """What a batch of bookings adds to the list aggregates; written by `flush`."""

    def __init__(self) -> None:
        self.project_donations: Counter[int] = Counter()
        self.project_matched: Counter[int] = Counter()
        self.latest: dict[int, datetime] = {}
        self.recompute_latest: set[int] = set()
        self.client_project: dict[tuple[str, int], list[int]] = {}
        self.fund_count: Counter[int] = Counter()

    def count(self, donation: Donation, *, sign: int) -> None:
        """Move the list aggregates by one entry that moved money (booked: +1, revoked: -1)."""
        project_id = donation.project_id
        if donation.channel is Channel.MATCHING and donation.matching_fund_id is not None:
            self.fund_count[donation.matching_fund_id] += sign
        if project_id is None:
            return
        if donation.channel is Channel.MATCHING:
            self.project_matched[project_id] += sign * donation.amount_in_cents
            return
        self.project_donations[project_id] += sign
        if sign < 0:
            self.recompute_latest.add(project_id)
        else:
            known = self.latest.get(project_id)
            if known is None or donation.created_at > known:
                self.latest[project_id] = donation.created_at
        if donation.channel is Channel.CLIENT and donation.client_id is not None:
            sums = self.client_project.setdefault((donation.client_id, project_id), [0, 0])
            sums[0] += sign * donation.amount_in_cents
            sums[1] += sign

    def flush(self, conn: Connection) -> None:
        """Write the deltas; call after the batch's ledger rows are inserted."""
        projects = sorted(set(self.project_donations) | set(self.project_matched))
        deltas = [
            {"p": p, "n": self.project_donations[p], "x": self.project_matched[p]}
            for p in projects
            if self.project_donations[p] or self.project_matched[p]
        ]
        if deltas:
            t = project_totals.c
            conn.execute(
                update(project_totals)
                .where(t.project_id == bindparam("p"))
                .values(
                    donations_count=t.donations_count + bindparam("n"),
                    matched_in_cents=t.matched_in_cents + bindparam("x"),
                ),
                deltas,
            )
        self._flush_latest(conn)
        self._flush_client_projects(conn)
        funds = [{"f": f, "n": n} for f, n in sorted(self.fund_count.items()) if n]
        if funds:
            t2 = matching_fund_totals.c
            conn.execute(
                update(matching_fund_totals)
                .where(t2.fund_id == bindparam("f"))
                .values(matched_count=t2.matched_count + bindparam("n")),
                funds,
            )

    def _flush_latest(self, conn: Connection) -> None:
        later = [
            {"p": p, "t": at}
            for p, at in sorted(self.latest.items())
            if p not in self.recompute_latest
        ]
        if later:
            conn.execute(
                update(project_totals)
                .where(
                    project_totals.c.project_id == bindparam("p"),
                    _LAST.is_(None) | (_LAST < _LATER),
                )
                .values(last_donation_at=_LATER),
                later,
            )
        if self.recompute_latest:
            params = values_param(conn, sorted(self.recompute_latest))
            conn.execute(_RECOMPUTE_LATEST(conn), params)

    def _flush_client_projects(self, conn: Connection) -> None:
        values = [
            {
                "client_id": c,
                "project_id": p,
                "client_donated_in_cents": amount,
                "client_donations_count": n,
            }
            for (c, p), (amount, n) in sorted(self.client_project.items())
            if amount or n
        ]
        if not values:
            return
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(client_project_totals)
        t = client_project_totals.c
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=[t.client_id, t.project_id],
                set_={
                    "client_donated_in_cents": t.client_donated_in_cents
                    + statement.excluded.client_donated_in_cents,
                    "client_donations_count": t.client_donations_count
                    + statement.excluded.client_donations_count,
                },
            ),
            values,
        )


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
