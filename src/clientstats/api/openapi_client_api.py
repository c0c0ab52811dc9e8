"""The OpenAPI paths and schemas of the client write API."""

from __future__ import annotations

from typing import Any

from clientstats.api.request_schemas import FORWARDING_SCHEMA, PLEDGE_SCHEMA

_TIME = {"type": ["string", "null"], "format": "date-time"}
LINK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["rel", "href"],
    "additionalProperties": False,
    "properties": {"rel": {"type": "string"}, "href": {"type": "string"}},
}

ACCEPTED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["status", "status_code", "links"],
    "properties": {
        "status": {"const": "accepted"},
        "status_code": {"const": 202},
        "links": {"type": "array", "items": LINK_SCHEMA},
    },
}

REQUEST_STATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": [
        "id",
        "created_at",
        "updated_at",
        "confirmed_at",
        "failed_at",
        "state",
        "failure_code",
        "failure_reason",
        "links",
    ],
    "properties": {
        "id": {"type": "integer"},
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
        "confirmed_at": _TIME,
        "failed_at": _TIME,
        "state": {"enum": ["pending", "confirmed", "failed"]},
        "failure_code": {"type": ["string", "null"]},
        "failure_reason": {"type": ["string", "null"]},
        "links": {"type": "array"},
    },
}

SCHEMAS = {
    "DonationPledge": PLEDGE_SCHEMA,
    "ForwardingRequest": FORWARDING_SCHEMA,
    "Accepted": ACCEPTED_SCHEMA,
    "RequestState": REQUEST_STATE_SCHEMA,
}


def json_ref(name: str) -> dict[str, Any]:
    """JSON content of a named component schema."""
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}


def error_doc(description: str) -> dict[str, Any]:
    """A documented error response in the platform's error format."""
    return {"description": description, "content": json_ref("Error")}


def path_parameters(*extra: str, client_description: str | None = None) -> list[dict[str, Any]]:
    """The `locale` and `client_id` path parameters, then `extra` integer ids."""
    client_id: dict[str, Any] = {
        "name": "client_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
    }
    if client_description is not None:
        client_id["description"] = client_description
    params: list[dict[str, Any]] = [
        {
            "name": "locale",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "enum": ["de", "en"]},
        },
        client_id,
    ]
    for name in extra:
        params.append(
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": {"type": "integer", "minimum": 1},
            }
        )
    return params


_AUTH_ERRORS = {
    "401": error_doc("Missing or wrong client credentials."),
    "404": error_doc("Unknown or another client's resource, or unknown locale."),
    "503": error_doc("The database is not available."),
}


def _create(summary: str, schema: str, *params: str) -> dict[str, Any]:
    return {
        "summary": summary,
        "security": [{"client": []}],
        "parameters": path_parameters(*params),
        "requestBody": {"required": True, "content": json_ref(schema)},
        "responses": {
            "202": {
                "description": "Stored; booked asynchronously.",
                "content": json_ref("Accepted"),
            },
            "400": error_doc("The body is not UTF-8 JSON."),
            "409": error_doc(
                "The client_reference was sent before with another request (another body, "
                "or the other kind of request); nothing is stored. The link with rel "
                "location points at the stored request."
            ),
            "413": error_doc("The body is larger than 64 KiB."),
            "415": error_doc("The body is not application/json."),
            "422": error_doc("Invalid fields, worded in the locale's language."),
            **_AUTH_ERRORS,
        },
    }


def _state(summary: str) -> dict[str, Any]:
    return {
        "summary": summary,
        "security": [{"client": []}],
        "parameters": path_parameters("request_id"),
        "responses": {
            "200": {"description": "The request's state.", "content": json_ref("RequestState")},
            **_AUTH_ERRORS,
        },
    }


def client_api_paths() -> dict[str, Any]:
    """Every client API path, with and without the `.json` suffix."""
    base = "/{locale}/api_v4/clients/{client_id}"
    operations = {
        "/projects/{project_id}/donation_pledges": {
            "post": _create("Pledge a donation to a project", "DonationPledge", "project_id")
        },
        "/pool/donation_pledges": {
            "post": _create("Pledge a donation to the client's pool", "DonationPledge")
        },
        "/projects/{project_id}/forwarding_requests": {
            "post": _create(
                "Forward money from the pool to a project", "ForwardingRequest", "project_id"
            )
        },
        "/donation_pledges/{request_id}": {"get": _state("The state of a donation pledge")},
        "/forwarding_requests/{request_id}": {"get": _state("The state of a forwarding request")},
    }
    paths: dict[str, Any] = {}
    for path, operation in operations.items():
        paths[f"{base}{path}.json"] = operation
        paths[f"{base}{path}"] = operation
    return paths
