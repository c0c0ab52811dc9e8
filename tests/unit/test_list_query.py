"""Reading page, per_page, facets, order and cursor of a list request."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from clientstats.api.lists.pagination import decode_cursor, encode_cursor
from clientstats.domain.list_figures import progress_percentage
from clientstats.domain.list_query import (
    ListQuery,
    ListQueryInvalid,
    ListSpec,
    Problem,
    boolean,
    one_of,
    parse_list_query,
    timestamp,
)

SPEC = ListSpec(
    facets={"closed": boolean, "state": one_of("confirmed", "revoked"), "from": timestamp},
    order_keys=("id", "title"),
    default_order=(("id", False),),
)


def test_defaults() -> None:
    assert parse_list_query({}, SPEC) == ListQuery(1, 20, (), (("id", False),))


def test_facets_and_order_are_typed_and_sorted() -> None:
    query = parse_list_query(
        {
            "page": "3",
            "per_page": "200",
            "facets": "state:revoked|closed:true|from:2025-01-02",
            "order": "title:DESC|id",
        },
        SPEC,
    )
    assert query.page == 3 and query.per_page == 200 and query.offset == 400
    assert query.facets == (
        ("closed", True),
        ("from", datetime(2025, 1, 2, tzinfo=UTC)),
        ("state", "revoked"),
    )
    assert query.order == (("title", True), ("id", False))


@pytest.mark.parametrize(
    ("params", "parameter", "problem"),
    [
        ({"page": "0"}, "page", Problem.NOT_A_PAGE),
        ({"page": "1.5"}, "page", Problem.NOT_A_PAGE),
        ({"page": "²"}, "page", Problem.NOT_A_PAGE),
        ({"per_page": "201"}, "per_page", Problem.NOT_A_PER_PAGE),
        ({"per_page": ""}, "per_page", Problem.NOT_A_PER_PAGE),
        ({"page": "502", "per_page": "20"}, "page", Problem.TOO_DEEP),
        ({"facets": "closed"}, "facets", Problem.MALFORMED),
        ({"facets": "open:true"}, "facets", Problem.UNKNOWN_FACET),
        ({"facets": "closed:yes"}, "facets", Problem.BAD_VALUE),
        ({"facets": "from:2025-01-02T10:00:00"}, "facets", Problem.BAD_VALUE),
        ({"facets": "closed:true|closed:false"}, "facets", Problem.REPEATED),
        ({"order": "amount:ASC"}, "order", Problem.UNKNOWN_ORDER),
        ({"order": "id:DOWN"}, "order", Problem.MALFORMED),
        ({"order": "id|id"}, "order", Problem.REPEATED),
        ({"cursor": "x", "page": "2"}, "cursor", Problem.BAD_CURSOR),
    ],
)
def test_bad_parameters_name_themselves(
    params: dict[str, str], parameter: str, problem: Problem
) -> None:
    with pytest.raises(ListQueryInvalid) as raised:
        parse_list_query(params, SPEC)
    assert (raised.value.parameter, raised.value.problem) == (parameter, problem)


def test_the_deepest_page_by_number_is_at_offset_ten_thousand() -> None:
    assert parse_list_query({"page": "501", "per_page": "20"}, SPEC).offset == 10_000


def test_an_overlong_query_is_refused() -> None:
    with pytest.raises(ListQueryInvalid) as raised:
        parse_list_query({}, SPEC, length=2049)
    assert raised.value.parameter == "query"


def test_cursors_round_trip_and_refuse_other_lists_and_changes() -> None:
    keys = [datetime(2025, 1, 1, 12, tzinfo=UTC), 42, "title"]
    cursor = encode_cursor("list-a", keys, 7)
    assert decode_cursor(cursor, "list-a") == (keys, 7)
    for bad, list_id in ((cursor, "list-b"), (cursor[:-1] + "A", "list-a"), ("", "list-a")):
        with pytest.raises(ListQueryInvalid):
            decode_cursor(bad, list_id)


@pytest.mark.parametrize(
    ("requested", "open_", "expected"),
    [(0, 0, 0), (100, 100, 0), (100, 0, 100), (300, 299, 0), (300, 1, 99), (3, 2, 33)],
)
def test_progress_is_floored(requested: int, open_: int, expected: int) -> None:
    assert progress_percentage(requested, open_) == expected
