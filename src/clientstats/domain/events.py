"""Parsing and validating operator ledger events into typed domain objects."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import NoReturn

from clientstats.domain import fields
from clientstats.domain.event_types import (
    ClientEvent,
    ClientProjectEvent,
    DonationEvent,
    Event,
    ForwardingEvent,
    MatchingFundEvent,
    NeedEvent,
    ProjectEvent,
    RevocationEvent,
)
from clientstats.domain.fields import EventInvalid, Reader, present
from clientstats.domain.ledger import Channel, Donation
from clientstats.domain.quick_events import quick_event

__all__ = [
    "ClientEvent",
    "ClientProjectEvent",
    "DonationEvent",
    "Event",
    "EventInvalid",
    "ForwardingEvent",
    "MatchingFundEvent",
    "NeedEvent",
    "ProjectEvent",
    "RevocationEvent",
    "parse_event",
    "parse_line",
]


# --- one builder per event kind ------------------------------------------------------------


def _client(r: Reader, now: datetime) -> ClientEvent:
    permalink = r.required("id", fields.permalink)
    name = r.optional("name", fields.title)
    pool = r.optional("pool", fields.boolean)
    private = r.optional("statistics_private", fields.boolean)
    r.finish()
    return ClientEvent(present(permalink), name, pool, private)


def _project(r: Reader, now: datetime) -> ProjectEvent:
    project_id = r.required("id", fields.identifier)
    title = r.optional("title", fields.title)
    closed = r.optional("closed", fields.boolean)
    prohibited = r.optional("donations_prohibited", fields.boolean)
    r.finish()
    return ProjectEvent(present(project_id), title, closed, prohibited)


def _client_project(r: Reader, now: datetime) -> ClientProjectEvent:
    client_id = r.required("client_id", fields.permalink)
    project_id = r.required("project_id", fields.identifier)
    member = r.required("member", fields.boolean)
    r.finish()
    return ClientProjectEvent(present(client_id), present(project_id), present(member))


def _need(r: Reader, now: datetime) -> NeedEvent:
    need_id = r.required("id", fields.identifier)
    project_id = r.optional("project_id", fields.identifier)
    title = r.optional("title", fields.title)
    requested = r.optional("requested_amount_in_cents", fields.amount)
    r.finish()
    return NeedEvent(present(need_id), project_id, title, requested)


def _matching_fund(r: Reader, now: datetime) -> MatchingFundEvent:
    fund_id = r.required("id", fields.identifier)
    client_id = r.optional("client_id", fields.permalink)
    title = r.optional("title", fields.title)
    provided = r.optional("provided_amount_in_cents", fields.provided)
    maximum = r.optional("maximum_matching_amount_in_cents", fields.amount)
    state = r.optional("state", fields.matching_state)
    project_ids = r.optional("project_ids", fields.project_ids)
    r.finish()
    return MatchingFundEvent(
        present(fund_id), client_id, title, provided, maximum, state, project_ids
    )


_MoneyFields = tuple[str | None, int | None, datetime | None, str | None, str | None]


def _money_fields(r: Reader) -> _MoneyFields:
    """Token, amount, created_at, client_reference, tracking_via of donations and forwardings."""
    return (
        r.required("token", fields.token),
        r.required("amount_in_cents", fields.amount),
        r.optional("created_at", fields.created_at, nullable=True),
        r.optional("client_reference", fields.client_reference, nullable=True),
        r.optional("tracking_via", fields.tracking_via, nullable=True),
    )


def _donation(r: Reader, now: datetime) -> DonationEvent:
    token, amount, created_at, reference, tracking = _money_fields(r)
    channel = r.required("channel", fields.channel)
    client_id = r.optional("client_id", fields.permalink, nullable=True)
    receiver = r.required("receiver", fields.receiver)
    r.finish()
    project_id, pool_client_id = present(receiver)
    donation = Donation(
        token=present(token),
        channel=present(channel),
        amount_in_cents=present(amount),
        created_at=created_at or now,
        project_id=project_id,
        pool_client_id=pool_client_id,
        client_id=client_id,
        client_reference=reference,
        tracking_via=tracking,
    )
    return DonationEvent(donation, created_at_given=created_at is not None)


def _forwarding(r: Reader, now: datetime) -> ForwardingEvent:
    token, amount, created_at, reference, tracking = _money_fields(r)
    client_id = r.required("client_id", fields.permalink)
    project_id = r.required("project_id", fields.identifier)
    r.finish()
    forwarding = Donation(
        token=present(token),
        channel=Channel.FORWARDING,
        amount_in_cents=present(amount),
        created_at=created_at or now,
        project_id=present(project_id),
        client_id=present(client_id),
        client_reference=reference,
        tracking_via=tracking,
    )
    return ForwardingEvent(forwarding, created_at_given=created_at is not None)


def _revocation(r: Reader, now: datetime) -> RevocationEvent:
    token = r.required("token", fields.token)
    created_at = r.optional("created_at", fields.created_at, nullable=True)
    r.finish()
    return RevocationEvent(present(token), created_at or now)


_BUILDERS: dict[str, Callable[[Reader, datetime], Event]] = {
    "client": _client,
    "project": _project,
    "client_project": _client_project,
    "need": _need,
    "matching_fund": _matching_fund,
    "donation": _donation,
    "forwarding": _forwarding,
    "revocation": _revocation,
}


def parse_event(obj: object, *, now: datetime, quick: bool = True) -> Event:
    """Validate one decoded event object; raises EventInvalid listing every bad field.

    `quick=False` skips the quick path of the common money events (tests compare the two).
    """
    if not isinstance(obj, dict):
        raise EventInvalid({"event": ["must be a JSON object"]})
    if "event" not in obj:
        raise EventInvalid({"event": ["is required"]})
    kind = obj["event"]
    if not isinstance(kind, str) or kind not in _BUILDERS:
        raise EventInvalid({"event": [f"must be one of {', '.join(_BUILDERS)}"]})
    event = quick_event(kind, obj, now) if quick else None
    if event is not None:
        return event
    reader = Reader(obj, what=f"{kind} events")
    reader.skip("event")
    return _BUILDERS[kind](reader, now)


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not allowed")


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        counts = Counter(key for key, _ in pairs)
        duplicate = next(key for key, count in counts.items() if count > 1)
        raise ValueError(f"duplicate key {duplicate!r}")
    return obj


def _utf8(line: bytes | str) -> str:
    if isinstance(line, str):
        return line
    try:
        # json.loads would also take UTF-16 or UTF-32; JSON Lines are UTF-8 (a BOM is ignored).
        return line.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        where = f"byte {error.start + 1} of the line"
        raise EventInvalid({"line": [f"is not valid UTF-8 text ({where})"]}) from None


def parse_line(line: bytes | str, *, now: datetime) -> Event:
    """Decode one JSON Lines line and validate it as an event; raises EventInvalid."""
    text = _utf8(line)
    try:
        obj = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
    except RecursionError:
        raise EventInvalid({"line": ["is not valid JSON: nested too deeply"]}) from None
    except ValueError as error:  # JSONDecodeError, or an integer of too many digits
        raise EventInvalid({"line": [f"is not valid JSON: {error}"]}) from None
    if not isinstance(obj, dict):
        raise EventInvalid({"line": ["must be a JSON object"]})
    return parse_event(obj, now=now)
