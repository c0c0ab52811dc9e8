"""The SQL of the drill-down lists: each list is a filtered query, its sort keys and totals.

Every function takes the facets already checked (domain.list_query) and returns statements;
storage.keyset pages them. Totals without facets come from the maintained aggregates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Row,
    Select,
    and_,
    bindparam,
    case,
    exists,
    func,
    select,
)
from sqlalchemy.orm import aliased

from clientstats.storage.keyset import SortKey
from clientstats.storage.tables import (
    UtcDateTime,
    client_project_totals,
    client_projects,
    client_requests,
    client_totals,
    clients,
    donations,
    matching_fund_projects,
    matching_fund_totals,
    matching_funds,
    needs,
    project_totals,
    projects,
    revocations,
)

Facets = Mapping[str, Any]
_REQ = project_totals.c.requested_in_cents
_MONEY = project_totals.c.money_in_cents
OPEN = case((_REQ > _MONEY, _REQ - _MONEY), else_=0)
PROGRESS = case((_REQ > 0, (100 * (_REQ - OPEN)) // _REQ), else_=0)
_NEVER = bindparam("never", datetime(1, 1, 1, tzinfo=UTC), type_=UtcDateTime())
_MOVEMENT_SORTS: dict[str, ColumnElement[Any]] = {
    "created_at": donations.c.created_at,
    "amount": donations.c.amount_in_cents,
}
PROJECT_SORTS: dict[str, ColumnElement[Any]] = {
    "id": projects.c.id,
    "title": projects.c.title,
    "progress_percentage": PROGRESS,
    "open_amount": OPEN,
    "donated_amount": _MONEY,
    "last_donation_at": func.coalesce(project_totals.c.last_donation_at, _NEVER),
}


def client_row(conn: Connection, permalink: str) -> Row[Any] | None:
    """The client with its totals and version; None for an unknown client."""
    query = (
        select(clients, client_totals)
        .join(client_totals, client_totals.c.client_id == clients.c.permalink)
        .where(clients.c.permalink == permalink)
    )
    return conn.execute(query).first()


# -- projects --------------------------------------------------------------------------------


def projects_query(client_id: str, facets: Facets, *, project_id: int | None = None) -> Select[Any]:
    """The client's projects with their totals and the client's own donations to each."""
    cpt = client_project_totals
    query = (
        select(
            projects,
            _REQ.label("requested"),
            _MONEY.label("money"),
            OPEN.label("open"),
            project_totals.c.donations_count,
            project_totals.c.matched_in_cents,
            project_totals.c.last_donation_at,
            func.coalesce(cpt.c.client_donated_in_cents, 0).label("client_donated"),
        )
        .select_from(client_projects)
        .join(projects, projects.c.id == client_projects.c.project_id)
        .join(project_totals, project_totals.c.project_id == projects.c.id)
        .outerjoin(
            cpt,
            and_(cpt.c.client_id == client_projects.c.client_id, cpt.c.project_id == projects.c.id),
        )
        .where(client_projects.c.client_id == client_id)
    )
    if project_id is not None:
        query = query.where(projects.c.id == project_id)
    for name in ("closed", "donations_prohibited"):
        if name in facets:
            query = query.where(projects.c[name] == facets[name])
    if "completed" in facets:
        done = and_(_REQ > 0, _MONEY >= _REQ)
        query = query.where(done if facets["completed"] else ~done)
    return query


def projects_totals(conn: Connection, query: Select[Any]) -> tuple[int, int, int]:
    """(count, requested, open) over every project the query matches."""
    inner = query.subquery()
    row = conn.execute(
        select(
            func.count(),
            func.coalesce(func.sum(inner.c.requested), 0),
            func.coalesce(func.sum(inner.c.open), 0),
        )
    ).one()
    return int(row[0]), int(row[1]), int(row[2])


def needs_of(conn: Connection, project_ids: list[int]) -> list[Row[Any]]:
    """Every need of these projects."""
    if not project_ids:
        return []
    return list(conn.execute(select(needs).where(needs.c.project_id.in_(project_ids))))


def project_money(conn: Connection, project_id: int) -> Any:
    """A project with its money (for its needs list); None if unknown."""
    query = (
        select(projects.c.id, projects.c.title, _MONEY.label("money"))
        .join(project_totals, project_totals.c.project_id == projects.c.id)
        .where(projects.c.id == project_id)
    )
    return conn.execute(query).first()


# -- client donations --------------------------------------------------------------------------

_MATCH = aliased(donations, name="m")
_MATCH_REVOKED = aliased(revocations, name="mr")


def client_donations_query(
    client_id: str, facets: Facets, *, key: str | None = None
) -> Select[Any]:
    """The client's own `client` donations, revoked ones only under the facet state:revoked."""
    # Scalar subqueries, not joins: SQLite's planner, given ANALYZE statistics that count
    # the NULLs of matched_token as one value, would scan the ledger for a join per row.
    matched = (
        select(_MATCH.c.amount_in_cents)
        .where(
            _MATCH.c.matched_token == donations.c.token,
            ~exists().where(_MATCH_REVOKED.c.token == _MATCH.c.token),
        )
        .scalar_subquery()
    )
    title = select(projects.c.title).where(projects.c.id == donations.c.project_id)
    pledge = (
        select(func.min(client_requests.c.id))
        .where(client_requests.c.donation_token == donations.c.token)
        .scalar_subquery()
    )
    query = (
        select(
            donations.c.id,
            donations.c.token,
            donations.c.amount_in_cents,
            donations.c.created_at,
            donations.c.client_reference,
            donations.c.tracking_via,
            donations.c.project_id,
            donations.c.pool_client_id,
            donations.c.redirected_from_project_id,
            revocations.c.created_at.label("revoked_at"),
            title.scalar_subquery().label("project_title"),
            func.coalesce(matched, 0).label("matched"),
            pledge.label("pledge_id"),
        )
        .select_from(donations)
        .outerjoin(revocations, revocations.c.token == donations.c.token)
        .where(donations.c.client_id == client_id, donations.c.channel == "client")
    )
    if key is not None:
        by_key = (donations.c.token == key) | (donations.c.client_reference == key)
        query = query.where(by_key).order_by(donations.c.id).limit(1)
    revoked = facets.get("state") == "revoked"
    query = query.where(revocations.c.id.is_not(None) if revoked else revocations.c.id.is_(None))
    if "client_reference" in facets:
        query = query.where(donations.c.client_reference == facets["client_reference"])
    if "receiver_type" in facets:
        to_pool = facets["receiver_type"] == "Pool"
        query = query.where(
            donations.c.pool_client_id.is_not(None)
            if to_pool
            else donations.c.project_id.is_not(None)
        )
    if "project_id" in facets:
        query = query.where(donations.c.project_id == facets["project_id"])
    if "created_at_from" in facets:
        query = query.where(donations.c.created_at >= facets["created_at_from"])
    if "created_at_to" in facets:
        query = query.where(donations.c.created_at <= facets["created_at_to"])
    return query


def money_totals(conn: Connection, query: Select[Any]) -> tuple[int, int]:
    """(count, amount) over every entry the query matches."""
    inner = query.subquery()
    row = conn.execute(
        select(func.count(), func.coalesce(func.sum(inner.c.amount_in_cents), 0))
    ).one()
    return int(row[0]), int(row[1])


# -- pool forwardings --------------------------------------------------------------------------


def forwardings_query(client_id: str, facets: Facets) -> Select[Any]:
    """Forwardings out of the client's pool, in the state the facet names (confirmed)."""
    query = (
        select(
            donations.c.id,
            donations.c.token,
            donations.c.client_reference,
            donations.c.project_id,
            donations.c.amount_in_cents,
            donations.c.failure_code,
            donations.c.created_at,
            revocations.c.id.label("revocation_id"),
        )
        .select_from(donations)
        .outerjoin(revocations, revocations.c.token == donations.c.token)
        .where(donations.c.client_id == client_id, donations.c.channel == "forwarding")
    )
    state = facets.get("state", "confirmed")
    if state == "confirmed":
        query = query.where(donations.c.failure_code.is_(None), revocations.c.id.is_(None))
    elif state == "failed":
        query = query.where(donations.c.failure_code.is_not(None))
    else:
        query = query.where(revocations.c.id.is_not(None))
    return query


# -- matching funds ----------------------------------------------------------------------------


def funds_query(client_id: str, facets: Facets, *, fund_id: int | None = None) -> Select[Any]:
    """The client's matching funds with their matched totals."""
    query = (
        select(
            matching_funds,
            matching_fund_totals.c.matched_in_cents.label("matched"),
            matching_fund_totals.c.matched_count,
        )
        .join(matching_fund_totals, matching_fund_totals.c.fund_id == matching_funds.c.id)
        .where(matching_funds.c.client_id == client_id)
    )
    if "state" in facets:
        query = query.where(matching_funds.c.state == facets["state"])
    if fund_id is not None:
        query = query.where(matching_funds.c.id == fund_id)
    return query


def funds_totals(conn: Connection, query: Select[Any]) -> tuple[int, int]:
    """(count, matched) over every fund the query matches."""
    inner = query.subquery()
    row = conn.execute(select(func.count(), func.coalesce(func.sum(inner.c.matched), 0))).one()
    return int(row[0]), int(row[1])


def fund_project_ids(conn: Connection, fund_ids: list[int]) -> dict[int, list[int]]:
    """The projects each fund matches, ascending."""
    found: dict[int, list[int]] = {f: [] for f in fund_ids}
    if fund_ids:
        query = (
            select(matching_fund_projects.c.fund_id, matching_fund_projects.c.project_id)
            .where(matching_fund_projects.c.fund_id.in_(fund_ids))
            .order_by(matching_fund_projects.c.project_id)
        )
        for fund_id, project_id in conn.execute(query):
            found[fund_id].append(int(project_id))
    return found


_SORTS: dict[str, tuple[dict[str, ColumnElement[Any]], ColumnElement[Any]]] = {
    "projects": (PROJECT_SORTS, projects.c.id),
    "client_donations": (_MOVEMENT_SORTS, donations.c.id),
    "forwardings": (_MOVEMENT_SORTS, donations.c.id),
    "matching_funds": ({"id": matching_funds.c.id}, matching_funds.c.id),
}


def sort_keys(list_name: str, order: Sequence[tuple[str, bool]]) -> list[SortKey]:
    """The keys a list is ordered by, ending in its unique id (same direction as the first)."""
    sorts, unique = _SORTS[list_name]
    keys = [SortKey(sorts[key], descending) for key, descending in order]
    if not any(sorts[key] is unique for key, _ in order):
        keys.append(SortKey(unique, order[0][1] if order else False))
    return keys
