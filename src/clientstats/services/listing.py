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


def page_of(
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
                "last_donation_at": iso(figures.last_donation_at),
            }
        )
    return items


def list_projects(conn: Connection, client: ClientInfo, lq: ListQuery, after: Any) -> Page:
    """A page of the client's projects; totals over all projects the facets match."""
    query = q.projects_query(client.permalink, dict(lq.facets))
    keys = q.sort_keys("projects", lq.order)
    found, last = page_of(conn, query, keys, lq, after)
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
    found, last = page_of(conn, query, keys, lq, after)
    count, matched = q.funds_totals(conn, query)
    return Page(_fund_items(conn, found), count, {"matched_amount_in_cents": matched}, last)


def get_fund(conn: Connection, client: ClientInfo, fund_id: int) -> Item:
    """One of the client's matching funds."""
    found = list(conn.execute(q.funds_query(client.permalink, {}, fund_id=fund_id)))
    if not found:
        raise NotFound(f"Couldn't find MatchingFund with id={fund_id}")
    return _fund_items(conn, found)[0]


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
