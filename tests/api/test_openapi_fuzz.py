"""Schemathesis against /openapi.json of a seeded server: no 5xx, every response as documented.

The client API is fuzzed as a real client uses it: its own permalink, a project of its own, real
request ids and its Basic credentials, so valid bodies get past authentication to the checks.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

import jsonschema
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

from tests.api.conftest import (
    SEED_CLIENTS,
    http,
    new_client_events,
    post_events,
    run_cli,
    unique_permalink,
)
from tests.conftest import ADMIN_TOKEN, RunningServer

CHECKS = (
    "not_a_server_error",
    "response_schema_conformance",
    "status_code_conformance",
    "content_type_conformance",
)
STATISTICS = "/{locale}/api_v4/clients/{client_id}/project_statistics"
CLIENT = "/{locale}/api_v4/clients/{client_id}"
CREATES = (
    f"{CLIENT}/projects/{{project_id}}/donation_pledges",
    f"{CLIENT}/pool/donation_pledges",
    f"{CLIENT}/projects/{{project_id}}/forwarding_requests",
)
STATES = (
    f"{CLIENT}/donation_pledges/{{request_id}}",
    f"{CLIENT}/forwarding_requests/{{request_id}}",
)
LISTS = (
    CLIENT,
    f"{CLIENT}/projects",
    f"{CLIENT}/projects/{{project_id}}",
    "/{locale}/api_v4/projects/{project_id}/needs",
    "/{locale}/api_v4/projects/{project_id}/needs/{need_id}",
    f"{CLIENT}/client_donations",
    f"{CLIENT}/client_donations/{{key}}",
    f"{CLIENT}/pool",
    f"{CLIENT}/pool/forwardings",
    f"{CLIENT}/matching_funds",
    f"{CLIENT}/matching_funds/{{fund_id}}",
)
LIST_OPERATIONS = {f"GET {path}{suffix}" for path in LISTS for suffix in (".json", "")}
CLIENT_OPERATIONS = {
    *(f"POST {path}{suffix}" for path in CREATES for suffix in (".json", "")),
    *(f"GET {path}{suffix}" for path in STATES for suffix in (".json", "")),
}
OPERATIONS = {
    f"GET {STATISTICS}.json",
    f"GET {STATISTICS}",
    "POST /admin/events",
    "GET /health/live",
    "GET /health/ready",
    *CLIENT_OPERATIONS,
    *LIST_OPERATIONS,
}
# Which answers a body the document calls valid, or invalid, may get from the client API: a
# valid one is stored (202), or names a reference stored with another body (409), never 422.
ACCEPTED = ["200", "202", "409"]
REJECTED = ["400", "401", "404", "413", "415", "422"]

# The admin body is text (JSON Lines): send what is generated as it is.
schemathesis.serializer.alias("application/x-ndjson", "text/plain")


@dataclass(frozen=True)
class FuzzClient:
    """A client of its own on the seeded server, its credentials and one request it made."""

    permalink: str
    project_id: int
    username: str
    password: str
    request_id: int

    def operation(self, path_regex: str, **parameters: object) -> dict[str, Any]:
        """Its settings for the operations on paths matching path_regex."""
        return {
            "include-path-regex": path_regex,
            "parameters": {"client_id": self.permalink, **parameters},
            "auth": {"basic": {"username": self.username, "password": self.password}},
            "checks": {
                "positive_data_acceptance": {"enabled": True, "expected-statuses": ACCEPTED},
                "negative_data_rejection": {"enabled": True, "expected-statuses": REJECTED},
            },
        }


def new_fuzz_client(server: RunningServer, database_url: str, kind: str) -> FuzzClient:
    """A new client (new ids only: the seeded figures stay as they are) with one request."""
    permalink = unique_permalink("fuzz")
    events = new_client_events(permalink, pool=True)
    assert post_events(server.base_url, events).status_code == 200
    issued = run_cli(database_url, "client", "credentials", permalink)
    assert issued.returncode == 0, issued.stderr.decode()
    credentials = json.loads(issued.stdout)
    auth = (credentials["username"], credentials["password"])
    target = "pool/donation_pledges" if kind == "pledge" else f"projects/{events[1]['id']}/{kind}s"
    response = http().post(
        f"{server.base_url}/en/api_v4/clients/{permalink}/{target}.json",
        json={"amount_in_cents": 1, "client_reference": "first", "validate_address": False}
        if kind == "pledge"
        else {"amount_in_cents": 1, "client_reference": "first"},
        auth=auth,
    )
    assert response.status_code == 202, response.text
    href: str = response.json()["links"][0]["href"]
    request_id = int(href.rsplit("/", 1)[1].removesuffix(".json"))
    return FuzzClient(permalink, events[1]["id"], *auth, request_id)


# Pledges and forwarding requests come from two clients: a client_reference is per client,
# and one already taken by the other kind of request is a conflict (409) whatever the body.
@pytest.fixture(scope="module")
def fuzz_clients(seeded_server: RunningServer, seeded_database_url: str) -> list[FuzzClient]:
    """The client that pledges, and the client that forwards."""
    return [
        new_fuzz_client(seeded_server, seeded_database_url, kind)
        for kind in ("pledge", "forwarding_request")
    ]


def fuzz_config(base_url: str, clients: list[FuzzClient]) -> schemathesis.Config:
    """Bounded and reproducible: 30 examples per operation, a fixed seed, nothing replayed."""
    pledging, forwarding = clients
    return schemathesis.Config.from_dict(
        {
            "base-url": base_url,
            "seed": 20240501,
            # No example database: examples kept by an earlier run (the other database's, or
            # a previous session's) would replay instead of the seeded ones.
            "generation": {"mode": "all", "max-examples": 30, "database": "none"},
            "auth": {"openapi": {"admin": {"bearer": ADMIN_TOKEN}}},
            "phases": {"stateful": {"enabled": False}},
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
            "operations": [
                pledging.operation(
                    "/(projects/[^/]+|pool)/donation_pledges", project_id=pledging.project_id
                ),
                pledging.operation("/donation_pledges/", request_id=pledging.request_id),
                forwarding.operation(
                    "/projects/[^/]+/forwarding_requests", project_id=forwarding.project_id
                ),
                forwarding.operation("/forwarding_requests/", request_id=forwarding.request_id),
                # The drill-down lists of the pledging client, with its credentials and real
                # ids: many answers are 400s (facets, order) or 404s, a few are 200s.
                {
                    # Anchored at both ends: the write paths below a client or a project
                    # (pledges, forwarding requests) keep their own client and credentials.
                    "include-path-regex": "^/[^/]+/api_v4/(clients/[^/]+|clients/[^/]+/("
                    "projects(/[^/]+)?|client_donations(/[^/]+)?|pool|pool/forwardings"
                    "|matching_funds(/[^/]+)?)|projects/[^/]+/needs(/[^/]+)?)(\\.json)?$",
                    "parameters": {
                        "client_id": pledging.permalink,
                        "project_id": pledging.project_id,
                        "key": "first",
                    },
                    "auth": {
                        "basic": {"username": pledging.username, "password": pledging.password}
                    },
                    "generation": {"max-examples": 10},
                },
                # The paths without .json reach the same handlers: fewer cases for them, and
                # without the coverage phase (its boundary cases are what reach a 422).
                {
                    "include-path-regex": "/(donation_pledges|forwarding_requests|{request_id})$",
                    "phases": {"coverage": {"enabled": False}},
                    "generation": {"max-examples": 10},
                },
            ],
        }
    )


def _failure(recorder: Any, case_id: str, check: str) -> str:
    """A failed check as one line: the operation, the answer, and what was sent."""
    case = recorder.cases[case_id].value
    interaction = recorder.interactions.get(case_id)
    response = interaction.response if interaction is not None else None
    answer = "no response" if response is None else f"{response.status_code} {response.content!r}"
    return f"{recorder.label} {check}: {case.path_parameters} {case.body!r} -> {answer}"


def run(schema: schemathesis.BaseSchema) -> tuple[list[str], Counter[tuple[str, int]]]:
    """Run every phase; the failed checks (with their case) and the answers per operation."""
    problems: list[str] = []
    answers: Counter[tuple[str, int]] = Counter()
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            for interaction in event.recorder.interactions.values():
                status = 0 if interaction.response is None else interaction.response.status_code
                answers[event.recorder.label, status] += 1
            for case_id, checks in event.recorder.checks.items():
                for check in checks:
                    if check.status == Status.FAILURE:
                        problems.append(_failure(event.recorder, case_id, check.name))
        elif isinstance(event, events.NonFatalError | events.FatalError):
            problems.append(repr(event))
    return problems, answers


def document(server: RunningServer) -> dict[str, Any]:
    response = http().get(f"{server.base_url}/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def test_every_response_conforms_to_the_document(
    seeded_server: RunningServer, fuzz_clients: list[FuzzClient]
) -> None:
    config = fuzz_config(seeded_server.base_url, fuzz_clients)
    schema = schemathesis.openapi.from_url(f"{seeded_server.base_url}/openapi.json", config=config)
    problems, answers = run(schema)
    assert problems == [], "\n".join(problems)
    seen = {operation for operation, _ in answers}
    assert seen >= OPERATIONS, OPERATIONS - seen
    # The client API was fuzzed past its credentials: bodies were stored, and refused.
    for operation in CLIENT_OPERATIONS:
        expected = {200} if operation.startswith("GET") else {202}
        if operation.startswith("POST") and operation.endswith(".json"):
            expected.add(422)
        assert expected <= {status for op, status in answers if op == operation}, operation
    # The lists answered real pages to real ids, and refused parameters they cannot use.
    list_statuses = {status for op, status in answers if op in LIST_OPERATIONS}
    assert {200, 400} <= list_statuses, list_statuses


def test_the_harness_reports_a_response_that_breaks_the_document(
    seeded_server: RunningServer, fuzz_clients: list[FuzzClient]
) -> None:
    """The fuzz test can fail: against a document whose errors need a key, it reports them."""
    wrong = copy.deepcopy(document(seeded_server))
    wrong["components"]["schemas"]["Error"]["required"].append("not_in_any_response")
    # The statistics endpoint answers errors too; fuzzing it alone keeps this test short.
    wrong["paths"] = {path: ops for path, ops in wrong["paths"].items() if STATISTICS in path}
    config = fuzz_config(seeded_server.base_url, fuzz_clients)
    problems, _ = run(schemathesis.openapi.from_dict(wrong, config=config))
    assert any("response_schema_conformance" in problem for problem in problems)


@pytest.mark.parametrize(
    ("field", "rules", "check"),
    [
        # Too much: every amount it calls valid is one the server refuses (above 10**6).
        ("amount_in_cents", {"minimum": 10**6 + 1, "maximum": 10**9}, "positive_data_acceptance"),
        # Too little: it calls invalid the 4 to 200 characters the server takes.
        ("tracking_via", {"maxLength": 3}, "negative_data_rejection"),
    ],
)
def test_the_harness_reports_bodies_the_document_misjudges(
    seeded_server: RunningServer,
    fuzz_clients: list[FuzzClient],
    field: str,
    rules: dict[str, int],
    check: str,
) -> None:
    """Against a document that allows too much, or too little, the fuzz test fails too."""
    wrong = copy.deepcopy(document(seeded_server))
    wrong["components"]["schemas"]["DonationPledge"]["properties"][field].update(rules)
    pool = f"{CLIENT}/pool/donation_pledges.json"
    wrong["paths"] = {pool: wrong["paths"][pool]}
    problems, _ = run(
        schemathesis.openapi.from_dict(
            wrong, config=fuzz_config(seeded_server.base_url, fuzz_clients)
        )
    )
    assert any(check in problem for problem in problems), problems


@pytest.mark.parametrize("path", [f"{STATISTICS}.json", STATISTICS])
def test_statistics_of_every_seeded_client_conform_to_the_document(
    seeded_server: RunningServer, fuzz_clients: list[FuzzClient], path: str
) -> None:
    """Random permalinks are unknown clients: real ones give the 200 and 304 fuzzing misses."""
    config = fuzz_config(seeded_server.base_url, fuzz_clients)
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


def test_conflicts_are_documented_with_a_link_to_the_stored_request(
    seeded_server: RunningServer,
) -> None:
    body = document(seeded_server)
    for path in CREATES:
        for suffix in (".json", ""):
            conflict = body["paths"][path + suffix]["post"]["responses"]["409"]
            schema = conflict["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Error"}
    error = jsonschema.Draft202012Validator(body["components"]["schemas"]["Error"])
    conflict_body = {
        "name": "GeneralError",
        "status": "conflict",
        "status_code": 409,
        "reason": "Conflict",
        "message": "The client_reference r-1 is taken by another request",
        "links": [
            {"rel": "location", "href": "http://x/en/api_v4/clients/c/donation_pledges/1.json"}
        ],
    }
    assert error.is_valid(conflict_body)
    assert not error.is_valid({**conflict_body, "links": [{"rel": "location"}]})
    assert not error.is_valid({**conflict_body, "links": ["http://x/"]})
