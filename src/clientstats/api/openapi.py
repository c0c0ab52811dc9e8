"""The OpenAPI 3.1 document of every endpoint, served at /openapi.json."""

from __future__ import annotations

from typing import Any

from clientstats.api.openapi_client_api import (
    LINK_SCHEMA,
    SCHEMAS,
    client_api_paths,
    error_doc,
    path_parameters,
)
from clientstats.api.openapi_lists import LIST_SCHEMAS, list_paths
from clientstats.domain.stats import RESPONSE_KEYS

_INT64 = {"type": "integer", "format": "int64"}

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name", "status", "status_code", "reason", "message", "links"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string"},
        "status": {"type": "string"},
        "status_code": {"type": "integer"},
        "reason": {"type": "string"},
        "message": {"type": "string"},
        "errors": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
        "backtrace": {"type": "array", "items": {"type": "string"}},
        "links": {"type": "array", "items": LINK_SCHEMA},
    },
}

STATISTICS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": [*RESPONSE_KEYS, "links"],
    "additionalProperties": False,
    "properties": {
        **{key: _INT64 for key in RESPONSE_KEYS},
        "links": {"type": "array", "maxItems": 0},
    },
}


_COUNTS = ("lines", "applied", "unchanged", "deferred", "failed", "rejected", "blank")

IMPORT_SUMMARY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["status", "status_code", *_COUNTS, "links"],
    "properties": {
        "status": {"const": "ok"},
        "status_code": {"const": 200},
        **{key: {"type": "integer", "minimum": 0} for key in _COUNTS},
        "links": {"type": "array"},
    },
}


def _statistics_operation(summary: str) -> dict[str, Any]:
    return {
        "summary": summary,
        "parameters": path_parameters(
            client_description="The client permalink, matched case-insensitively."
        ),
        "responses": {
            "200": {
                "description": "The statistics; fresh within a second of a booking.",
                "headers": {
                    "ETag": {"schema": {"type": "string"}},
                    "Cache-Control": {"schema": {"type": "string"}},
                },
                "content": {
                    "application/json": {
                        "schema": {"$ref": "#/components/schemas/ClientProjectStatistics"}
                    }
                },
            },
            "304": {"description": "Not modified (If-None-Match matched the ETag)."},
            "401": error_doc("The client requires its credentials for its statistics."),
            "404": error_doc("Unknown client."),
            "503": error_doc("The database is not available."),
        },
    }


def _admin_events() -> dict[str, Any]:
    return {
        "summary": "Apply ledger events (JSON Lines), idempotent per natural key.",
        "security": [{"admin": []}],
        "requestBody": {
            "required": True,
            "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
        },
        "responses": {
            "200": {
                "description": "Every line applied or unchanged.",
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/ImportSummary"}}
                },
            },
            "401": error_doc("Missing or wrong admin token."),
            "415": error_doc("The body is not application/x-ndjson."),
            "422": error_doc(
                "Some lines were rejected (named by line number); all others applied."
            ),
        },
    }


def _metrics() -> dict[str, Any]:
    return {
        "summary": "Prometheus metrics of the whole server (text exposition format).",
        "security": [{"admin": []}],
        "responses": {
            "200": {
                "description": "Every metric; with --workers N summed over the processes.",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            },
            "401": error_doc("Missing or wrong admin token."),
            "404": error_doc("Metrics are off (CLIENTSTATS_METRICS=false)."),
        },
    }


def _probe(summary: str) -> dict[str, Any]:
    return {
        "summary": summary,
        "responses": {
            "200": {
                "description": "OK",
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            "503": error_doc("Not ready."),
        },
    }


def openapi_document() -> dict[str, Any]:
    """The whole document."""
    stats = "/{locale}/api_v4/clients/{client_id}/project_statistics"
    return {
        "openapi": "3.1.0",
        "info": {"title": "clientstats", "version": "1"},
        "paths": {
            f"{stats}.json": {"get": _statistics_operation("Client project statistics")},
            stats: {"get": _statistics_operation("Client project statistics (no suffix)")},
            "/admin/events": {"post": _admin_events()},
            "/metrics": {"get": _metrics()},
            "/health/live": {"get": _probe("Liveness")},
            "/health/ready": {"get": _probe("Readiness: the database answers")},
            **client_api_paths(),
            **list_paths(),
        },
        "components": {
            "schemas": {
                "ClientProjectStatistics": STATISTICS_SCHEMA,
                "ImportSummary": IMPORT_SUMMARY_SCHEMA,
                "Error": ERROR_SCHEMA,
                **SCHEMAS,
                **LIST_SCHEMAS,
            },
            "securitySchemes": {
                "admin": {"type": "http", "scheme": "bearer"},
                "client": {"type": "http", "scheme": "basic"},
            },
        },
    }
