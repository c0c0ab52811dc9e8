"""The read use cases behind the drill-down lists: one database snapshot per response.

Each function runs inside one read transaction (REPEATABLE READ on PostgreSQL, one WAL
snapshot on SQLite), so a page's rows, its totals and the client's version agree.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Row, Select

from clientstats.domain.ledger import Need
from clientstats.domain.list_figures import need_figures, project_figures
from clientstats.domain.list_query import ListQuery
from clientstats.errors import NotFound
from clientstats.storage import list_queries as q
from clientstats.storage import reference_rows as rows
from clientstats.storage.database import read_transaction
from clientstats.storage.keyset import SortKey, keys_of, page_rows

T = TypeVar("T")
Snapshot = Connection  # what a reader gets: one read transaction
Item = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """The client a list belongs to, as of the response's snapshot."""

    permalink: str
    name: str
    has_pool: bool
    statistics_private: bool
    version: int
    totals: Row[Any]


@dataclass(slots=True)
class Page:
    """One page of a list with the totals over every matching entry."""

    items: list[Item]
    total_entries: int
    totals: dict[str, int] = field(default_factory=dict)
    last_keys: list[Any] | None = None  # the last row's sort keys when a next page may exist


def in_snapshot(engine: Engine, read: Callable[[Connection], T]) -> T:
    """Run `read` in one read transaction: everything it sees is one moment of the database."""
    with read_transaction(engine) as conn:
        return read(conn)


def client_or_raise(conn: Connection, permalink: str) -> ClientInfo:
    """The client named by a list's path; NotFound for an unknown one."""
    row = q.client_row(conn, permalink)
    if row is None:
        raise NotFound(f"Couldn't find Client with permalink={permalink}")
    return ClientInfo(
        row.permalink,
        row.name,
        bool(row.has_pool),
        bool(row.statistics_private),
        int(row.version),
        row,
    )


def _page(
    conn: Connection,
    query: Select[Any],
    keys: Sequence[SortKey],
    list_query: ListQuery,
    after: Sequence[Any] | None,
) -> tuple[list[Row[Any]], list[Any] | None]:
    found = page_rows(
        conn,
        query,
        keys,
        limit=list_query.per_page + 1,
        offset=list_query.offset,
        after=after,
    )
    more = len(found) > list_query.per_page
    found = found[: list_query.per_page]
    return found, keys_of(found[-1], len(keys)) if more and found else None


# -- projects ----------------------------------------------------------------------------------


def _project_items(conn: Connection, found: list[Row[Any]]) -> list[Item]:
    needs_by_project: dict[int, list[Need]] = defaultdict(list)
    for row in q.needs_of(conn, [int(r.id) for r in found]):
        needs_by_project[int(row.project_id)].append(rows.need(row))
    items = []
    for row in found:
        figures = project_figures(
            needs=needs_by_project[int(row.id)],
            money_in_cents=int(row.money),
            donations_count=int(row.donations_count),
            matched_in_cents=int(row.matched_in_cents),
            client_donated_in_cents=int(row.client_donated),
            last_donation_at=row.last_donation_at,
        )
        items.append(
            {
                "id": int(row.id),
                "title": row.title,
                "closed": bool(row.closed),
                "donations_prohibited": bool(row.donations_prohibited),
                "requested_amount_in_cents": figures.requested_in_cents,
                "open_amount_in_cents": figures.open_in_cents,
                "donated_amount_in_cents": figures.donated_in_cents,
                "donations_count": figures.donations_count,
                "matched_amount_in_cents": figures.matched_in_cents,
                "client_donated_amount_in_cents": figures.client_donated_in_cents,
                "progress_percentage": figures.progress_percentage,
                "completed_need_count": figures.completed_need_count,
                "incomplete_need_count": figures.incomplete_need_count,
                "last_donation_at": _iso(figures.last_donation_at),
            }
        )
    return items


def list_projects(conn: Connection, client: ClientInfo, lq: ListQuery, after: Any) -> Page:
    """A page of the client's projects; totals over all projects the facets match."""
    query = q.projects_query(client.permalink, dict(lq.facets))
    keys = q.sort_keys("projects", lq.order)
    found, last = _page(conn, query, keys, lq, after)
    count, requested, open_ = q.projects_totals(conn, query)
    totals = {
        "requested_amount_in_cents": requested,
        "open_amount_in_cents": open_,
        "donated_amount_in_cents": requested - open_,
    }
    return Page(_project_items(conn, found), count, totals, last)


def get_project(conn: Connection, client: ClientInfo, project_id: int) -> Item:
    """One project of the client's set; NotFound outside it."""
    query = q.projects_query(client.permalink, {}, project_id=project_id)
    found = list(conn.execute(query))
    if not found:
        raise NotFound(f"Couldn't find Project with id={project_id}")
    return _project_items(conn, found)[0]


# -- needs -------------------------------------------------------------------------------------


def list_needs(conn: Connection, project_id: int, lq: ListQuery, after: Any) -> Page:
    """Every need of a project filled by the rule of the ledger, paged in id order."""
    project = q.project_money(conn, project_id)
    if project is None:
        raise NotFound(f"Couldn't find Project with id={project_id}")
    needs = [rows.need(r) for r in q.needs_of(conn, [project_id])]
    fills = need_figures(needs, int(project.money))
    wanted = dict(lq.facets).get("completed")
    if wanted is not None:
        fills = [f for f in fills if f.completed == wanted]
    requested = sum(f.need.requested_amount_in_cents for f in fills)
    open_ = sum(f.open_in_cents for f in fills)
    totals = {
        "requested_amount_in_cents": requested,
        "open_amount_in_cents": open_,
        "donated_amount_in_cents": requested - open_,
    }
    count = len(fills)
    descending = bool(lq.order and lq.order[0][1])
    if descending:
        fills.reverse()
    if after is not None:
        last = int(after[0])
        fills = [f for f in fills if (f.need.id < last if descending else f.need.id > last)]
    else:
        fills = fills[lq.offset :]
    more = len(fills) > lq.per_page
    fills = fills[: lq.per_page]
    items = [
        {
            "id": f.need.id,
            "title": f.need.title,
            "requested_amount_in_cents": f.need.requested_amount_in_cents,
            "donated_amount_in_cents": f.donated_in_cents,
            "open_amount_in_cents": f.open_in_cents,
            "completed": f.completed,
            "progress_percentage": f.progress_percentage,
            "project_id": project_id,
        }
        for f in fills
    ]
    return Page(items, count, totals, [fills[-1].need.id] if more and fills else None)


def get_need(conn: Connection, project_id: int, need_id: int) -> Item:
    """One need of a project, filled as in the list."""
    page = list_needs(conn, project_id, _ALL_NEEDS, None)
    for item in page.items:
        if item["id"] == need_id:
            return item
    raise NotFound(f"Couldn't find Need with id={need_id}")


_ALL_NEEDS = ListQuery(page=1, per_page=2**31, facets=(), order=(("id", False),))


# -- client donations --------------------------------------------------------------------------


def _donation_items(client: ClientInfo, found: list[Row[Any]]) -> list[Item]:
    return [
        {
            "token": row.token,
            "amount_in_cents": int(row.amount_in_cents),
            "state": "confirmed" if row.revoked_at is None else "revoked",
            "created_at": _iso(row.created_at),
            "revoked_at": _iso(row.revoked_at),
            "client_reference": row.client_reference,
            "tracking_via": row.tracking_via,
            "receiver_type": "Pool" if row.pool_client_id is not None else "Project",
            "receiver_id": row.pool_client_id or int(row.project_id),
            "receiver_title": client.name if row.pool_client_id is not None else row.project_title,
            "redirected": row.redirected_from_project_id is not None,
            "matched_amount_in_cents": int(row.matched),
            "pledge_id": None if row.pledge_id is None else int(row.pledge_id),
        }
        for row in found
    ]


def list_client_donations(conn: Connection, client: ClientInfo, lq: ListQuery, after: Any) -> Page:
    """A page of the client's own donations; totals from client_totals without facets."""
    facets = dict(lq.facets)
    query = q.client_donations_query(client.permalink, facets)
    keys = q.sort_keys("client_donations", lq.order)
    found, last = _page(conn, query, keys, lq, after)
    if facets:
        count, amount = q.money_totals(conn, query)
    else:
        count = int(client.totals.client_donations_count)
        amount = int(client.totals.client_donated_in_cents)
    return Page(_donation_items(client, found), count, {"total_amount_in_cents": amount}, last)


def get_client_donation(conn: Connection, client: ClientInfo, key: str) -> Item:
    """One of the client's donations by token or client_reference, revoked ones too."""
    for state in ("confirmed", "revoked"):
        query = q.client_donations_query(client.permalink, {"state": state}, key=key)
        found = list(conn.execute(query))
        if found:
            return _donation_items(client, found)[0]
    raise NotFound(f"Couldn't find Donation with key={key}")


# -- pool --------------------------------------------------------------------------------------


def _pool_or_raise(client: ClientInfo) -> None:
    if not client.has_pool:
        raise NotFound(f"Couldn't find Pool of Client with permalink={client.permalink}")


def get_pool(client: ClientInfo) -> Item:
    """The pool's figures from the client's totals."""
    _pool_or_raise(client)
    t = client.totals
    return {
        "donated_amount_in_cents": int(t.pool_in_cents),
        "forwarded_amount_in_cents": int(t.pool_out_cents),
        "balance_in_cents": int(t.pool_in_cents) - int(t.pool_out_cents),
        "donations_count": int(t.pool_in_count),
        "forwardings_count": int(t.pool_out_count),
    }


def list_forwardings(conn: Connection, client: ClientInfo, lq: ListQuery, after: Any) -> Page:
    """A page of the forwardings out of the pool; confirmed ones unless the facet says else."""
    _pool_or_raise(client)
    facets = dict(lq.facets)
    query = q.forwardings_query(client.permalink, facets)
    keys = q.sort_keys("forwardings", lq.order)
    found, last = _page(conn, query, keys, lq, after)
    if facets:
        count, amount = q.money_totals(conn, query)
    else:
        count, amount = int(client.totals.pool_out_count), int(client.totals.pool_out_cents)
    items = [
        {
            "token": row.token,
            "client_reference": row.client_reference,
            "project_id": int(row.project_id),
            "amount_in_cents": int(row.amount_in_cents),
            "state": _forwarding_state(row),
            "failure_code": row.failure_code,
            "created_at": _iso(row.created_at),
        }
        for row in found
    ]
    return Page(items, count, {"total_amount_in_cents": amount}, last)


def _forwarding_state(row: Row[Any]) -> str:
    if row.failure_code is not None:
        return "failed"
    return "confirmed" if row.revocation_id is None else "revoked"


# -- matching funds ----------------------------------------------------------------------------


def _fund_items(conn: Connection, found: list[Row[Any]]) -> list[Item]:
    project_ids = q.fund_project_ids(conn, [int(r.id) for r in found])
    return [
        {
            "id": int(row.id),
            "title": row.title,
            "state": row.state,
            "provided_amount_in_cents": int(row.provided_amount_in_cents),
            "maximum_matching_amount_in_cents": int(row.maximum_matching_amount_in_cents),
            "matched_amount_in_cents": int(row.matched),
            "remaining_amount_in_cents": int(row.provided_amount_in_cents) - int(row.matched),
            "matched_donations_count": int(row.matched_count),
            "project_ids": project_ids[int(row.id)],
        }
        for row in found
    ]


def list_funds(conn: Connection, client: ClientInfo, lq: ListQuery, after: Any) -> Page:
    """A page of the client's matching funds; their matched sum is the client's matched figure."""
    query = q.funds_query(client.permalink, dict(lq.facets))
    keys = q.sort_keys("matching_funds", lq.order)
    found, last = _page(conn, query, keys, lq, after)
    count, matched = q.funds_totals(conn, query)
    return Page(_fund_items(conn, found), count, {"matched_amount_in_cents": matched}, last)


def get_fund(conn: Connection, client: ClientInfo, fund_id: int) -> Item:
    """One of the client's matching funds."""
    found = list(conn.execute(q.funds_query(client.permalink, {}, fund_id=fund_id)))
    if not found:
        raise NotFound(f"Couldn't find MatchingFund with id={fund_id}")
    return _fund_items(conn, found)[0]


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
