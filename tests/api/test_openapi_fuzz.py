"""Schemathesis against /openapi.json of a seeded server: no 5xx, every response as documented."""

from __future__ import annotations

import copy
from collections import Counter
from typing import Any

import pytest
import schemathesis
import schemathesis.engine
from schemathesis.checks import not_a_server_error
from schemathesis.engine import Status, events
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.conftest import SEED_CLIENTS, http
from tests.conftest import ADMIN_TOKEN, RunningServer

CHECKS = (
    "not_a_server_error",
    "response_schema_conformance",
    "status_code_conformance",
    "content_type_conformance",
)
STATISTICS = "/{locale}/api_v4/clients/{client_id}/project_statistics"
OPERATIONS = {
    f"GET {STATISTICS}.json",
    f"GET {STATISTICS}",
    "POST /admin/events",
    "GET /health/live",
    "GET /health/ready",
}

# The admin body is text (JSON Lines): send what is generated as it is.
schemathesis.serializer.alias("application/x-ndjson", "text/plain")


def fuzz_config(base_url: str) -> schemathesis.Config:
    """Bounded and reproducible: 30 examples per operation, a fixed seed, no stateful phase."""
    return schemathesis.Config.from_dict(
        {
            "base-url": base_url,
            "seed": 20240501,
            "generation": {"mode": "all", "max-examples": 30},
            "auth": {"openapi": {"admin": {"bearer": ADMIN_TOKEN}}},
            "phases": {"stateful": {"enabled": False}},
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
        }
    )


def run(schema: schemathesis.BaseSchema) -> tuple[list[str], Counter[str]]:
    """Run every phase; the failed checks (with their case) and requests sent per operation."""
    problems: list[str] = []
    requests: Counter[str] = Counter()
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            requests[event.recorder.label] += len(event.recorder.interactions)
            for case_id, checks in event.recorder.checks.items():
                for check in checks:
                    if check.status == Status.FAILURE:
                        case = event.recorder.cases[case_id].value
                        problems.append(f"{event.recorder.label} {check.name}: {case!r}")
        elif isinstance(event, events.NonFatalError | events.FatalError):
            problems.append(repr(event))
    return problems, requests


def document(server: RunningServer) -> dict[str, Any]:
    response = http().get(f"{server.base_url}/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def test_every_response_conforms_to_the_document(seeded_server: RunningServer) -> None:
    config = fuzz_config(seeded_server.base_url)
    schema = schemathesis.openapi.from_url(f"{seeded_server.base_url}/openapi.json", config=config)
    problems, requests = run(schema)
    assert problems == []
    assert set(requests) >= OPERATIONS
    assert all(requests[operation] > 0 for operation in OPERATIONS), requests


def test_the_harness_reports_a_response_that_breaks_the_document(
    seeded_server: RunningServer,
) -> None:
    """The fuzz test can fail: against a document whose errors need a key, it reports them."""
    wrong = copy.deepcopy(document(seeded_server))
    wrong["components"]["schemas"]["Error"]["required"].append("not_in_any_response")
    config = fuzz_config(seeded_server.base_url)
    problems, _ = run(schemathesis.openapi.from_dict(wrong, config=config))
    assert any("response_schema_conformance" in problem for problem in problems)


@pytest.mark.parametrize("path", [f"{STATISTICS}.json", STATISTICS])
def test_statistics_of_every_seeded_client_conform_to_the_document(
    seeded_server: RunningServer, path: str
) -> None:
    """Random permalinks are unknown clients: real ones give the 200 and 304 fuzzing misses."""
    config = fuzz_config(seeded_server.base_url)
    schema = schemathesis.openapi.from_url(f"{seeded_server.base_url}/openapi.json", config=config)
    operation = schema[path]["GET"]
    checks = [
        not_a_server_error,
        response_schema_conformance,
        status_code_conformance,
        content_type_conformance,
        response_headers_conformance,
    ]
    for client in SEED_CLIENTS:
        for locale in ("de", "en"):
            case = operation.Case(path_parameters={"locale": locale, "client_id": client})
            response = case.call_and_validate(checks=checks)
            assert response.status_code == 200
            etag = response.headers["etag"][0]
            case = operation.Case(
                path_parameters={"locale": locale, "client_id": client.upper()},
                headers={"If-None-Match": etag},
            )
            assert case.call_and_validate(checks=checks).status_code == 304


def test_the_document_names_every_endpoint(seeded_server: RunningServer) -> None:
    paths = document(seeded_server)["paths"]
    assert {f"{m.upper()} {p}" for p, ops in paths.items() for m in ops} >= OPERATIONS
    assert paths["/admin/events"]["post"]["security"] == [{"admin": []}]
