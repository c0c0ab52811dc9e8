"""Every error is JSON in the platform's format; bad input never gives a 5xx."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from tests.api.conftest import (
    ERROR_KEYS,
    JSON_UTF8,
    NDJSON,
    assert_error,
    get_stats,
    http,
    new_client_events,
    ordered_pairs,
    post_events,
    unique_permalink,
)
from tests.conftest import RunningServer

UNKNOWN_PATHS = [
    "/",
    "/nothing",
    "/de",
    "/de/api_v4",
    "/de/api_v4/clients",
    "/de/api_v4/clients/volksfreund/donations.json",
    "/de/api_v4/clients/volksfreund/projects/1/needs.json",
    "/de/api_v4/clients/volksfreund/project_statistics.xml",
    "/de/api_v4/clients/volksfreund/project_statistics.json/",
    "/de/api_v4/clients/volksfreund/project_statistics.json;x",
    "/de/api_v5/clients/volksfreund/project_statistics.json",
    "/de/api_v4/client/volksfreund/project_statistics.json",
    "//de/api_v4/clients/volksfreund/project_statistics.json",
    "/de/api_v4/clients//project_statistics.json",
    "/admin",
    "/admin/events/1",
    "/health",
    "/openapi.yaml",
    "/index.html",
    "/%ff",
    "/%00",
    "/%2e%2e/%2e%2e/etc/passwd",
]

# Client ids no client can have: each must be a 404 in the error format, never 5xx.
MALFORMED_CLIENT_IDS = [
    "a" * 65,
    "a" * 10_000,
    "%00",
    "a%00b",
    "%ff%fe",
    "%C0%AF",
    "%25",
    "%2e%2e",
    "%20volksfreund",
    "volksfreund%20",
    "volksfreund%0a",
    "%27%20OR%201%3D1--",
    "über",
    "%F0%9F%92%B8",
    "\u05d0\u05d1",
    "\u212aolksfreund",  # KELVIN SIGN, which str.lower() turns into an ASCII "k"
    "volksfreund\u0131",
    "%ED%A0%80",
]


@pytest.mark.parametrize("path", UNKNOWN_PATHS)
def test_unknown_paths_are_404_json(seeded_server: RunningServer, path: str) -> None:
    response = http().get(seeded_server.base_url + path)
    assert_error(response, 404)
    assert b"<html" not in response.content.lower()


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/admin/events", "POST"),
        ("PUT", "/admin/events", "POST"),
        ("POST", "/health/live", "GET"),
        ("DELETE", "/health/ready", "GET"),
        ("POST", "/openapi.json", "GET"),
    ],
)
def test_wrong_methods_on_other_endpoints_are_405_json(
    seeded_server: RunningServer, method: str, path: str, allowed: str
) -> None:
    response = http().request(method, seeded_server.base_url + path)
    assert_error(response, 405)
    assert allowed in response.headers["allow"]


@pytest.mark.parametrize("client_id", MALFORMED_CLIENT_IDS)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_malformed_client_ids_are_404_never_a_server_error(
    seeded_server: RunningServer, client_id: str, method: str
) -> None:
    url = f"{seeded_server.base_url}/en/api_v4/clients/{client_id}/project_statistics.json"
    response = http().request(method, url)
    assert response.status_code == 404, response.text
    assert response.headers["content-type"] == JSON_UTF8
    if method == "GET":
        body = assert_error(response, 404)
        assert "Couldn't find Client with permalink=" in body["message"]
    else:
        assert response.content == b""


def test_a_malformed_client_id_does_not_break_later_requests(
    seeded_server: RunningServer,
) -> None:
    """A bad request must not poison the connection pool or the cache (PostgreSQL: NUL)."""
    for client_id in ("%00", "a%00b", "%ff"):
        assert get_stats(seeded_server.base_url, client_id).status_code == 404
    assert get_stats(seeded_server.base_url, "volksfreund").status_code == 200
    assert http().get(seeded_server.base_url + "/health/ready").status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"if-none-match": b"\xff\xfe garbage, W/, ,,"},
        {"if-none-match": '"' * 5000},
        {"authorization": "Basic !!!not-base64"},
        {"accept": "text/html"},
        {"accept": "application/xml"},
        {"content-type": "text/html", "content-length": "0"},
    ],
)
def test_junk_headers_on_the_statistics_endpoint_never_give_a_server_error(
    seeded_server: RunningServer, headers: dict[str, str | bytes]
) -> None:
    response = get_stats(seeded_server.base_url, "volksfreund", headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == JSON_UTF8
    response = get_stats(seeded_server.base_url, "nobody", headers=headers)
    assert_error(response, 404)


BAD_ADMIN_BODIES: list[bytes] = [
    b"\xff\xfe\x00garbage",
    b"not json at all",
    b"[1, 2, 3]",
    b'"a string"',
    b"null",
    b"{}",
    b'{"event": "nope"}',
    b'{"event": "client"}',
    b'{"event": "client", "id": "a\\u0000b", "name": "x"}',
    b'{"event": "client", "id": "ok-id", "name": "x\\u0000y"}',
    b'{"event": "client", "id": "ok-id", "name": "\\ud800"}',
    b'{"event": "client", "id": "ok-id", "name": "x", "pool": NaN}',
    b'{"event": "project", "id": 1e400, "title": "x"}',
    b'{"event": "project", "id": 99999999999999999999999999, "title": "x"}',
    b'{"event": "project", "id": -1, "title": "x"}',
    b'{"event": "project", "id": true, "title": "x"}',
    b'{"event": "project", "id": 7, "title": "x", "id": 8}',
    b'{"event": "need", "id": 1, "project_id": 1, "title": "x", "requested_amount_in_cents": 0}',
    b'{"event": "donation", "token": "t\\u0000", "channel": "platform", "amount_in_cents": 1}',
    b'{"event": "donation", "token": "tok", "channel": "matching", "amount_in_cents": 1,'
    b' "receiver": {"type": "project", "id": 1}}',
    b'{"event": "donation", "token": "tok", "channel": "platform", "amount_in_cents": 1,'
    b' "receiver": {"type": "project", "id": 1}, "created_at": "9999-12-31T23:59:59-23:59"}',
    b'{"event": "client", "id": "x", "name": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    b"[" * 100_000,
    b'{"event": "client", "id": "x", "name": "' + b"x" * 70_000 + b'"}',
]


@pytest.mark.parametrize("body", BAD_ADMIN_BODIES, ids=range(len(BAD_ADMIN_BODIES)))
def test_bad_admin_bodies_are_422_naming_the_line(
    seeded_server: RunningServer, body: bytes
) -> None:
    response = post_events(seeded_server.base_url, body)
    error = assert_error(response, 422)
    assert list(error["errors"]) == ["line 1"]
    assert all(isinstance(m, str) and m for m in error["errors"]["line 1"])


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"authorization": "Bearer"}, 401),
        ({"authorization": b"Bearer \xc3\xa9\xff"}, 401),
        ({"authorization": "Basic dXNlcjpwYXNz", "content-type": NDJSON}, 401),
        ({"authorization": "x" * 4000, "content-type": NDJSON}, 401),
    ],
)
def test_bad_admin_credentials_are_401_json(
    seeded_server: RunningServer, headers: dict[str, str | bytes], status: int
) -> None:
    response = http().post(seeded_server.base_url + "/admin/events", headers=headers, content=b"{}")
    assert_error(response, status)


def _error_keys(response: httpx.Response) -> list[str]:
    return [key for key, _ in ordered_pairs(response.content)]


def _errors_of_every_kind(base_url: str) -> list[httpx.Response]:
    return [
        http().get(base_url + "/nothing"),
        http().post(base_url + "/health/live"),
        http().get(base_url + "/fr/api_v4/clients/volksfreund/project_statistics.json"),
        http().get(base_url + "/de/api_v4/clients/nobody/project_statistics.json"),
        http().delete(base_url + "/de/api_v4/clients/volksfreund/project_statistics.json"),
        post_events(base_url, b"", token=None),
        post_events(base_url, b"", content_type="text/plain"),
        post_events(base_url, b"junk\n"),
    ]


def test_no_backtrace_outside_debug_mode(seeded_server: RunningServer) -> None:
    responses = _errors_of_every_kind(seeded_server.base_url)
    assert sorted({r.status_code for r in responses}) == [401, 404, 405, 415, 422]
    for response in responses:
        assert "backtrace" not in _error_keys(response), response.text
        assert_error(response, response.status_code)


def test_debug_mode_adds_a_backtrace_and_nothing_else(configured_server: RunningServer) -> None:
    with_backtrace: list[dict[str, Any]] = []
    for response in _errors_of_every_kind(configured_server.base_url):
        assert response.status_code < 500
        assert response.headers["content-type"] == JSON_UTF8
        keys = set(_error_keys(response))
        expected = set(ERROR_KEYS) | ({"errors"} if response.status_code == 422 else set())
        assert keys - {"backtrace"} == expected, response.text
        if "backtrace" in keys:
            with_backtrace.append(response.json())
    # The admin errors are raised as exceptions; debug mode shows where.
    assert with_backtrace, "no error carried a backtrace in debug mode"
    for body in with_backtrace:
        assert isinstance(body["backtrace"], list) and body["backtrace"]
        assert all(isinstance(line, str) for line in body["backtrace"])


def test_a_huge_request_line_never_gives_a_server_error(seeded_server: RunningServer) -> None:
    response = http().get(seeded_server.base_url + "/" + "x" * 60_000)
    assert response.status_code < 500
    assert "html" not in response.headers.get("content-type", "")
    if response.status_code == 404:
        assert_error(response, 404)


@pytest.mark.parametrize(
    "username",
    [b"a\x00b", b"\xff\xfe", b"x" * 10_000, b"priv:ate", b""],
    ids=["nul", "not-utf8", "long", "colon", "empty"],
)
def test_junk_credentials_for_private_statistics_are_401_never_a_server_error(
    seeded_server: RunningServer, username: bytes
) -> None:
    permalink = unique_permalink("private")
    events = new_client_events(permalink)
    events[0]["statistics_private"] = True
    assert post_events(seeded_server.base_url, events).status_code == 200
    token = base64.b64encode(username + b":password").decode()
    response = get_stats(
        seeded_server.base_url, permalink, headers={"authorization": f"Basic {token}"}
    )
    assert_error(response, 401)
