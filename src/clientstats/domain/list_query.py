"""What a list request asks for: page, per_page, facets and order, checked and typed.

Pure rules shared by every drill-down list; a list declares its facets and order keys in a
ListSpec and gets a ListQuery back, or a ListQueryInvalid naming the offending parameter.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 200
MAX_OFFSET = 10_000  # deeper than this, the `next` cursor walks on
MAX_QUERY_LENGTH = 2048
MAX_ORDER_KEYS = 3
_NUMBER = re.compile(r"[0-9]{1,9}")
_REFERENCE = re.compile(r"[A-Za-z0-9_-]{1,128}")
_PROJECT_ID = re.compile(r"[0-9]{1,18}")
PARAMETERS = frozenset({"page", "per_page", "facets", "order", "cursor"})


class Problem(StrEnum):
    """Why a parameter cannot be used; api.messages words each one in de and en."""

    NOT_A_PAGE = "not_a_page"
    NOT_A_PER_PAGE = "not_a_per_page"
    TOO_DEEP = "too_deep"
    MALFORMED = "malformed"
    UNKNOWN_FACET = "unknown_facet"
    UNKNOWN_ORDER = "unknown_order"
    BAD_VALUE = "bad_value"
    REPEATED = "repeated"
    BAD_CURSOR = "bad_cursor"
    TOO_LONG = "too_long"


class ListQueryInvalid(Exception):
    """A list parameter that cannot be used; `parameter` names it."""

    def __init__(self, parameter: str, problem: Problem, **params: object) -> None:
        super().__init__(f"{parameter}: {problem.value}")
        self.parameter = parameter
        self.problem = problem
        self.params = params


FacetValue = bool | str | int | datetime


def boolean(raw: str) -> bool | None:
    """`true`/`false`; None for anything else."""
    return {"true": True, "false": False}.get(raw)


def one_of(*allowed: str) -> Callable[[str], str | None]:
    """A facet whose value is one of a few words."""
    return lambda raw: raw if raw in allowed else None


def reference(raw: str) -> str | None:
    """A client reference or token: [A-Za-z0-9_-]{1,128}."""
    return raw if _REFERENCE.fullmatch(raw) else None


def positive_id(raw: str) -> int | None:
    """An id >= 1 that fits 64 bits."""
    if not _PROJECT_ID.fullmatch(raw) or not 1 <= int(raw) < 2**63:
        return None
    return int(raw)


def timestamp(raw: str) -> datetime | None:
    """ISO 8601 with an offset (a date alone means its midnight UTC)."""
    try:
        value = datetime.fromisoformat(raw.replace(" ", "+"))
    except ValueError:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC) if len(raw) == 10 else None
    return value


@dataclass(frozen=True, slots=True)
class ListSpec:
    """What one list accepts: facets with their parsers, order keys, defaults."""

    facets: Mapping[str, Callable[[str], FacetValue | None]]
    order_keys: tuple[str, ...]
    default_order: tuple[tuple[str, bool], ...]  # (key, descending)
    default_facets: Mapping[str, FacetValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ListQuery:
    """A checked list request."""

    page: int
    per_page: int
    facets: tuple[tuple[str, FacetValue], ...]  # as asked, sorted by key (defaults not added)
    order: tuple[tuple[str, bool], ...]  # (key, descending)
    cursor: str | None = None

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page

    def at_page(self, page: int) -> ListQuery:
        """The same query at another page (a cursor's)."""
        return ListQuery(
            self.page if page < 1 else page, self.per_page, self.facets, self.order, self.cursor
        )

    def facet(self, spec: ListSpec, name: str) -> FacetValue | None:
        """A facet's value, or its default."""
        return dict(self.facets).get(name, spec.default_facets.get(name))


def _page(raw: str | None) -> int:
    if raw is None:
        return 1
    if not _NUMBER.fullmatch(raw) or int(raw) < 1:
        raise ListQueryInvalid("page", Problem.NOT_A_PAGE)
    return int(raw)


def _per_page(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_PER_PAGE
    if not _NUMBER.fullmatch(raw) or not 1 <= int(raw) <= MAX_PER_PAGE:
        raise ListQueryInvalid("per_page", Problem.NOT_A_PER_PAGE, max=MAX_PER_PAGE)
    return int(raw)


def _facets(raw: str | None, spec: ListSpec) -> tuple[tuple[str, FacetValue], ...]:
    if raw is None or raw == "":
        return ()
    found: dict[str, FacetValue] = {}
    for part in raw.split("|"):
        key, sep, value = part.partition(":")
        if not sep or not key:
            raise ListQueryInvalid("facets", Problem.MALFORMED, part=part[:64])
        parse = spec.facets.get(key)
        if parse is None:
            raise ListQueryInvalid("facets", Problem.UNKNOWN_FACET, key=key[:64])
        if key in found:
            raise ListQueryInvalid("facets", Problem.REPEATED, key=key)
        parsed = parse(value)
        if parsed is None:
            raise ListQueryInvalid("facets", Problem.BAD_VALUE, key=key, value=value[:64])
        found[key] = parsed
    return tuple(sorted(found.items()))


def _order(raw: str | None, spec: ListSpec) -> tuple[tuple[str, bool], ...]:
    if raw is None or raw == "":
        return spec.default_order
    order: list[tuple[str, bool]] = []
    for part in raw.split("|"):
        key, sep, direction = part.partition(":")
        if key not in spec.order_keys:
            if not key:
                raise ListQueryInvalid("order", Problem.MALFORMED, part=part[:64])
            raise ListQueryInvalid("order", Problem.UNKNOWN_ORDER, key=key[:64])
        if sep and direction.upper() not in ("ASC", "DESC"):
            raise ListQueryInvalid("order", Problem.MALFORMED, part=part[:64])
        if any(k == key for k, _ in order):
            raise ListQueryInvalid("order", Problem.REPEATED, key=key)
        order.append((key, direction.upper() == "DESC"))
    if len(order) > MAX_ORDER_KEYS:
        raise ListQueryInvalid("order", Problem.MALFORMED, part=raw[:64])
    return tuple(order)


def parse_list_query(params: Mapping[str, str], spec: ListSpec, *, length: int = 0) -> ListQuery:
    """Check a list request's parameters; raises ListQueryInvalid naming the first bad one."""
    if length > MAX_QUERY_LENGTH:
        raise ListQueryInvalid("query", Problem.TOO_LONG, max=MAX_QUERY_LENGTH)
    page = _page(params.get("page"))
    per_page = _per_page(params.get("per_page"))
    cursor = params.get("cursor")
    if cursor is not None and "page" in params:
        raise ListQueryInvalid("cursor", Problem.BAD_CURSOR)
    if cursor is None and (page - 1) * per_page > MAX_OFFSET:
        raise ListQueryInvalid("page", Problem.TOO_DEEP, max=MAX_OFFSET)
    return ListQuery(
        page=page,
        per_page=per_page,
        facets=_facets(params.get("facets"), spec),
        order=_order(params.get("order"), spec),
        cursor=cursor,
    )
