"""The JSON Schemas of the client API's request bodies, rendered from the domain's field rules."""

from __future__ import annotations

import string
from collections.abc import Callable
from typing import Any

from clientstats.domain.request_fields import (
    FORWARDING,
    HAS_CONTROL,
    PLEDGE,
    TEXT,
    VALIDATE_ADDRESS,
    Field,
    Kind,
    Need,
)
from clientstats.services.client_requests import is_country

_LETTERS = string.ascii_letters


def country_pattern(predicate: Callable[[str], bool]) -> str:
    """A pattern matching exactly the two-letter codes the predicate accepts, in any case."""
    alternatives = []
    for first in _LETTERS:
        seconds = "".join(second for second in _LETTERS if predicate(first + second))
        if seconds:
            alternatives.append(f"{first}[{seconds}]")
    return f"^(?:{'|'.join(alternatives)})$"


def _text(rule: Field, country: str) -> dict[str, Any]:
    pattern = country if rule.country else rule.shape or TEXT
    return {
        "minLength": 1,
        "maxLength": rule.max_length,
        "pattern": pattern,
        # Redundant in ECMA-262; a validator using Python's `re` needs it (see TEXT).
        "not": {"type": "string", "pattern": HAS_CONTROL},
    }


def field_schema(rule: Field, *, country: str) -> dict[str, Any]:
    """One field's schema; null is allowed where the field may be left out."""
    nullable = rule.need is not Need.ALWAYS
    schema: dict[str, Any] = {
        "type": [rule.kind.value, "null"] if nullable else rule.kind.value,
        "description": rule.description,
    }
    if rule.kind is Kind.INTEGER:
        schema.update(minimum=rule.minimum, maximum=rule.maximum)
    elif rule.kind is Kind.TEXT:
        schema.update(_text(rule, country))
    if rule.default is not None:
        schema["default"] = rule.default
    return schema


def body_schema(rules: tuple[Field, ...], predicate: Callable[[str], bool]) -> dict[str, Any]:
    """The schema of a whole request body: its fields, which are required, nothing else."""
    country = country_pattern(predicate)
    schema: dict[str, Any] = {
        "type": "object",
        "required": [rule.name for rule in rules if rule.need is Need.ALWAYS],
        "additionalProperties": False,
        "properties": {rule.name: field_schema(rule, country=country) for rule in rules},
    }
    schema["description"] = "A field that is null counts as left out."
    address = [rule.name for rule in rules if rule.need is Need.ADDRESS]
    if address:
        schema["description"] = (
            f"The address fields ({', '.join(address)}) are required unless {VALIDATE_ADDRESS} "
            "is false. A field that is null counts as left out, and is no address."
        )
        # Anything but false (left out, null, true) asks for the address.
        schema["if"] = {"properties": {VALIDATE_ADDRESS: {"not": {"const": False}}}}
        schema["then"] = {
            "required": address,
            "properties": {name: {"type": "string"} for name in address},
        }
    return schema


PLEDGE_SCHEMA = body_schema(PLEDGE, is_country)
FORWARDING_SCHEMA = body_schema(FORWARDING, is_country)
