"""Reading a client API body: UTF-8 JSON only, every number exactly as written."""

from __future__ import annotations

from decimal import Decimal

import pytest

from clientstats.api.json_body import read_json
from clientstats.errors import BadRequest


@pytest.mark.parametrize(
    ("written", "read"),
    [
        ("5", 5),
        ("5.0", 5),
        ("5e0", 5),
        ("500e-2", 5),
        ("-0.0", 0),
        ("99999999999999999999999", Decimal("99999999999999999999999")),
        ("1.0e3", 1000),
        ("1e400", Decimal("1e400")),  # beyond a double: the fast parser refuses it
        ("1e999999999", Decimal("1e999999999")),  # never turned into a billion-digit int
        ("5.000000000000000001", Decimal("5.000000000000000001")),
        ("0.5", Decimal("0.5")),
    ],
)
def test_numbers_are_read_exactly(written: str, read: object) -> None:
    body = read_json(f'{{"amount_in_cents": {written}, "client_reference": "r"}}'.encode())
    assert body == {"amount_in_cents": read, "client_reference": "r"}
    # Never a float; an integer the checks may accept is an int, as the ledger stores it.
    assert isinstance(body, dict) and not isinstance(body["amount_in_cents"], float)
    assert isinstance(body["amount_in_cents"], int) or not isinstance(read, int)


def test_bodies_without_such_numbers_are_read_as_they_are() -> None:
    assert read_json(b'{"a": 1, "b": "\\u00e4", "c": [1.5]}') == {"a": 1, "b": "ä", "c": [1.5]}
    assert read_json(b"[1.0]") == [1.0]


@pytest.mark.parametrize("raw", [b"\xff", b'{"name": "M\xfcller"}', '{"a": 1}'.encode("utf-16")])
def test_a_body_that_is_not_utf8_says_so(raw: bytes) -> None:
    with pytest.raises(BadRequest) as caught:
        read_json(raw)
    assert caught.value.message == "The request body is not valid UTF-8 JSON"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b'{"a": NaN}',
        b'{"a": Infinity, "b": 1e400}',
        b'{"a": "\\ud800", "b": 1e400}',  # a lone surrogate is no text, on either path
        b'{"a": "\\ud800"}',
        b"[" * 100_000,
    ],
)
def test_what_is_not_json_is_a_bad_request(raw: bytes) -> None:
    with pytest.raises(BadRequest) as caught:
        read_json(raw)
    assert caught.value.message.startswith("The request body is not valid JSON: ")
