"""A list parameter reaches PostgreSQL unchanged, whatever its values (sent as a binary array)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg.adapt import PyFormat
from psycopg.types.array import ListBinaryDumper
from sqlalchemy import Engine, text

from clientstats.storage.database import make_engine
from tests.conftest import POSTGRES_URL, require_postgres

# PostgreSQL text cannot hold NUL; everything else, quotes, braces, commas, backslashes,
# white space, the word NULL and any Unicode, must come back as it went.
TEXTS = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20
) | st.sampled_from(["", "NULL", "null", '"', "{a,b}", "a\\b", " padded ", "\u2028", "€"])
BIGINTS = st.integers(min_value=-(2**63), max_value=2**63 - 1)
TIMES = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2999, 12, 31), timezones=st.just(UTC)
)


@pytest.fixture(scope="module")
def postgres() -> Iterator[Engine]:
    require_postgres()
    engine = make_engine(POSTGRES_URL)
    yield engine
    engine.dispose()


def round_trip(engine: Engine, values: list[Any], sql_type: str) -> list[Any]:
    query = text(
        f"SELECT v FROM unnest(CAST(:values AS {sql_type}[])) WITH ORDINALITY AS u(v, n) ORDER BY n"
    )
    with engine.connect() as conn:
        return list(conn.execute(query, {"values": values}).scalars())


def test_the_product_sends_lists_in_the_binary_format(postgres: Engine) -> None:
    with postgres.connect() as conn:
        driver = conn.connection.driver_connection
        assert driver is not None
        dumper = driver.adapters.get_dumper(list, PyFormat.AUTO)
    assert issubclass(dumper, ListBinaryDumper)


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.none() | TEXTS, max_size=30))
def test_text_lists_arrive_unchanged(postgres: Engine, values: list[str | None]) -> None:
    assert round_trip(postgres, values, "text") == values


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.none() | BIGINTS, max_size=30))
def test_bigint_lists_arrive_unchanged(postgres: Engine, values: list[int | None]) -> None:
    assert round_trip(postgres, values, "bigint") == values


@settings(max_examples=40, deadline=None)
@given(values=st.lists(st.none() | TIMES, max_size=30))
def test_timestamp_lists_arrive_unchanged(postgres: Engine, values: list[datetime | None]) -> None:
    assert round_trip(postgres, values, "timestamptz") == values
