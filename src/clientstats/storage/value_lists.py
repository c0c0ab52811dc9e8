"""`column IN (a list of values)` as a statement with one parameter, compiled once.

SQLAlchemy's expanding `IN` renders and processes one parameter per value on every call,
which for the hundreds of tokens of an import batch costs more than the lookup itself.
Here the list is one parameter: a JSON array read with `json_each` on SQLite, an array
compared with `= ANY` on PostgreSQL. Both use the column's index.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Select,
    String,
    any_,
    bindparam,
    column,
    func,
)
from sqlalchemy import select as sql_select
from sqlalchemy.dialects.postgresql import ARRAY

VALUES = "values"


def in_values(col: ColumnElement[Any], dialect: str) -> ColumnElement[bool]:
    """`col` is one of the values of the `values` parameter (see `values_param`)."""
    if dialect == "sqlite":
        each: Select[Any] = sql_select(column("value")).select_from(
            func.json_each(bindparam(VALUES))
        )
        return col.in_(each.scalar_subquery())
    element = BigInteger() if isinstance(col.type, BigInteger) else String()
    return col == any_(bindparam(VALUES, type_=ARRAY(element)))


def values_param(conn: Connection, values: Iterable[Any]) -> dict[str, Any]:
    """The parameters of a statement built with `in_values`."""
    if conn.dialect.name == "sqlite":
        return {VALUES: orjson.dumps(list(values)).decode()}
    return {VALUES: list(values)}


class PerDialect:
    """A statement built once per database dialect (they differ only in `in_values`)."""

    def __init__(self, build: Callable[[str], Any]) -> None:
        self.build = build
        self.built: dict[str, Any] = {}

    def __call__(self, conn: Connection) -> Any:
        name = conn.dialect.name
        if name not in self.built:
            self.built[name] = self.build(name)
        return self.built[name]
