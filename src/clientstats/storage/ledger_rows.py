"""New ledger rows of one transaction, written in bulk: executemany on SQLite, COPY on PostgreSQL.

A batch of an import books thousands of rows: plain tuples in table column order, with the
timestamps already in the form each database stores, handed to the driver at once
(storage.driver_rows). PostgreSQL gets them in COPY's binary format, each value packed as
its column's type: writing them as text cost the importer about 9 us more of its CPU per
event (benchmarks/results/import_postgres.md). A constraint the database enforces still
fails the whole statement, as an SQLAlchemy error like any other, so the import's
line-by-line fallback and retries see no difference.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import BigInteger, Connection, String, Table
from sqlalchemy.exc import DBAPIError

from clientstats.domain.ledger import Donation
from clientstats.storage.driver_rows import driver_time, execute_many, is_sqlite
from clientstats.storage.tables import UtcDateTime, deferred_revocations, donations, revocations

_DONATION_COLUMNS = (
    "token", "channel", "amount_in_cents", "project_id", "pool_client_id", "client_id",
    "client_reference", "tracking_via", "matching_fund_id", "matched_token",
    "redirected_from_project_id", "failure_code", "created_at", "booked_at",
)  # fmt: skip
_TIMED_COLUMNS = ("token", "created_at", "booked_at")


class LedgerRows:
    """The donations, revocations and kept revocations a transaction adds; `write` sends them."""

    def __init__(self, conn: Connection, *, now: datetime) -> None:
        self.conn = conn
        self.sqlite = is_sqlite(conn)
        self.now = self._time(now)
        self.donations: list[tuple[Any, ...]] = []
        self.revocations: list[tuple[Any, ...]] = []
        self.deferred: list[tuple[Any, ...]] = []

    def _time(self, value: datetime) -> datetime | str:
        return driver_time(value, sqlite=self.sqlite)

    def add_donation(self, d: Donation) -> None:
        self.donations.append(
            (
                d.token, d.channel.value, d.amount_in_cents, d.project_id, d.pool_client_id,
                d.client_id, d.client_reference, d.tracking_via, d.matching_fund_id,
                d.matched_token, d.redirected_from_project_id,
                None if d.failure_code is None else d.failure_code.value,
                self._time(d.created_at), self.now,
            )
        )  # fmt: skip

    def add_revocation(self, token: str, created_at: datetime) -> None:
        self.revocations.append((token, self._time(created_at), self.now))

    def add_deferred(self, token: str, created_at: datetime) -> None:
        self.deferred.append((token, self._time(created_at), self.now))

    def write(self) -> None:
        """Insert every collected row (donations first: revocations refer to them)."""
        self._insert(donations, _DONATION_COLUMNS, self.donations)
        self._insert(revocations, _TIMED_COLUMNS, self.revocations)
        self._insert(deferred_revocations, _TIMED_COLUMNS, self.deferred)
        self.donations, self.revocations, self.deferred = [], [], []

    def _insert(self, table: Table, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        names = ", ".join(columns)
        if self.sqlite:
            marks = ", ".join("?" * len(columns))
            execute_many(self.conn, f"INSERT INTO {table.name} ({names}) VALUES ({marks})", rows)
            return
        statement = f"COPY {table.name} ({names}) FROM STDIN (FORMAT BINARY)"
        driver = self.conn.connection.driver_connection
        assert driver is not None
        try:
            with driver.cursor() as cursor, cursor.copy(statement) as copy:
                copy.set_types(_binary_types(table, tuple(columns)))
                for row in rows:
                    copy.write_row(row)
        except self.conn.dialect.loaded_dbapi.Error as exc:
            # As SQLAlchemy would raise it (IntegrityError, OperationalError, ...).
            raise DBAPIError.instance(
                statement, None, exc, self.conn.dialect.loaded_dbapi.Error
            ) from exc


@cache
def _binary_types(table: Table, columns: tuple[str, ...]) -> list[str]:
    """The PostgreSQL types the columns' values are packed as in a binary COPY (once a table)."""
    return [_binary_type(table.c[name].type) for name in columns]


def _binary_type(column_type: Any) -> str:
    if isinstance(column_type, BigInteger):
        return "int8"
    if isinstance(column_type, String):
        return "text"
    if isinstance(column_type, UtcDateTime):
        return "timestamptz"
    raise TypeError(f"no binary COPY type for {column_type!r}")
