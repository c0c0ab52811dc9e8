"""One page of any list: by offset, or after a keyset position (constant cost at any depth)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Row,
    Select,
    and_,
    false,
    literal,
    or_,
    true,
    tuple_,
)


@dataclass(frozen=True, slots=True)
class SortKey:
    """An expression a list is ordered by; the last key of an order must be unique."""

    expression: ColumnElement[Any]
    descending: bool


def _after(keys: Sequence[SortKey], values: Sequence[Any]) -> ColumnElement[bool]:
    """Rows strictly after `values` in the order of `keys` (a lexicographic comparison)."""
    if len({k.descending for k in keys}) == 1:
        # One direction: a row-value comparison, which both databases seek in an index, so
        # a page costs the same however deep it is.
        columns = tuple_(*(k.expression for k in keys))
        bound = tuple_(*(literal(v, k.expression.type) for k, v in zip(keys, values, strict=True)))
        return columns < bound if keys[0].descending else columns > bound
    clause: ColumnElement[bool] = false()
    # Built from the last key backwards: k1 > v1 OR (k1 = v1 AND (k2 > v2 OR (...)))
    for key, value in reversed(list(zip(keys, values, strict=True))):
        beyond = key.expression < value if key.descending else key.expression > value
        clause = or_(beyond, and_(key.expression == value, clause))
    return clause


def page_rows(
    conn: Connection,
    query: Select[Any],
    keys: Sequence[SortKey],
    *,
    limit: int,
    offset: int = 0,
    after: Sequence[Any] | None = None,
) -> list[Row[Any]]:
    """Up to `limit` rows of `query` in key order; each row carries its keys as k0, k1, ..."""
    labelled = query.add_columns(*(k.expression.label(f"k{i}") for i, k in enumerate(keys)))
    if after is not None:
        labelled = labelled.where(_after(keys, after))
    else:
        labelled = labelled.where(true()).offset(offset)
    ordering = [k.expression.desc() if k.descending else k.expression.asc() for k in keys]
    return list(conn.execute(labelled.order_by(*ordering).limit(limit)))


def keys_of(row: Row[Any], count: int) -> list[Any]:
    """The sort key values of a row from page_rows."""
    mapping = row._mapping
    return [mapping[f"k{i}"] for i in range(count)]
