"""Reading a JSON request body: UTF-8 only, and its numbers exactly as written.

JSON does not tell 5 from 5.0 or 5e0: all three are the integer 5. A fast parser reads any
number with a fraction or exponent, or beyond 64 bits, as a binary float, which would round
1000000.0000000001 to an integer and 10**23 to another one; such bodies are read once more
with every number as a decimal, so money stays exact.
"""

from __future__ import annotations

import json
from decimal import Decimal

import orjson

from clientstats.errors import BadRequest


def _exact(value: object) -> object:
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)  # small: the fast parser has refused anything beyond a double
    return value


def read_json(raw: bytes) -> object:
    """The JSON value of a body; top-level integral numbers as int, other numbers as Decimal."""
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("The request body is not valid UTF-8 JSON") from None
        raise BadRequest(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(parsed, dict) or not any(isinstance(v, float) for v in parsed.values()):
        return parsed
    exact = json.loads(raw, parse_float=Decimal)
    return {key: _exact(value) for key, value in exact.items()}
