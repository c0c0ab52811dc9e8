"""The statements that add a transaction's deltas to the aggregate tables, one per table.

Each moves every touched row of its table by the deltas of that row (`x = x + delta`).
SQLite runs the statement once per row (storage.driver_rows: no round trips, rows as
tuples). PostgreSQL would pay a statement's overhead per row, so the project and
client-project rows, a few thousand in a batch, are sent as arrays in one statement
(`unnest`), the projects' rows locked first in key order, as the per-row statements lock
them: concurrent writers never wait for each other in a cycle. Clients and funds are few.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from clientstats.storage.driver_rows import execute_many, is_sqlite

# (money, requested, donations count, matched money, a new entry's time or None, project)
ProjectRow = tuple[int, int, int, int, "datetime | str | None", int]
# (client, project, the client's donated money, its donations count)
ClientProjectRow = tuple[str, int, int, int]

CLIENT_COLUMNS = (
    "client_donated_in_cents",
    "client_donations_count",
    "pool_in_cents",
    "pool_out_cents",
    "pool_in_count",
    "pool_out_count",
)
_ADD_CLIENT = (
    "UPDATE client_totals SET "
    + ", ".join(f"{name} = {name} + ?" for name in CLIENT_COLUMNS)
    + " WHERE client_id = ?"
)
_ADD_FUND = (
    "UPDATE matching_fund_totals SET matched_in_cents = matched_in_cents + ?, "
    "matched_count = matched_count + ? WHERE fund_id = ?"
)
_LATER = (
    # A NULL time (no new entry) leaves the column as it is.
    "CASE WHEN {t}.last_donation_at IS NULL OR {t}.last_donation_at < {at} "
    "THEN {at} ELSE {t}.last_donation_at END"
)
_ADD_PROJECT = (
    "UPDATE project_totals SET money_in_cents = money_in_cents + ?, "
    "requested_in_cents = requested_in_cents + ?, donations_count = donations_count + ?, "
    "matched_in_cents = matched_in_cents + ?, "
    f"last_donation_at = {_LATER.format(t='project_totals', at='?')} WHERE project_id = ?"
)
_LOCK_PROJECTS = (
    "SELECT 1 FROM project_totals WHERE project_id = ANY(%s::bigint[]) "
    "ORDER BY project_id FOR UPDATE"
)
_ADD_PROJECTS = (
    "UPDATE project_totals AS t SET money_in_cents = t.money_in_cents + v.m, "
    "requested_in_cents = t.requested_in_cents + v.r, "
    "donations_count = t.donations_count + v.n, matched_in_cents = t.matched_in_cents + v.x, "
    f"last_donation_at = {_LATER.format(t='t', at='v.at')} "
    "FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], "
    "%s::timestamptz[]) AS v(p, m, r, n, x, at) WHERE t.project_id = v.p"
)
_CLIENT_PROJECT_CONFLICT = (
    "ON CONFLICT (client_id, project_id) DO UPDATE SET "
    "client_donated_in_cents = "
    "client_project_totals.client_donated_in_cents + excluded.client_donated_in_cents, "
    "client_donations_count = "
    "client_project_totals.client_donations_count + excluded.client_donations_count"
)
_COLUMNS = "(client_id, project_id, client_donated_in_cents, client_donations_count)"
_ADD_CLIENT_PROJECT = (
    f"INSERT INTO client_project_totals {_COLUMNS} VALUES (?, ?, ?, ?) {_CLIENT_PROJECT_CONFLICT}"
)
_ADD_CLIENT_PROJECTS = (
    f"INSERT INTO client_project_totals {_COLUMNS} "
    "SELECT * FROM unnest(%s::text[], %s::bigint[], %s::bigint[], %s::bigint[]) "
    f"{_CLIENT_PROJECT_CONFLICT}"
)


def add_to_projects(conn: Connection, rows: list[ProjectRow]) -> None:
    """Move project_totals by `rows`, in ascending project id."""
    if not rows:
        return
    if is_sqlite(conn):
        execute_many(conn, _ADD_PROJECT, [(m, r, n, x, at, at, p) for m, r, n, x, at, p in rows])
        return
    columns = [list(column) for column in zip(*rows, strict=True)]
    money, requested, count, matched, times, ids = columns
    conn.exec_driver_sql(_LOCK_PROJECTS, (ids,))
    conn.exec_driver_sql(_ADD_PROJECTS, (ids, money, requested, count, matched, times))


def add_to_client_projects(conn: Connection, rows: list[ClientProjectRow]) -> None:
    """Move (or create) client_project_totals rows by `rows`, in ascending key."""
    if not rows:
        return
    if is_sqlite(conn):
        execute_many(conn, _ADD_CLIENT_PROJECT, list(rows))
        return
    columns: list[list[Any]] = [list(column) for column in zip(*rows, strict=True)]
    conn.exec_driver_sql(_ADD_CLIENT_PROJECTS, tuple(columns))


def add_to_clients(conn: Connection, rows: list[tuple[Any, ...]]) -> None:
    """Move client_totals by `rows`: the CLIENT_COLUMNS deltas, then the client, by client."""
    execute_many(conn, _ADD_CLIENT, rows)


def add_to_funds(conn: Connection, rows: list[tuple[int, int, int]]) -> None:
    """Move matching_fund_totals by `rows`: (matched money, matched count, fund), by fund."""
    execute_many(conn, _ADD_FUND, rows)
