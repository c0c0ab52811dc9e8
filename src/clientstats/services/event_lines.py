"""Decoding one ledger event line: orjson for the common compact line, the strict decoder else.

The strict decoder (domain.events.parse_line) rejects duplicate keys, which orjson would
silently merge. A line that orjson decodes and whose object orjson encodes back to exactly
the same bytes cannot have had a duplicate key (nor anything else the strict decoder would
read differently), so the fast decoder's object is taken; every other line, e.g. one with
spaces after the colons, or not JSON at all, goes to the strict decoder, which also words
the errors.
"""

from __future__ import annotations

from datetime import datetime

import orjson

from clientstats.domain.events import Event, parse_event, parse_line


def decode_event(raw: bytes, *, now: datetime) -> Event:
    """The event of one line; raises EventInvalid, as domain.events.parse_line does."""
    if type(raw) is bytes:
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return parse_line(raw, now=now)
        if type(obj) is dict and orjson.dumps(obj) == raw.rstrip(b"\r\n"):
            return parse_event(obj, now=now)
    return parse_line(raw, now=now)
