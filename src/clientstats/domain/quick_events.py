"""The common money events checked without the generic field reader, for bulk imports.

Donations, forwardings and revocations are nearly every line of a ledger file. When such an
object has only known fields, each of the expected type and valid, this builds the same
event the field reader would, in a fraction of its time. Anything else (a missing, unknown
or invalid field) gives None, and the caller runs the field reader, which names every
problem. The checks are the field reader's own, so both paths accept exactly the same.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from clientstats.domain import fields
from clientstats.domain.event_types import DonationEvent, ForwardingEvent, RevocationEvent
from clientstats.domain.fields import FieldInvalid
from clientstats.domain.ledger import Channel, Donation

Obj = dict[object, object]
QuickEvent = DonationEvent | ForwardingEvent | RevocationEvent

_MONEY_KEYS = frozenset(
    {"event", "token", "amount_in_cents", "created_at", "client_reference", "tracking_via"}
)
_DONATION_KEYS = _MONEY_KEYS | {"channel", "client_id", "receiver"}
_FORWARDING_KEYS = _MONEY_KEYS | {"client_id", "project_id"}
_REVOCATION_KEYS = frozenset({"event", "token", "created_at"})
_CHANNELS = {c.value: c for c in fields.IMPORTABLE_CHANNELS}
_PROJECT_RECEIVER_KEYS = frozenset({"type", "id"})
_POOL_RECEIVER_KEYS = frozenset({"type", "client_id"})


class _NotQuick(Exception):
    """The object is not of the common valid form; the field reader must judge it."""


def quick_event(kind: str, obj: Obj, now: datetime) -> QuickEvent | None:
    """The event of a valid donation, forwarding or revocation object; None: use the reader."""
    try:
        if kind == "donation":
            return _donation(obj, now)
        if kind == "forwarding":
            return _forwarding(obj, now)
        if kind == "revocation":
            return _revocation(obj, now)
    except (FieldInvalid, KeyError, _NotQuick):
        return None
    return None


def _text(obj: Obj, key: str, check: Callable[[object], str]) -> str | None:
    value = obj.get(key)
    return None if value is None else check(value)


def _time(obj: Obj) -> datetime | None:
    value = obj.get("created_at")
    return None if value is None else fields.created_at(value)


def _donation(obj: Obj, now: datetime) -> DonationEvent:
    if not obj.keys() <= _DONATION_KEYS:
        raise _NotQuick
    channel = obj["channel"]
    if type(channel) is not str or channel not in _CHANNELS:
        raise _NotQuick
    project_id, pool_client_id = _receiver(obj["receiver"])
    created_at = _time(obj)
    donation = Donation(
        token=fields.token(obj["token"]),
        channel=_CHANNELS[channel],
        amount_in_cents=fields.amount(obj["amount_in_cents"]),
        created_at=created_at or now,
        project_id=project_id,
        pool_client_id=pool_client_id,
        client_id=_text(obj, "client_id", fields.permalink),
        client_reference=_text(obj, "client_reference", fields.client_reference),
        tracking_via=_text(obj, "tracking_via", fields.tracking_via),
    )
    return DonationEvent(donation, created_at_given=created_at is not None)


def _receiver(value: object) -> tuple[int | None, str | None]:
    if type(value) is not dict:
        raise _NotQuick
    kind = value.get("type")
    if kind == "project" and value.keys() == _PROJECT_RECEIVER_KEYS:
        return fields.identifier(value["id"]), None
    if kind == "pool" and value.keys() == _POOL_RECEIVER_KEYS:
        return None, fields.permalink(value["client_id"])
    raise _NotQuick


def _forwarding(obj: Obj, now: datetime) -> ForwardingEvent:
    if not obj.keys() <= _FORWARDING_KEYS:
        raise _NotQuick
    created_at = _time(obj)
    forwarding = Donation(
        token=fields.token(obj["token"]),
        channel=Channel.FORWARDING,
        amount_in_cents=fields.amount(obj["amount_in_cents"]),
        created_at=created_at or now,
        project_id=fields.identifier(obj["project_id"]),
        client_id=fields.permalink(obj["client_id"]),
        client_reference=_text(obj, "client_reference", fields.client_reference),
        tracking_via=_text(obj, "tracking_via", fields.tracking_via),
    )
    return ForwardingEvent(forwarding, created_at_given=created_at is not None)


def _revocation(obj: Obj, now: datetime) -> RevocationEvent:
    if not obj.keys() <= _REVOCATION_KEYS:
        raise _NotQuick
    created_at = _time(obj)
    return RevocationEvent(fields.token(obj["token"]), created_at or now)
