"""Reads of the whole ledger and reference data, for verification and tests."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, exists, select

from clientstats.domain.ledger import Client, Donation, MatchingFund, Need
from clientstats.storage import reference_rows as rows
from clientstats.storage.tables import (
    client_projects,
    clients,
    deferred_revocations,
    donations,
    matching_fund_projects,
    matching_funds,
    needs,
    revocations,
)

STREAM_CHUNK = 10_000


@dataclass(frozen=True, slots=True)
class ReferenceData:
    """Clients, their projects, needs and matching funds."""

    clients: dict[str, Client]
    project_ids_by_client: dict[str, list[int]]
    needs_by_project: dict[int, list[Need]]
    funds: list[MatchingFund]


def load_reference_data(conn: Connection) -> ReferenceData:
    """Everything but the ledger entries; small next to them."""
    all_clients = {row.permalink: rows.client(row) for row in conn.execute(select(clients))}
    members: dict[str, list[int]] = defaultdict(list)
    for client_id, project_id in conn.execute(select(client_projects)):
        members[client_id].append(project_id)
    by_project: dict[int, list[Need]] = defaultdict(list)
    for row in conn.execute(select(needs)):
        by_project[row.project_id].append(rows.need(row))
    fund_projects: dict[int, set[int]] = defaultdict(set)
    for fund_id, project_id in conn.execute(select(matching_fund_projects)):
        fund_projects[fund_id].add(project_id)
    funds = [
        rows.matching_fund(row, frozenset(fund_projects[row.id]))
        for row in conn.execute(select(matching_funds).order_by(matching_funds.c.id))
    ]
    return ReferenceData(all_clients, dict(members), dict(by_project), funds)


def stream_entries(conn: Connection) -> Iterator[tuple[Donation, bool]]:
    """Every ledger entry with whether it was revoked, in booking order, in bounded memory."""
    query = (
        select(donations, revocations.c.id.is_not(None).label("revoked"))
        .outerjoin(revocations, revocations.c.token == donations.c.token)
        .order_by(donations.c.id)
    )
    result = conn.execution_options(yield_per=STREAM_CHUNK).execute(query)
    for row in result:
        yield rows.donation(row), bool(row.revoked)


def unmet_revocations(conn: Connection) -> dict[str, datetime]:
    """Kept revocations that no booked donation or forwarding has met: token -> created_at."""
    booked = exists().where(donations.c.token == deferred_revocations.c.token)
    query = select(deferred_revocations.c.token, deferred_revocations.c.created_at).where(~booked)
    # Sorted here, not by the database: collations order tokens differently.
    return dict(sorted((token, created_at) for token, created_at in conn.execute(query)))
