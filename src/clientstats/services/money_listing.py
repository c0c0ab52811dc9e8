"""The money lists behind the statistics: the client's own donations, its pool and forwardings.

Like services.listing, every function reads inside the one snapshot of its response.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row

from clientstats.domain.list_query import ListQuery
from clientstats.errors import NotFound
from clientstats.services.listing import ClientInfo, Item, Page, Snapshot, iso, page_of
from clientstats.storage import list_queries as q

# -- client donations --------------------------------------------------------------------------


def _donation_items(client: ClientInfo, found: list[Row[Any]]) -> list[Item]:
    return [
        {
            "token": row.token,
            "amount_in_cents": int(row.amount_in_cents),
            "state": "confirmed" if row.revoked_at is None else "revoked",
            "created_at": iso(row.created_at),
            "revoked_at": iso(row.revoked_at),
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


def list_client_donations(conn: Snapshot, client: ClientInfo, lq: ListQuery, after: Any) -> Page:
    """A page of the client's own donations; totals from client_totals without facets."""
    facets = dict(lq.facets)
    query = q.client_donations_query(client.permalink, facets)
    keys = q.sort_keys("client_donations", lq.order)
    found, last = page_of(conn, query, keys, lq, after)
    if facets:
        count, amount = q.money_totals(conn, query)
    else:
        count = int(client.totals.client_donations_count)
        amount = int(client.totals.client_donated_in_cents)
    return Page(_donation_items(client, found), count, {"total_amount_in_cents": amount}, last)


def get_client_donation(conn: Snapshot, client: ClientInfo, key: str) -> Item:
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


def list_forwardings(conn: Snapshot, client: ClientInfo, lq: ListQuery, after: Any) -> Page:
    """A page of the forwardings out of the pool; confirmed ones unless the facet says else."""
    _pool_or_raise(client)
    facets = dict(lq.facets)
    query = q.forwardings_query(client.permalink, facets)
    keys = q.sort_keys("forwardings", lq.order)
    found, last = page_of(conn, query, keys, lq, after)
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
            "created_at": iso(row.created_at),
        }
        for row in found
    ]
    return Page(items, count, {"total_amount_in_cents": amount}, last)


def _forwarding_state(row: Row[Any]) -> str:
    if row.failure_code is not None:
        return "failed"
    return "confirmed" if row.revocation_id is None else "revoked"
