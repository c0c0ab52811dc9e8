"""The OpenAPI paths and schemas of the drill-down read API (lists behind every figure)."""

from __future__ import annotations

from typing import Any

from clientstats.api.openapi_client_api import LINK_SCHEMA, error_doc, json_ref, path_parameters
from clientstats.domain.list_query import MAX_PER_PAGE

_INT = {"type": "integer", "format": "int64"}
_TIME = {"type": "string", "format": "date-time"}
_TIME_OR_NULL = {"type": ["string", "null"], "format": "date-time"}
_TEXT_OR_NULL = {"type": ["string", "null"]}
_LINKS = {"type": "array", "items": LINK_SCHEMA}


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": [*properties, "links"],
        "additionalProperties": False,
        "properties": {**properties, "links": _LINKS},
    }


PROJECT = _object(
    {
        "id": _INT,
        "title": {"type": "string"},
        "closed": {"type": "boolean"},
        "donations_prohibited": {"type": "boolean"},
        "requested_amount_in_cents": _INT,
        "open_amount_in_cents": _INT,
        "donated_amount_in_cents": _INT,
        "donations_count": _INT,
        "matched_amount_in_cents": _INT,
        "client_donated_amount_in_cents": _INT,
        "progress_percentage": {"type": "integer", "minimum": 0, "maximum": 100},
        "completed_need_count": _INT,
        "incomplete_need_count": _INT,
        "last_donation_at": _TIME_OR_NULL,
    }
)
NEED = _object(
    {
        "id": _INT,
        "title": {"type": "string"},
        "requested_amount_in_cents": _INT,
        "donated_amount_in_cents": _INT,
        "open_amount_in_cents": _INT,
        "completed": {"type": "boolean"},
        "progress_percentage": {"type": "integer", "minimum": 0, "maximum": 100},
    }
)
CLIENT_DONATION = _object(
    {
        "token": {"type": "string"},
        "amount_in_cents": _INT,
        "state": {"enum": ["confirmed", "revoked"]},
        "created_at": _TIME,
        "revoked_at": _TIME_OR_NULL,
        "client_reference": _TEXT_OR_NULL,
        "tracking_via": _TEXT_OR_NULL,
        "receiver_type": {"enum": ["Project", "Pool"]},
        "receiver_id": {"type": ["integer", "string"]},
        "receiver_title": _TEXT_OR_NULL,
        "redirected": {"type": "boolean"},
        "matched_amount_in_cents": _INT,
    }
)
FORWARDING = _object(
    {
        "token": {"type": "string"},
        "client_reference": _TEXT_OR_NULL,
        "project_id": _INT,
        "amount_in_cents": _INT,
        "state": {"enum": ["confirmed", "failed", "revoked"]},
        "failure_code": _TEXT_OR_NULL,
        "created_at": _TIME,
    }
)
MATCHING_FUND = _object(
    {
        "id": _INT,
        "title": {"type": "string"},
        "state": {"enum": ["activated", "closed"]},
        "provided_amount_in_cents": _INT,
        "maximum_matching_amount_in_cents": _INT,
        "matched_amount_in_cents": _INT,
        "remaining_amount_in_cents": _INT,
        "matched_donations_count": _INT,
        "project_ids": {"type": "array", "items": _INT},
    }
)
POOL = _object(
    {
        "donated_amount_in_cents": _INT,
        "forwarded_amount_in_cents": _INT,
        "balance_in_cents": _INT,
        "donations_count": _INT,
        "forwardings_count": _INT,
    }
)
CLIENT = _object(
    {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "has_pool": {"type": "boolean"},
        "statistics_private": {"type": "boolean"},
    }
)
_PROJECT_TOTALS = ("requested_amount_in_cents", "open_amount_in_cents", "donated_amount_in_cents")


def _envelope(item: str, totals: tuple[str, ...]) -> dict[str, Any]:
    counts = ("total_entries", "offset", "total_pages", "current_page", "per_page")
    properties = {
        **{key: _INT for key in (*counts, *totals)},
        "data": {"type": "array", "items": {"$ref": f"#/components/schemas/{item}"}},
    }
    return _object(properties)


LIST_SCHEMAS: dict[str, Any] = {
    "Client": CLIENT,
    "Project": PROJECT,
    "Need": NEED,
    "ClientDonation": CLIENT_DONATION,
    "Pool": POOL,
    "Forwarding": FORWARDING,
    "MatchingFund": MATCHING_FUND,
    "ProjectList": _envelope("Project", _PROJECT_TOTALS),
    "NeedList": _envelope("Need", _PROJECT_TOTALS),
    "ClientDonationList": _envelope("ClientDonation", ("total_amount_in_cents",)),
    "ForwardingList": _envelope("Forwarding", ("total_amount_in_cents",)),
    "MatchingFundList": _envelope("MatchingFund", ("matched_amount_in_cents",)),
}

_QUERY = [
    {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1}},
    {
        "name": "per_page",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE},
    },
    {"name": "facets", "in": "query", "schema": {"type": "string"}},
    {"name": "order", "in": "query", "schema": {"type": "string"}},
    {"name": "cursor", "in": "query", "schema": {"type": "string"}},
]


def _needs_parameters(*extra: str) -> list[dict[str, Any]]:
    locale = path_parameters()[0]
    ids = [p for p in path_parameters("project_id", *extra) if p["name"] != "client_id"][1:]
    return [locale, *ids]


def _get(
    summary: str, schema: str, parameters: list[dict[str, Any]], *, listed: bool, private: bool
) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": {
            "description": "Computed from one database snapshot; fresh within a second.",
            "headers": {
                "ETag": {"schema": {"type": "string"}},
                "Cache-Control": {"schema": {"type": "string"}},
            },
            "content": json_ref(schema),
        },
        "304": {"description": "Not modified (If-None-Match matched the ETag)."},
        "401": error_doc("Credentials required (client donations; private clients)."),
        "404": error_doc("Unknown locale, client or id, or another client's credentials."),
        "503": error_doc("The database is not available."),
    }
    if listed:
        responses["400"] = error_doc("A list parameter that cannot be used, named in errors.")
    operation: dict[str, Any] = {
        "summary": summary,
        "parameters": [*parameters, *(_QUERY if listed else [])],
        "responses": responses,
    }
    if private:
        operation["security"] = [{"client": []}]
    return operation


def _key_parameter() -> dict[str, Any]:
    return {
        "name": "key",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,128}$"},
    }


def list_paths() -> dict[str, Any]:
    """Every drill-down path, with and without the `.json` suffix."""
    client = "/{locale}/api_v4/clients/{client_id}"
    operations = {
        client: _get(
            "A client and its links", "Client", path_parameters(), listed=False, private=False
        ),
        f"{client}/projects": _get(
            "The client's projects", "ProjectList", path_parameters(), listed=True, private=False
        ),
        f"{client}/projects/{{project_id}}": _get(
            "One project of the client",
            "Project",
            path_parameters("project_id"),
            listed=False,
            private=False,
        ),
        "/{locale}/api_v4/projects/{project_id}/needs": _get(
            "A project's needs", "NeedList", _needs_parameters(), listed=True, private=False
        ),
        "/{locale}/api_v4/projects/{project_id}/needs/{need_id}": _get(
            "One need", "Need", _needs_parameters("need_id"), listed=False, private=False
        ),
        f"{client}/client_donations": _get(
            "The client's own donations",
            "ClientDonationList",
            path_parameters(),
            listed=True,
            private=True,
        ),
        f"{client}/client_donations/{{key}}": _get(
            "One of the client's donations by token or client_reference",
            "ClientDonation",
            [*path_parameters(), _key_parameter()],
            listed=False,
            private=True,
        ),
        f"{client}/pool": _get(
            "The client's pool", "Pool", path_parameters(), listed=False, private=False
        ),
        f"{client}/pool/forwardings": _get(
            "Forwardings out of the pool",
            "ForwardingList",
            path_parameters(),
            listed=True,
            private=False,
        ),
        f"{client}/matching_funds": _get(
            "The client's matching funds",
            "MatchingFundList",
            path_parameters(),
            listed=True,
            private=False,
        ),
        f"{client}/matching_funds/{{fund_id}}": _get(
            "One matching fund",
            "MatchingFund",
            path_parameters("fund_id"),
            listed=False,
            private=False,
        ),
    }
    paths: dict[str, Any] = {}
    for path, operation in operations.items():
        paths[f"{path}.json"] = {"get": operation}
        paths[path] = {"get": operation}
    return paths
