"""Field checks for ledger events, and a reader that collects every bad field of an object."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import TypeVar

from clientstats.domain.ledger import MATCHING_ACTIVATED, MATCHING_CLOSED, Channel

T = TypeVar("T")

MAX_ID = 2**63 - 1
MAX_AMOUNT = 100_000_000_000  # caps keep every sum far inside 64 bits
MAX_TEXT = 200
MAX_PROJECT_IDS = 10_000
PERMALINK = re.compile(r"[A-Za-z0-9_-]{1,64}")
REFERENCE = re.compile(r"[A-Za-z0-9_-]{1,128}")


class EventInvalid(Exception):
    """A ledger event that is not valid; `errors` maps each field to its messages."""

    def __init__(self, errors: Mapping[str, list[str]]) -> None:
        self.errors: dict[str, list[str]] = {key: list(msgs) for key, msgs in errors.items()}
        super().__init__("; ".join(f"{k}: {m}" for k, msgs in self.errors.items() for m in msgs))


# --- field checks: each returns the parsed value or raises FieldInvalid -------------------------


class FieldInvalid(Exception):
    def __init__(self, *messages: str) -> None:
        super().__init__(*messages)
        self.messages = list(messages)


Check = Callable[[object], T]


def string(value: object) -> str:
    if not isinstance(value, str):
        raise FieldInvalid("must be a string")
    return value


def pattern(regex: re.Pattern[str]) -> Check[str]:
    def check(value: object) -> str:
        text = string(value)
        if regex.fullmatch(text) is None:
            raise FieldInvalid(f"must match {regex.pattern}")
        return text

    return check


token = pattern(PERMALINK)
client_reference = pattern(REFERENCE)


def permalink(value: object) -> str:
    return token(value).lower()


def integer(low: int, high: int) -> Check[int]:
    def check(value: object) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise FieldInvalid("must be an integer")
        if not low <= value <= high:
            raise FieldInvalid(f"must be between {low} and {high}")
        return value

    return check


identifier = integer(1, MAX_ID)
amount = integer(1, MAX_AMOUNT)
provided = integer(0, MAX_AMOUNT)


def boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise FieldInvalid("must be true or false")
    return value


def plain_text(text: str) -> str:
    # Control characters and lone surrogates cannot be stored or served as UTF-8 JSON.
    if any(unicodedata.category(char) in ("Cc", "Cs") for char in text):
        raise FieldInvalid("must not contain control characters")
    return text


def title(value: object) -> str:
    text = string(value).strip()
    if not text:
        raise FieldInvalid("must not be blank")
    if len(text) > MAX_TEXT:
        raise FieldInvalid(f"must be at most {MAX_TEXT} characters")
    return plain_text(text)


def tracking_via(value: object) -> str:
    text = string(value)
    if not 1 <= len(text) <= MAX_TEXT:
        raise FieldInvalid(f"must be 1 to {MAX_TEXT} characters")
    return plain_text(text)


def created_at(value: object) -> datetime:
    try:
        parsed = datetime.fromisoformat(string(value))
    except ValueError:
        raise FieldInvalid("must be an ISO 8601 date-time with offset") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise FieldInvalid("must include a UTC offset")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise FieldInvalid("is out of range") from None


def one_of(choices: Iterable[str]) -> Check[str]:
    allowed = tuple(choices)

    def check(value: object) -> str:
        if value not in allowed:
            raise FieldInvalid(f"must be one of {', '.join(allowed)}")
        return value

    return check


matching_state = one_of((MATCHING_ACTIVATED, MATCHING_CLOSED))
IMPORTABLE_CHANNELS = (Channel.PLATFORM, Channel.CLIENT, Channel.EXTERNAL, Channel.OFFLINE)


def channel(value: object) -> Channel:
    if value == Channel.MATCHING.value:
        raise FieldInvalid("matching donations are booked by the system and cannot be imported")
    if value == Channel.FORWARDING.value:
        raise FieldInvalid("use a forwarding event")
    return Channel(one_of(c.value for c in IMPORTABLE_CHANNELS)(value))


def project_ids(value: object) -> frozenset[int]:
    if not isinstance(value, list):
        raise FieldInvalid("must be a list of project ids")
    if len(value) > MAX_PROJECT_IDS:
        raise FieldInvalid(f"must have at most {MAX_PROJECT_IDS} entries")
    for index, item in enumerate(value):
        try:
            identifier(item)
        except FieldInvalid as invalid:
            raise FieldInvalid(f"entry {index} {invalid.messages[0]}") from None
    return frozenset(value)


def receiver(value: object) -> tuple[int | None, str | None]:
    """(project_id, pool_client_id) of a {"type": "project"|"pool", ...} object."""
    if not isinstance(value, dict):
        raise FieldInvalid("must be an object")
    reader = Reader(value, what="receivers")
    kind = reader.required("type", one_of(("project", "pool")))
    project_id = reader.required("id", identifier) if kind == "project" else None
    pool_client_id = reader.required("client_id", permalink) if kind == "pool" else None
    if kind is None:  # type invalid: other keys cannot be judged
        reader.skip("id", "client_id")
    reader.add_unknown()
    if reader.errors:
        raise FieldInvalid(*(f"{k} {m}" for k, msgs in reader.errors.items() for m in msgs))
    return project_id, pool_client_id


# --- reading an object field by field, collecting every error ------------------------------


class Reader:
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
        except FieldInvalid as invalid:
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


def present(value: T | None) -> T:
    # Only called after Reader.finish(), which has raised if a required value was missing.
    assert value is not None
    return value
