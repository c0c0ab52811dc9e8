"""Many rows of one statement handed to the driver as plain tuples, past SQLAlchemy's processing.

An import batch writes thousands of ledger and aggregate rows. Through SQLAlchemy Core every
parameter of every row goes through its type's bind processing (a timestamp's twice per
row), which costs more than the database's own work. Statements here are plain SQL with `?`
placeholders (`%s` for psycopg) and rows are tuples whose values are already in the form the
database stores. Errors still arrive as SQLAlchemy's exceptions (IntegrityError, ...).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection


def is_sqlite(conn: Connection) -> bool:
    return conn.dialect.name == "sqlite"


def driver_time(value: datetime, *, sqlite: bool) -> datetime | str:
    """A timezone-aware time as the driver takes it for a `tables.UtcDateTime` column."""
    if sqlite:
        # SQLAlchemy's SQLite DateTime text: naive UTC with microseconds, so text order is
        # time order.
        if value.tzinfo is not UTC:
            value = value.astimezone(UTC)
        # The text without its "+00:00" (years have four digits: the offset starts at 26).
        return value.isoformat(" ", "microseconds")[:26]
    return value


def execute_many(conn: Connection, statement: str, rows: list[tuple[Any, ...]]) -> None:
    """Run `statement` (with `?` placeholders) once per row; nothing for no rows."""
    if not rows:
        return
    if not is_sqlite(conn):
        statement = statement.replace("?", "%s")
    conn.exec_driver_sql(statement, rows)
