"""The fast path: a client's figures from the maintained aggregates, O(its projects)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import BindParameter, Connection, String, bindparam, case, func, select

from clientstats.domain.stats import Statistics
from clientstats.storage.change_feed import ClientVersion
from clientstats.storage.tables import (
    client_projects,
    client_totals,
    clients,
    matching_fund_totals,
    matching_funds,
    project_totals,
)


@dataclass(frozen=True, slots=True)
class ClientSnapshot:
    """A client's figures together with the version they were computed at."""

    permalink: str
    version: ClientVersion
    statistics: Statistics


_PERMALINK: BindParameter[str] = bindparam("permalink", type_=String())
_REQUESTED = project_totals.c.requested_in_cents
_MONEY = project_totals.c.money_in_cents

# Built once: constructing the statements per call cost more than running them.
_HEAD = (
    select(clients.c.has_pool, clients.c.statistics_private, client_totals)
    .join(client_totals, client_totals.c.client_id == clients.c.permalink)
    .where(clients.c.permalink == _PERMALINK)
)
_PROJECTS = (
    select(
        func.count(),
        func.coalesce(func.sum(_REQUESTED), 0),
        func.coalesce(func.sum(case((_REQUESTED > _MONEY, _REQUESTED - _MONEY), else_=0)), 0),
    )
    .select_from(client_projects)
    .join(project_totals, project_totals.c.project_id == client_projects.c.project_id)
    .where(client_projects.c.client_id == _PERMALINK)
)
_MATCHED = (
    select(func.coalesce(func.sum(matching_fund_totals.c.matched_in_cents), 0))
    .select_from(matching_funds)
    .join(matching_fund_totals, matching_fund_totals.c.fund_id == matching_funds.c.id)
    .where(matching_funds.c.client_id == _PERMALINK)
)


def client_snapshot(conn: Connection, permalink: str) -> ClientSnapshot | None:
    """The eight figures of one client from the aggregates; None for an unknown client."""
    params = {"permalink": permalink}
    head = conn.execute(_HEAD, params).first()
    if head is None:
        return None
    projects_count, requested_sum, open_sum = conn.execute(_PROJECTS, params).one()
    matched = conn.execute(_MATCHED, params).scalar_one()
    # PostgreSQL returns SUM(bigint) as numeric: int() keeps every figure an exact integer.
    requested_total, open_total = int(requested_sum), int(open_sum)
    pool = int(head.pool_in_cents) - int(head.pool_out_cents) if head.has_pool else 0
    statistics = Statistics(
        donated_amount_in_cents=requested_total - open_total,
        pool_balance_in_cents=pool,
        open_amount_in_cents=open_total,
        requested_amount_in_cents=requested_total,
        projects_count=int(projects_count),
        client_donated_amount_in_cents=int(head.client_donated_in_cents),
        client_matched_amount_in_cents=int(matched),
        client_donations_count=int(head.client_donations_count),
    )
    version = ClientVersion(int(head.version), int(head.changed_seq), bool(head.statistics_private))
    return ClientSnapshot(permalink, version, statistics)
