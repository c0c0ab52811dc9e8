"""The common money events checked without the generic field reader, for bulk imports.

Donations, forwardings and revocations are nearly every line of a ledger file. When such an
object has only known fields, each of the expected type and valid, this builds the same
event the field reader would, in a fraction of its time. Anything else (a missing, unknown
or invalid field) gives None, and the caller runs the field reader, which names every
problem. The checks are the field reader's, narrowed to exact types; whatever they do not
accept goes to the reader, so both paths accept exactly the same and build the same events.
"""

from __future__ import annotations

from datetime import UTC, datetime

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


# The field reader's checks, narrowed to exact types (what a JSON decoder makes) so each is
# one test; a value they refuse goes to the reader, which decides and words the error.
_TOKEN = fields.PERMALINK.fullmatch
_REFERENCE = fields.REFERENCE.fullmatch


def quick_event(kind: str, obj: Obj, now: datetime) -> QuickEvent | None:
    """The event of a valid donation, forwarding or revocation object; None: use the reader."""
    try:
        if kind == "donation":
            return _donation(obj, now)
        if kind == "forwarding":
            return _forwarding(obj, now)
        if kind == "revocation":
            return _revocation(obj, now)
    except (FieldInvalid, KeyError, ValueError, OverflowError, _NotQuick):
        return None
    return None


def _token(value: object) -> str:
    if type(value) is not str or _TOKEN(value) is None:
        raise _NotQuick
    return value


def _permalink(value: object) -> str:
    return _token(value).lower()


def _positive(value: object, high: int) -> int:
    if type(value) is not int or not 1 <= value <= high:
        raise _NotQuick
    return value


def _client_id(obj: Obj) -> str | None:
    value = obj.get("client_id")
    return None if value is None else _permalink(value)


def _reference(obj: Obj) -> str | None:
    value = obj.get("client_reference")
    if value is None:
        return None
    if type(value) is not str or _REFERENCE(value) is None:
        raise _NotQuick
    return value


def _tracking_via(obj: Obj) -> str | None:
    value = obj.get("tracking_via")
    return None if value is None else fields.tracking_via(value)


def _time(obj: Obj) -> datetime | None:
    value = obj.get("created_at")
    if value is None:
        return None
    if type(value) is not str:
        raise _NotQuick
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is UTC:
        return parsed
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise _NotQuick
    return parsed.astimezone(UTC)


def _donation(obj: Obj, now: datetime) -> DonationEvent:
    if not obj.keys() <= _DONATION_KEYS:
        raise _NotQuick
    name = obj["channel"]
    channel = _CHANNELS.get(name) if type(name) is str else None
    if channel is None:
        raise _NotQuick
    project_id, pool_client_id = _receiver(obj["receiver"])
    created_at = _time(obj)
    donation = Donation(
        _token(obj["token"]),
        channel,
        _positive(obj["amount_in_cents"], fields.MAX_AMOUNT),
        created_at or now,
        project_id,
        pool_client_id,
        _client_id(obj),
        _reference(obj),
        _tracking_via(obj),
    )
    return DonationEvent(donation, created_at_given=created_at is not None)


def _receiver(value: object) -> tuple[int | None, str | None]:
    if type(value) is not dict:
        raise _NotQuick
    kind = value.get("type")
    if kind == "project" and value.keys() == _PROJECT_RECEIVER_KEYS:
        return _positive(value["id"], fields.MAX_ID), None
    if kind == "pool" and value.keys() == _POOL_RECEIVER_KEYS:
        return None, _permalink(value["client_id"])
    raise _NotQuick


def _forwarding(obj: Obj, now: datetime) -> ForwardingEvent:
    if not obj.keys() <= _FORWARDING_KEYS:
        raise _NotQuick
    created_at = _time(obj)
    forwarding = Donation(
        token=_token(obj["token"]),
        channel=Channel.FORWARDING,
        amount_in_cents=_positive(obj["amount_in_cents"], fields.MAX_AMOUNT),
        created_at=created_at or now,
        project_id=_positive(obj["project_id"], fields.MAX_ID),
        client_id=_permalink(obj["client_id"]),
        client_reference=_reference(obj),
        tracking_via=_tracking_via(obj),
    )
    return ForwardingEvent(forwarding, created_at_given=created_at is not None)


def _revocation(obj: Obj, now: datetime) -> RevocationEvent:
    if not obj.keys() <= _REVOCATION_KEYS:
        raise _NotQuick
    created_at = _time(obj)
    return RevocationEvent(_token(obj["token"]), created_at or now)
