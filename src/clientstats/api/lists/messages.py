"""Why a list parameter is refused, in the request's language (`de` or `en`)."""

from __future__ import annotations

from clientstats.domain.list_query import ListQueryInvalid, Problem

_MESSAGES: dict[str, dict[Problem, str]] = {
    "en": {
        Problem.NOT_A_PAGE: "must be an integer of at least 1",
        Problem.NOT_A_PER_PAGE: "must be an integer from 1 to {max}",
        Problem.TOO_DEEP: "reaches past offset {max}; follow the next link (cursor) instead",
        Problem.MALFORMED: "is malformed at '{part}' (use key:value|key:value or key:ASC|key:DESC)",
        Problem.UNKNOWN_FACET: "has an unknown key '{key}'",
        Problem.UNKNOWN_ORDER: "has an unknown key '{key}'",
        Problem.BAD_VALUE: "has an invalid value '{value}' for '{key}'",
        Problem.REPEATED: "names '{key}' more than once",
        Problem.BAD_CURSOR: "is not a cursor of this list (take it from a next link)",
        Problem.TOO_LONG: "is longer than {max} characters",
    },
    "de": {
        Problem.NOT_A_PAGE: "muss eine ganze Zahl ab 1 sein",
        Problem.NOT_A_PER_PAGE: "muss eine ganze Zahl von 1 bis {max} sein",
        Problem.TOO_DEEP: "reicht über Offset {max} hinaus; bitte dem next-Link (cursor) folgen",
        Problem.MALFORMED: "ist bei '{part}' fehlerhaft (key:value|key:value, key:ASC|key:DESC)",
        Problem.UNKNOWN_FACET: "enthält den unbekannten Schlüssel '{key}'",
        Problem.UNKNOWN_ORDER: "enthält den unbekannten Schlüssel '{key}'",
        Problem.BAD_VALUE: "hat den ungültigen Wert '{value}' für '{key}'",
        Problem.REPEATED: "nennt '{key}' mehr als einmal",
        Problem.BAD_CURSOR: "ist kein Cursor dieser Liste (bitte aus einem next-Link nehmen)",
        Problem.TOO_LONG: "ist länger als {max} Zeichen",
    },
}
_SUMMARY = {
    "en": "The parameter {parameter} cannot be used",
    "de": "Der Parameter {parameter} kann nicht verwendet werden",
}


def explain(invalid: ListQueryInvalid, locale: str) -> tuple[str, dict[str, list[str]]]:
    """The error message and the per-parameter errors for a refused list parameter."""
    table = _MESSAGES.get(locale, _MESSAGES["en"])
    detail = table[invalid.problem].format(**invalid.params)
    summary = _SUMMARY.get(locale, _SUMMARY["en"]).format(parameter=invalid.parameter)
    return f"{summary}: {invalid.parameter} {detail}", {invalid.parameter: [detail]}
