"""One envelope for every list: page numbers near the top, an opaque cursor deeper down.

A cursor holds the last row's sort keys and the page it leads to, tied to one list (path,
facets, order) and checked by a keyed hash: a changed or foreign cursor is refused (400).
It is an integrity check, not a secret: a cursor only names a place in a list its bearer
may read anyway.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Sequence
from datetime import datetime
from hmac import compare_digest
from typing import Any

import orjson

from clientstats.api.lists.links import link, with_query
from clientstats.domain.list_query import MAX_OFFSET, ListQuery, ListQueryInvalid, Problem
from clientstats.services.listing import Page

_KEY = b"clientstats list cursor v1"
_MAC_BYTES = 12


def _mac(payload: bytes) -> bytes:
    return hashlib.blake2b(payload, key=_KEY, digest_size=_MAC_BYTES).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def fingerprint(path: str, query: ListQuery) -> str:
    """What a cursor is bound to: the list's path, facets and order."""
    raw = orjson.dumps([path, [[k, str(v)] for k, v in query.facets], list(query.order)])
    return hashlib.blake2b(raw, digest_size=8).hexdigest()


def _encode_key(value: Any) -> Any:
    return {"t": value.isoformat()} if isinstance(value, datetime) else value


def _decode_key(value: Any) -> Any:
    if isinstance(value, dict) and isinstance(value.get("t"), str):
        return datetime.fromisoformat(value["t"])
    if isinstance(value, (int, str)) and not isinstance(value, bool):
        return value
    raise ValueError("not a key")


def encode_cursor(list_id: str, keys: Sequence[Any], page: int) -> str:
    """The opaque cursor to the page after a row with these sort keys."""
    payload = orjson.dumps({"l": list_id, "k": [_encode_key(k) for k in keys], "p": page})
    return f"{_b64(payload)}.{_b64(_mac(payload))}"


def decode_cursor(cursor: str, list_id: str) -> tuple[list[Any], int]:
    """(sort keys, page) of a cursor of this list; ListQueryInvalid naming `cursor` otherwise."""
    try:
        body, _, mac = cursor.partition(".")
        payload = _unb64(body)
        if not compare_digest(_mac(payload), _unb64(mac)):
            raise ValueError("tampered")
        data = orjson.loads(payload)
        if data["l"] != list_id or not isinstance(data["p"], int) or data["p"] < 2:
            raise ValueError("foreign")
        return [_decode_key(k) for k in data["k"]], int(data["p"])
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        raise ListQueryInvalid("cursor", Problem.BAD_CURSOR) from None


def envelope(
    page: Page, query: ListQuery, *, current_page: int, self_url: str, url: str, list_id: str
) -> dict[str, Any]:
    """The platform's list envelope around a page, with self/first/prev/next/last links."""
    per_page = query.per_page
    total_pages = math.ceil(page.total_entries / per_page)
    params: dict[str, str] = {}
    if query.facets:
        params["facets"] = "|".join(f"{k}:{_facet_text(v)}" for k, v in query.facets)
    params["order"] = "|".join(f"{k}:{'DESC' if d else 'ASC'}" for k, d in query.order)
    params["per_page"] = str(per_page)

    def page_link(rel: str, number: int) -> dict[str, str]:
        return link(rel, with_query(url, {**params, "page": str(number)}))

    links = [link("self", self_url), page_link("first", 1)]
    if current_page > 1 and (current_page - 2) * per_page <= MAX_OFFSET:
        links.append(page_link("prev", current_page - 1))
    if page.last_keys is not None:
        cursor = encode_cursor(list_id, page.last_keys, current_page + 1)
        links.append(link("next", with_query(url, {**params, "cursor": cursor})))
    if total_pages >= 1 and (total_pages - 1) * per_page <= MAX_OFFSET:
        links.append(page_link("last", total_pages))
    return {
        "total_entries": page.total_entries,
        "offset": (current_page - 1) * per_page,
        "total_pages": total_pages,
        "current_page": current_page,
        "per_page": per_page,
        **page.totals,
        "data": page.items,
        "links": links,
    }


def _facet_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
