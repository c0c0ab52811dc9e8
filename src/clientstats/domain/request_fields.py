"""The fields of pledges and forwarding requests: one definition, checked here and published.

The API renders these same definitions into /openapi.json, so the published contract and the
checks cannot drift apart. Every regex below is written in the common ground of Python's `re`
and ECMA-262 (the dialect of JSON Schema patterns): explicit character classes and `\\u`
escapes only, no `\\s`, `\\d` or `\\w` (Unicode-aware in Python, ASCII in ECMA-262).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any, TypeGuard

from clientstats.domain.fields import MAX_ID

MAX_PLEDGE_CENTS = 1_000_000
MAX_FORWARDING_CENTS = 100_000_000_000
DEFAULT_TEXT_LIMIT = 200

# Unicode category Cc: such characters cannot be shown or printed as they were meant.
CONTROL = "\\u0000-\\u001f\\u007f-\\u009f"
# Every other character Python's str.isspace() calls white space: a text of only these is blank.
BLANK = " \\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
HAS_CONTROL = f"[{CONTROL}]"
HAS_CONTENT = f"[^{CONTROL}{BLANK}]"
# What a valid text matches: no control character, at least one that is not blank. Python's
# `$` also matches before a final "\n"; the ban on control characters keeps that out.
TEXT = f"^[^{CONTROL}]*{HAS_CONTENT}[^{CONTROL}]*$"
REFERENCE = "^[A-Za-z0-9_-]{1,128}$"
_EMAIL_PART = f"[^@{CONTROL}{BLANK}]"
EMAIL = f"^{_EMAIL_PART}{{1,64}}@{_EMAIL_PART}+\\.{_EMAIL_PART}{{2,}}$"
COUNTRY_SHAPE = "^[A-Za-z]{2}$"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with one field, as a code the API words in the request's language."""

    code: str
    params: Mapping[str, object] = field(default_factory=dict)


Errors = dict[str, list[Problem]]


class Kind(StrEnum):
    """The JSON type a field takes."""

    INTEGER = "integer"
    TEXT = "string"
    BOOLEAN = "boolean"


class Need(StrEnum):
    """When a field must be given (null counts as not given)."""

    ALWAYS = "always"
    ADDRESS = "address"  # unless validate_address is false
    OPTIONAL = "optional"


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a request body and every rule it must meet."""

    name: str
    kind: Kind
    description: str
    need: Need = Need.OPTIONAL
    minimum: int = 1
    maximum: int = MAX_ID
    max_length: int = DEFAULT_TEXT_LIMIT
    shape: str | None = None  # a regex (see above) the text must match as well
    mismatch: str = ""  # the problem code when it does not
    country: bool = False  # an ISO 3166-1 alpha-2 code, as the caller's predicate decides
    sole_problem: str | None = None  # report any problem of this field as this one code
    default: bool | None = None  # what leaving the field out means, where it matters


def _address(name: str, description: str, **rules: Any) -> Field:
    return Field(name, Kind.TEXT, description, Need.ADDRESS, **rules)


AMOUNT = "amount_in_cents"
REFERENCE_FIELD = Field(
    "client_reference",
    Kind.TEXT,
    "Your unique key of this request: 1 to 128 characters of A-Z, a-z, 0-9, _ and -.",
    Need.ALWAYS,
    max_length=128,
    shape=REFERENCE,
    sole_problem="invalid_reference",
)
TRACKING_FIELD = Field("tracking_via", Kind.TEXT, "Where the money came from, for your reports.")
VALIDATE_ADDRESS = "validate_address"
ADDRESS_FIELDS = ("first_name", "last_name", "email", "street", "city", "zip", "country_code")

PLEDGE: tuple[Field, ...] = (
    Field(AMOUNT, Kind.INTEGER, "Whole cents.", Need.ALWAYS, maximum=MAX_PLEDGE_CENTS),
    REFERENCE_FIELD,
    Field(
        VALIDATE_ADDRESS,
        Kind.BOOLEAN,
        "false: the address fields may be left out.",
        default=True,
    ),
    _address("first_name", "The donor's first name."),
    _address("last_name", "The donor's last name."),
    _address(
        "email", "The donor's email address.", max_length=254, shape=EMAIL, mismatch="invalid_email"
    ),
    _address("street", "Street and house number."),
    _address("city", "City."),
    _address("zip", "Postal code.", max_length=16),
    _address(
        "country_code",
        "ISO 3166-1 alpha-2 country code, in any letter case.",
        max_length=2,
        shape=COUNTRY_SHAPE,
        mismatch="invalid_country",
        country=True,
    ),
    TRACKING_FIELD,
    Field("earmark", Kind.INTEGER, "A need id of the project; may be ignored."),
    Field("message", Kind.TEXT, "A message from the donor.", max_length=2000),
)
FORWARDING: tuple[Field, ...] = (
    Field(AMOUNT, Kind.INTEGER, "Whole cents.", Need.ALWAYS, maximum=MAX_FORWARDING_CENTS),
    REFERENCE_FIELD,
    TRACKING_FIELD,
)

_HAS_CONTROL = re.compile(HAS_CONTROL)
_HAS_CONTENT = re.compile(HAS_CONTENT)


def is_integral(value: object) -> TypeGuard[int | Decimal]:
    """An int, or an exact JSON number with no fraction (5.0 and 5e0 are the integer 5)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, Decimal):
        return value.is_finite() and value == value.to_integral_value()
    return isinstance(value, int)


def _integer(value: object, low: int, high: int) -> Problem | None:
    if not is_integral(value):
        return Problem("not_an_integer")
    if not low <= value <= high:
        return Problem("out_of_range", {"min": low, "max": high})
    return None


def _text(rule: Field, value: object, is_country: Callable[[str], bool]) -> Problem | None:
    if not isinstance(value, str):
        return Problem("not_a_string")
    if _HAS_CONTROL.search(value):
        return Problem("control_characters")
    if not _HAS_CONTENT.search(value):
        return Problem("blank")
    if len(value) > rule.max_length:
        return Problem("too_long", {"max": rule.max_length})
    if rule.shape is not None and not re.search(rule.shape, value):
        return Problem(rule.mismatch)
    if rule.country and not is_country(value):
        return Problem(rule.mismatch)
    return None


def _value_problem(rule: Field, value: object, is_country: Callable[[str], bool]) -> Problem | None:
    if rule.kind is Kind.INTEGER:
        problem = _integer(value, rule.minimum, rule.maximum)
    elif rule.kind is Kind.BOOLEAN:
        problem = None if isinstance(value, bool) else Problem("not_a_boolean")
    else:
        problem = _text(rule, value, is_country)
    if problem is not None and rule.sole_problem is not None:
        return Problem(rule.sole_problem)
    return problem


def check_body(
    rules: tuple[Field, ...], body: Mapping[str, object], is_country: Callable[[str], bool]
) -> Errors:
    """Every problem of a request body; empty when it is valid. Null counts as not given."""
    errors: Errors = {}
    known = {rule.name for rule in rules}
    for name in body:
        if name not in known:
            errors[name] = [Problem("unknown_field")]
    address_needed = body.get(VALIDATE_ADDRESS) is not False
    for rule in rules:
        value = body.get(rule.name)
        if value is None:
            if rule.need is Need.ALWAYS or (rule.need is Need.ADDRESS and address_needed):
                errors[rule.name] = [Problem("required")]
            continue
        problem = _value_problem(rule, value, is_country)
        if problem is not None:
            errors[rule.name] = [problem]
    return errors
