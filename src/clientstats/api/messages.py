"""Validation messages and failure reasons in the request's language (`de` or `en`)."""

from __future__ import annotations

from clientstats.domain.ledger import FAILURE_REASONS, FailureCode
from clientstats.domain.requests import REFERENCE_TAKEN, Errors

_MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "required": "is required",
        "not_an_integer": "must be an integer",
        "not_a_string": "must be a string",
        "not_a_boolean": "must be true or false",
        "blank": "must not be blank",
        "too_long": "is too long (at most {max} characters)",
        "out_of_range": "must be between {min} and {max}",
        "control_characters": "must not contain control characters",
        "invalid_email": "is not a valid email address",
        "invalid_country": "is not an ISO 3166-1 alpha-2 country code",
        "invalid_reference": "must be 1 to 128 characters of A-Z, a-z, 0-9, _ and -",
        "unknown_field": "is not a known field",
        "not_an_object": "must be a JSON object",
    },
    "de": {
        "required": "muss ausgefüllt werden",
        "not_an_integer": "muss eine ganze Zahl sein",
        "not_a_string": "muss ein Text sein",
        "not_a_boolean": "muss true oder false sein",
        "blank": "darf nicht leer sein",
        "too_long": "ist zu lang (höchstens {max} Zeichen)",
        "out_of_range": "muss zwischen {min} und {max} liegen",
        "control_characters": "darf keine Steuerzeichen enthalten",
        "invalid_email": "ist keine gültige E-Mail-Adresse",
        "invalid_country": "ist kein Ländercode nach ISO 3166-1 alpha-2",
        "invalid_reference": "muss aus 1 bis 128 Zeichen A-Z, a-z, 0-9, _ und - bestehen",
        "unknown_field": "ist kein bekanntes Feld",
        "not_an_object": "muss ein JSON-Objekt sein",
    },
}

_FAILURES_DE: dict[str, str] = {
    FailureCode.POOL_MISSING.value: "Der Kunde hat keinen Pool.",
    FailureCode.POOL_EMPTY.value: "Das Guthaben des Pools ist kleiner als der Betrag.",
    FailureCode.RECEIVER_PROHIBITED.value: "Das Projekt nimmt keine Spenden an.",
    REFERENCE_TAKEN: "Die client_reference ist schon für eine andere Buchung vergeben.",
}
_FAILURES_EN: dict[str, str] = {
    **{code.value: reason for code, reason in FAILURE_REASONS.items()},
    REFERENCE_TAKEN: "The client_reference is already used by another booking.",
}

_CONFLICTS = {
    "en": "The client_reference {reference} is already used by a different request",
    "de": "Die client_reference {reference} wird schon von einem anderen Auftrag verwendet",
}


def conflict_message(reference: str, locale: str) -> str:
    """Why a request under a reference already taken by another one is refused."""
    return _CONFLICTS.get(locale, _CONFLICTS["en"]).format(reference=reference)


SUMMARY = {
    "en": "The submitted data cannot be processed",
    "de": "Die übermittelten Daten können nicht verarbeitet werden",
}


def word_errors(errors: Errors, locale: str) -> dict[str, list[str]]:
    """Field problems as messages in the locale's language."""
    table = _MESSAGES.get(locale, _MESSAGES["en"])
    return {
        field: [table[p.code].format(**p.params) for p in problems]
        for field, problems in sorted(errors.items())
    }


def failure_reason(code: str | None, locale: str) -> str | None:
    """Why a request failed, in the locale's language."""
    if code is None:
        return None
    table = _FAILURES_DE if locale == "de" else _FAILURES_EN
    return table.get(code, code)
