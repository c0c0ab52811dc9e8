"""Parsing and validating operator ledger events (SPEC §6.1) into typed domain objects."""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NoReturn, TypeVar

from clientstats.domain.ledger import (
    MATCHING_ACTIVATED,
    MATCHING_CLOSED,
    BookingRejected,
    Channel,
    Client,
    Donation,
    MatchingFund,
    Need,
    Project,
)

T = TypeVar("T")

MAX_ID = 2**63 - 1
MAX_AMOUNT = 100_000_000_000  # caps keep every sum far inside 64 bits
MAX_TEXT = 200
MAX_PROJECT_IDS = 10_000
_PERMALINK = re.compile(r"[A-Za-z0-9_-]{1,64}")
_REFERENCE = re.compile(r"[A-Za-z0-9_-]{1,128}")


class EventInvalid(Exception):
    """A ledger event that is not valid; `errors` maps each field to its messages."""

    def __init__(self, errors: Mapping[str, list[str]]) -> None:
        self.errors: dict[str, list[str]] = {key: list(msgs) for key, msgs in errors.items()}
        super().__init__("; ".join(f"{k}: {m}" for k, msgs in self.errors.items() for m in msgs))


@dataclass(frozen=True, slots=True)
class ClientEvent:
    """Create or update a client; None means "not named in the event"."""

    id: str
    name: str | None
    pool: bool | None
    statistics_private: bool | None


@dataclass(frozen=True, slots=True)
class ProjectEvent:
    """Create or update a project."""

    id: int
    title: str | None
    closed: bool | None
    donations_prohibited: bool | None


@dataclass(frozen=True, slots=True)
class ClientProjectEvent:
    """Add a project to a client's projects (member) or remove it."""

    client_id: str
    project_id: int
    member: bool


@dataclass(frozen=True, slots=True)
class NeedEvent:
    """Create or update a need."""

    id: int
    project_id: int | None
    title: str | None
    requested_amount_in_cents: int | None


@dataclass(frozen=True, slots=True)
class MatchingFundEvent:
    """Create or update a matching fund."""

    id: int
    client_id: str | None
    title: str | None
    provided_amount_in_cents: int | None
    maximum_matching_amount_in_cents: int | None
    state: str | None
    project_ids: frozenset[int] | None


@dataclass(frozen=True, slots=True)
class DonationEvent:
    """Book a donation (not yet routed: ledger.route_donation checks the booking rules)."""

    donation: Donation
    created_at_given: bool


@dataclass(frozen=True, slots=True)
class ForwardingEvent:
    """Forward money from a client's pool to a project."""

    forwarding: Donation
    created_at_given: bool


@dataclass(frozen=True, slots=True)
class RevocationEvent:
    """Revoke a booked donation."""

    token: str
    created_at: datetime


Event = (
    ClientEvent
    | ProjectEvent
    | ClientProjectEvent
    | NeedEvent
    | MatchingFundEvent
    | DonationEvent
    | ForwardingEvent
    | RevocationEvent
)


# --- field checks: each returns the parsed value or raises _Invalid -------------------------


class _Invalid(Exception):
    def __init__(self, *messages: str) -> None:
        super().__init__(*messages)
        self.messages = list(messages)


Check = Callable[[object], T]


def _string(value: object) -> str:
    if not isinstance(value, str):
        raise _Invalid("must be a string")
    return value


def _pattern(regex: re.Pattern[str]) -> Check[str]:
    def check(value: object) -> str:
        text = _string(value)
        if regex.fullmatch(text) is None:
            raise _Invalid(f"must match {regex.pattern}")
        return text

    return check


_token = _pattern(_PERMALINK)
_client_reference = _pattern(_REFERENCE)


def _permalink(value: object) -> str:
    return _token(value).lower()


def _integer(low: int, high: int) -> Check[int]:
    def check(value: object) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise _Invalid("must be an integer")
        if not low <= value <= high:
            raise _Invalid(f"must be between {low} and {high}")
        return value

    return check


_id = _integer(1, MAX_ID)
_amount = _integer(1, MAX_AMOUNT)
_provided = _integer(0, MAX_AMOUNT)


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise _Invalid("must be true or false")
    return value


def _plain_text(text: str) -> str:
    # Control characters and lone surrogates cannot be stored or served as UTF-8 JSON.
    if any(unicodedata.category(char) in ("Cc", "Cs") for char in text):
        raise _Invalid("must not contain control characters")
    return text


def _title(value: object) -> str:
    text = _string(value).strip()
    if not text:
        raise _Invalid("must not be blank")
    if len(text) > MAX_TEXT:
        raise _Invalid(f"must be at most {MAX_TEXT} characters")
    return _plain_text(text)


def _tracking_via(value: object) -> str:
    text = _string(value)
    if not 1 <= len(text) <= MAX_TEXT:
        raise _Invalid(f"must be 1 to {MAX_TEXT} characters")
    return _plain_text(text)


def _created_at(value: object) -> datetime:
    try:
        parsed = datetime.fromisoformat(_string(value))
    except ValueError:
        raise _Invalid("must be an ISO 8601 date-time with offset") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise _Invalid("must include a UTC offset")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise _Invalid("is out of range") from None


def _one_of(choices: Iterable[str]) -> Check[str]:
    allowed = tuple(choices)

    def check(value: object) -> str:
        if value not in allowed:
            raise _Invalid(f"must be one of {', '.join(allowed)}")
        return value

    return check


_state = _one_of((MATCHING_ACTIVATED, MATCHING_CLOSED))
_IMPORTABLE = (Channel.PLATFORM, Channel.CLIENT, Channel.EXTERNAL, Channel.OFFLINE)


def _channel(value: object) -> Channel:
    if value == Channel.MATCHING.value:
        raise _Invalid("matching donations are booked by the system and cannot be imported")
    if value == Channel.FORWARDING.value:
        raise _Invalid("use a forwarding event")
    return Channel(_one_of(c.value for c in _IMPORTABLE)(value))


def _project_ids(value: object) -> frozenset[int]:
    if not isinstance(value, list):
        raise _Invalid("must be a list of project ids")
    if len(value) > MAX_PROJECT_IDS:
        raise _Invalid(f"must have at most {MAX_PROJECT_IDS} entries")
    for index, item in enumerate(value):
        try:
            _id(item)
        except _Invalid as invalid:
            raise _Invalid(f"entry {index} {invalid.messages[0]}") from None
    return frozenset(value)


def _receiver(value: object) -> tuple[int | None, str | None]:
    """(project_id, pool_client_id) of a {"type": "project"|"pool", ...} object."""
    if not isinstance(value, dict):
        raise _Invalid("must be an object")
    reader = _Reader(value, what="receivers")
    kind = reader.required("type", _one_of(("project", "pool")))
    project_id = reader.required("id", _id) if kind == "project" else None
    pool_client_id = reader.required("client_id", _permalink) if kind == "pool" else None
    if kind is None:  # type invalid: other keys cannot be judged
        reader.skip("id", "client_id")
    reader.add_unknown()
    if reader.errors:
        raise _Invalid(*(f"{k} {m}" for k, msgs in reader.errors.items() for m in msgs))
    return project_id, pool_client_id


# --- reading an object field by field, collecting every error ------------------------------


class _Reader:
    def __init__(self, obj: dict[object, object], *, what: str) -> None:
        self.obj = obj
        self.what = what
        self.seen: set[object] = set()
        self.errors: dict[str, list[str]] = {}

    def _add(self, key: str, *messages: str) -> None:
        self.errors.setdefault(key, []).extend(messages)

    def skip(self, *keys: str) -> None:
        self.seen.update(keys)

    def optional(self, key: str, check: Check[T], *, nullable: bool = False) -> T | None:
        """The checked value, or None if absent (or null where null means absent)."""
        self.seen.add(key)
        if key not in self.obj:
            return None
        value = self.obj[key]
        if value is None:
            if not nullable:
                self._add(key, "must not be null")
            return None
        try:
            return check(value)
        except _Invalid as invalid:
            self._add(key, *invalid.messages)
            return None

    def required(self, key: str, check: Check[T]) -> T | None:
        """Like optional, but absence is an error too; finish() raises before None is used."""
        if key not in self.obj:
            self.seen.add(key)
            self._add(key, "is required")
            return None
        return self.optional(key, check)

    def add_unknown(self) -> None:
        """Record an error for every field that was not read."""
        for key in self.obj:
            if key not in self.seen:
                self._add(str(key), f"is not a known field of {self.what}")

    def finish(self) -> None:
        """Raise EventInvalid with every error, unknown fields included."""
        self.add_unknown()
        if self.errors:
            raise EventInvalid(self.errors)


def _present(value: T | None) -> T:
    # Only called after _Reader.finish(), which has raised if a required value was missing.
    assert value is not None
    return value


# --- one builder per event kind ------------------------------------------------------------


def _client(r: _Reader, now: datetime) -> ClientEvent:
    permalink = r.required("id", _permalink)
    name = r.optional("name", _title)
    pool = r.optional("pool", _boolean)
    private = r.optional("statistics_private", _boolean)
    r.finish()
    return ClientEvent(_present(permalink), name, pool, private)


def _project(r: _Reader, now: datetime) -> ProjectEvent:
    project_id = r.required("id", _id)
    title = r.optional("title", _title)
    closed = r.optional("closed", _boolean)
    prohibited = r.optional("donations_prohibited", _boolean)
    r.finish()
    return ProjectEvent(_present(project_id), title, closed, prohibited)


def _client_project(r: _Reader, now: datetime) -> ClientProjectEvent:
    client_id = r.required("client_id", _permalink)
    project_id = r.required("project_id", _id)
    member = r.required("member", _boolean)
    r.finish()
    return ClientProjectEvent(_present(client_id), _present(project_id), _present(member))


def _need(r: _Reader, now: datetime) -> NeedEvent:
    need_id = r.required("id", _id)
    project_id = r.optional("project_id", _id)
    title = r.optional("title", _title)
    requested = r.optional("requested_amount_in_cents", _amount)
    r.finish()
    return NeedEvent(_present(need_id), project_id, title, requested)


def _matching_fund(r: _Reader, now: datetime) -> MatchingFundEvent:
    fund_id = r.required("id", _id)
    client_id = r.optional("client_id", _permalink)
    title = r.optional("title", _title)
    provided = r.optional("provided_amount_in_cents", _provided)
    maximum = r.optional("maximum_matching_amount_in_cents", _amount)
    state = r.optional("state", _state)
    project_ids = r.optional("project_ids", _project_ids)
    r.finish()
    return MatchingFundEvent(
        _present(fund_id), client_id, title, provided, maximum, state, project_ids
    )


_MoneyFields = tuple[str | None, int | None, datetime | None, str | None, str | None]


def _money_fields(r: _Reader) -> _MoneyFields:
    """Token, amount, created_at, client_reference, tracking_via of donations and forwardings."""
    return (
        r.required("token", _token),
        r.required("amount_in_cents", _amount),
        r.optional("created_at", _created_at, nullable=True),
        r.optional("client_reference", _client_reference, nullable=True),
        r.optional("tracking_via", _tracking_via, nullable=True),
    )


def _donation(r: _Reader, now: datetime) -> DonationEvent:
    token, amount, created_at, reference, tracking = _money_fields(r)
    channel = r.required("channel", _channel)
    client_id = r.optional("client_id", _permalink, nullable=True)
    receiver = r.required("receiver", _receiver)
    r.finish()
    project_id, pool_client_id = _present(receiver)
    donation = Donation(
        token=_present(token),
        channel=_present(channel),
        amount_in_cents=_present(amount),
        created_at=created_at or now,
        project_id=project_id,
        pool_client_id=pool_client_id,
        client_id=client_id,
        client_reference=reference,
        tracking_via=tracking,
    )
    return DonationEvent(donation, created_at_given=created_at is not None)


def _forwarding(r: _Reader, now: datetime) -> ForwardingEvent:
    token, amount, created_at, reference, tracking = _money_fields(r)
    client_id = r.required("client_id", _permalink)
    project_id = r.required("project_id", _id)
    r.finish()
    forwarding = Donation(
        token=_present(token),
        channel=Channel.FORWARDING,
        amount_in_cents=_present(amount),
        created_at=created_at or now,
        project_id=_present(project_id),
        client_id=_present(client_id),
        client_reference=reference,
        tracking_via=tracking,
    )
    return ForwardingEvent(forwarding, created_at_given=created_at is not None)


def _revocation(r: _Reader, now: datetime) -> RevocationEvent:
    token = r.required("token", _token)
    created_at = r.optional("created_at", _created_at, nullable=True)
    r.finish()
    return RevocationEvent(_present(token), created_at or now)


_BUILDERS: dict[str, Callable[[_Reader, datetime], Event]] = {
    "client": _client,
    "project": _project,
    "client_project": _client_project,
    "need": _need,
    "matching_fund": _matching_fund,
    "donation": _donation,
    "forwarding": _forwarding,
    "revocation": _revocation,
}


def parse_event(obj: object, *, now: datetime) -> Event:
    """Validate one decoded event object; raises EventInvalid listing every bad field."""
    if not isinstance(obj, dict):
        raise EventInvalid({"event": ["must be a JSON object"]})
    if "event" not in obj:
        raise EventInvalid({"event": ["is required"]})
    kind = obj["event"]
    if not isinstance(kind, str) or kind not in _BUILDERS:
        raise EventInvalid({"event": [f"must be one of {', '.join(_BUILDERS)}"]})
    reader = _Reader(obj, what=f"{kind} events")
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


def parse_line(line: bytes | str, *, now: datetime) -> Event:
    """Decode one JSON Lines line and validate it as an event; raises EventInvalid."""
    try:
        obj = json.loads(line, parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
    except RecursionError:
        raise EventInvalid({"line": ["is not valid JSON: nested too deeply"]}) from None
    except ValueError as error:  # includes JSONDecodeError and UnicodeDecodeError
        raise EventInvalid({"line": [f"is not valid JSON: {error}"]}) from None
    if not isinstance(obj, dict):
        raise EventInvalid({"line": ["must be a JSON object"]})
    return parse_event(obj, now=now)


# --- upserts (SPEC §6.1: a later event changes the named fields and leaves the others) ------


def _required_on_create(value: T | None, field: str, what: str) -> T:
    if value is None:
        raise BookingRejected(field, f"is required when the {what} is created")
    return value


def _keep(new: T | None, old: T) -> T:
    return old if new is None else new


def merge_client(existing: Client | None, event: ClientEvent) -> Client:
    """The client after applying `event`; creating one requires a name."""
    if existing is None:
        existing = Client(
            permalink=event.id, name=_required_on_create(event.name, "name", "client")
        )
    return Client(
        permalink=existing.permalink,
        name=_keep(event.name, existing.name),
        has_pool=_keep(event.pool, existing.has_pool),
        statistics_private=_keep(event.statistics_private, existing.statistics_private),
    )


def merge_project(existing: Project | None, event: ProjectEvent) -> Project:
    """The project after applying `event`; creating one requires a title."""
    if existing is None:
        existing = Project(id=event.id, title=_required_on_create(event.title, "title", "project"))
    return Project(
        id=existing.id,
        title=_keep(event.title, existing.title),
        closed=_keep(event.closed, existing.closed),
        donations_prohibited=_keep(event.donations_prohibited, existing.donations_prohibited),
    )


def merge_need(existing: Need | None, event: NeedEvent) -> Need:
    """The need after applying `event`; creating one requires project, title and amount."""
    if existing is None:
        what = "need"
        return Need(
            id=event.id,
            project_id=_required_on_create(event.project_id, "project_id", what),
            title=_required_on_create(event.title, "title", what),
            requested_amount_in_cents=_required_on_create(
                event.requested_amount_in_cents, "requested_amount_in_cents", what
            ),
        )
    return Need(
        id=existing.id,
        project_id=_keep(event.project_id, existing.project_id),
        title=_keep(event.title, existing.title),
        requested_amount_in_cents=_keep(
            event.requested_amount_in_cents, existing.requested_amount_in_cents
        ),
    )


def merge_matching_fund(existing: MatchingFund | None, event: MatchingFundEvent) -> MatchingFund:
    """The fund after applying `event`; creating one requires client and both amounts."""
    if existing is None:
        what = "matching fund"
        existing = MatchingFund(
            id=event.id,
            client_id=_required_on_create(event.client_id, "client_id", what),
            title=f"Matching fund {event.id}",
            provided_amount_in_cents=_required_on_create(
                event.provided_amount_in_cents, "provided_amount_in_cents", what
            ),
            maximum_matching_amount_in_cents=_required_on_create(
                event.maximum_matching_amount_in_cents, "maximum_matching_amount_in_cents", what
            ),
        )
    return MatchingFund(
        id=existing.id,
        client_id=_keep(event.client_id, existing.client_id),
        title=_keep(event.title, existing.title),
        provided_amount_in_cents=_keep(
            event.provided_amount_in_cents, existing.provided_amount_in_cents
        ),
        maximum_matching_amount_in_cents=_keep(
            event.maximum_matching_amount_in_cents, existing.maximum_matching_amount_in_cents
        ),
        state=_keep(event.state, existing.state),
        project_ids=_keep(event.project_ids, existing.project_ids),
    )
