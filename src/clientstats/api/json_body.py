"""Reading a JSON request body: UTF-8 only, and its numbers exactly as written.

JSON does not tell 5 from 5.0 or 5e0: all three are the integer 5. The fast parser reads any
number with a fraction or exponent, or beyond 64 bits, as a binary float, which would round
1000000.0000000001 to an integer; it refuses numbers beyond a double (1e400) outright. Such
bodies are read once more with every number as a decimal, so money stays exact.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import NoReturn

import orjson

from clientstats.errors import BadRequest

_SMALL = 20  # decimal digits: an int of up to this many is cheap, and more than any bound


def _refuse(constant: str) -> NoReturn:
    raise ValueError(f"{constant} is not JSON")


def _exact(value: object) -> object:
    if (
        isinstance(value, Decimal)
        and value.is_finite()
        and value.adjusted() < _SMALL
        and value == value.to_integral_value()
    ):
        return int(value)
    return value  # a fraction, or an integer far out of any range: the checks say which


def _read_exactly(raw: bytes, error: Exception) -> object:
    """The body read with decimal numbers; BadRequest naming `error` if it is no JSON."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("The request body is not valid UTF-8 JSON") from None
    try:
        value = json.loads(text, parse_float=Decimal, parse_int=Decimal, parse_constant=_refuse)
        # A lone surrogate escape ("\ud800") is no text: it cannot be written as UTF-8.
        json.dumps(value, ensure_ascii=False, default=str).encode("utf-8")
    except (ValueError, RecursionError, UnicodeEncodeError):
        raise BadRequest(f"The request body is not valid JSON: {error}") from None
    return value


def read_json(raw: bytes) -> object:
    """The JSON value of a body; top-level integral numbers as int, other numbers as Decimal."""
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        parsed = _read_exactly(raw, error)
    else:
        if not isinstance(parsed, dict) or not any(isinstance(v, float) for v in parsed.values()):
            return parsed
        parsed = _read_exactly(raw, ValueError("unreadable"))
    if isinstance(parsed, dict):
        return {key: _exact(value) for key, value in parsed.items()}
    return parsed
