"""Conversions between table rows and domain objects, and the aggregate update statements."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, select

from clientstats.domain.ledger import (
    Channel,
    Client,
    Donation,
    FailureCode,
    MatchingFund,
    Need,
    Project,
)
from clientstats.storage.tables import (
    matching_fund_projects,
    matching_funds,
)


def client(row: Row[Any]) -> Client:
    """A client from its row."""
    return Client(row.permalink, row.name, bool(row.has_pool), bool(row.statistics_private))


def client_values(c: Client) -> dict[str, Any]:
    """The row values of a client (its credentials are kept apart)."""
    return {
        "permalink": c.permalink,
        "name": c.name,
        "has_pool": c.has_pool,
        "statistics_private": c.statistics_private,
    }


def project(row: Row[Any]) -> Project:
    """A project from its row."""
    return Project(row.id, row.title, bool(row.closed), bool(row.donations_prohibited))


def project_values(p: Project) -> dict[str, Any]:
    """The row values of a project."""
    return {
        "id": p.id,
        "title": p.title,
        "closed": p.closed,
        "donations_prohibited": p.donations_prohibited,
    }


def need(row: Row[Any]) -> Need:
    """A need from its row."""
    return Need(row.id, row.project_id, row.title, int(row.requested_amount_in_cents))


def need_values(n: Need) -> dict[str, Any]:
    """The row values of a need."""
    return {
        "id": n.id,
        "project_id": n.project_id,
        "title": n.title,
        "requested_amount_in_cents": n.requested_amount_in_cents,
    }


def load_matching_fund(conn: Connection, fund_id: int) -> MatchingFund | None:
    """A matching fund with the set of projects it matches."""
    row = conn.execute(select(matching_funds).where(matching_funds.c.id == fund_id)).first()
    if row is None:
        return None
    project_ids = conn.execute(
        select(matching_fund_projects.c.project_id).where(
            matching_fund_projects.c.fund_id == fund_id
        )
    ).scalars()
    return matching_fund(row, frozenset(project_ids))


def matching_fund(row: Row[Any], project_ids: frozenset[int]) -> MatchingFund:
    """A matching fund from its row and its projects."""
    return MatchingFund(
        id=row.id,
        client_id=row.client_id,
        title=row.title,
        provided_amount_in_cents=int(row.provided_amount_in_cents),
        maximum_matching_amount_in_cents=int(row.maximum_matching_amount_in_cents),
        state=row.state,
        project_ids=project_ids,
    )


def matching_fund_values(f: MatchingFund) -> dict[str, Any]:
    """The row values of a matching fund (its projects are rows of their own)."""
    return {
        "id": f.id,
        "client_id": f.client_id,
        "title": f.title,
        "provided_amount_in_cents": f.provided_amount_in_cents,
        "maximum_matching_amount_in_cents": f.maximum_matching_amount_in_cents,
        "state": f.state,
    }


def donation(row: Row[Any]) -> Donation:
    """A ledger entry from its row."""
    return Donation(
        token=row.token,
        channel=Channel(row.channel),
        amount_in_cents=int(row.amount_in_cents),
        created_at=row.created_at,
        project_id=row.project_id,
        pool_client_id=row.pool_client_id,
        client_id=row.client_id,
        client_reference=row.client_reference,
        tracking_via=row.tracking_via,
        matching_fund_id=row.matching_fund_id,
        matched_token=row.matched_token,
        redirected_from_project_id=row.redirected_from_project_id,
        failure_code=None if row.failure_code is None else FailureCode(row.failure_code),
    )


def donation_values(d: Donation, *, booked_at: datetime) -> dict[str, Any]:
    """The row values of a ledger entry."""
    return {
        "token": d.token,
        "channel": d.channel.value,
        "amount_in_cents": d.amount_in_cents,
        "project_id": d.project_id,
        "pool_client_id": d.pool_client_id,
        "client_id": d.client_id,
        "client_reference": d.client_reference,
        "tracking_via": d.tracking_via,
        "matching_fund_id": d.matching_fund_id,
        "matched_token": d.matched_token,
        "redirected_from_project_id": d.redirected_from_project_id,
        "failure_code": None if d.failure_code is None else d.failure_code.value,
        "created_at": d.created_at,
        "booked_at": booked_at,
    }
