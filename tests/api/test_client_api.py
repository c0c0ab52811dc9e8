"""The client write API over real HTTP against `clientstats serve` processes."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from clientstats.services.statistics import get_snapshot_or_raise
from clientstats.storage.database import make_engine
from tests.api.conftest import assert_error as assert_platform_error
from tests.conftest import (
    ADMIN_TOKEN,
    RunningServer,
    fresh_database,
    server_env,
)

JSON_UTF8 = "application/json; charset=utf-8"
STATUS_NAMES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable_entity",
}
STATUS_KEYS = [
    "id",
    "created_at",
    "updated_at",
    "confirmed_at",
    "failed_at",
    "state",
    "failure_code",
    "failure_reason",
]
ADDRESS: dict[str, Any] = {
    "first_name": "Erika",
    "last_name": "Mustermann",
    "email": "erika@example.org",
    "street": "Hauptstr. 1",
    "city": "Trier",
    "zip": "54290",
    "country_code": "DE",
}
WAIT_SECONDS = 20  # only a guard against hanging; a healthy run settles in milliseconds

# Module reference data: vf has a pool and a matching fund on project 2; acme has no pool.
# Project 6 is tb's only: it exists, and accepts donations, but vf and acme may not use it.
OPEN, MATCHED, CLOSED, PROHIBITED, FORWARD_TARGET, TB_ONLY = 1, 2, 3, 4, 5, 6
SEED: list[dict[str, Any]] = [
    {"event": "client", "id": "vf", "name": "Volksfreund", "pool": True},
    {"event": "client", "id": "acme", "name": "ACME", "pool": False},
    {"event": "client", "id": "tb", "name": "Tageblatt", "pool": True},
    {"event": "client", "id": "renewed", "name": "Renewed", "pool": True},
    *({"event": "project", "id": p, "title": f"Project {p}"} for p in (1, 2, 3, 5)),
    {"event": "project", "id": PROHIBITED, "title": "P4", "donations_prohibited": True},
    *(
        {
            "event": "need",
            "id": 10 * p,
            "project_id": p,
            "title": "N",
            "requested_amount_in_cents": 10**9,
        }
        for p in (1, 2, 3, 4, 5)
    ),
    *(
        {"event": "client_project", "client_id": c, "project_id": p, "member": True}
        for c in ("vf", "acme", "tb")
        for p in (1, 2, 3, 4, 5)
    ),
    {
        "event": "matching_fund",
        "id": 1,
        "client_id": "vf",
        "title": "VF doubles",
        "provided_amount_in_cents": 10**8,
        "maximum_matching_amount_in_cents": 500,
        "state": "activated",
        "project_ids": [MATCHED],
    },
    {"event": "project", "id": CLOSED, "closed": True},
    {"event": "project", "id": TB_ONLY, "title": "Project 6"},
    {"event": "client_project", "client_id": "tb", "project_id": TB_ONLY, "member": True},
]


# --- helpers -----------------------------------------------------------------------------


def unique(prefix: str = "ref") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def pledge_body(amount: int = 1000, reference: str | None = None, **more: Any) -> dict[str, Any]:
    return {
        "amount_in_cents": amount,
        "client_reference": reference or unique(),
        **ADDRESS,
        **more,
    }


def post_events(base_url: str, events: list[dict[str, Any]]) -> None:
    body = b"".join(json.dumps(e).encode() + b"\n" for e in events)
    response = httpx.post(
        f"{base_url}/admin/events",
        content=body,
        headers={"authorization": f"Bearer {ADMIN_TOKEN}", "content-type": "application/x-ndjson"},
        timeout=30,
    )
    assert response.status_code == 200, response.text


def issue_credentials(database_url: str, *clients: str) -> dict[str, tuple[str, str]]:
    """New API passwords from `clientstats client credentials`, issued in parallel."""
    processes = {
        c: subprocess.Popen(
            [sys.executable, "-m", "clientstats", "client", "credentials", c],
            env=server_env(database_url),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for c in clients
    }
    issued = {}
    for client, process in processes.items():
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err.decode()
        data = json.loads(out)
        assert sorted(data) == ["password", "username"]
        issued[client] = (data["username"], data["password"])
    return issued


def assert_error(response: httpx.Response, status_code: int) -> dict[str, Any]:
    """The response is a error in the platform's format of this status; returns its body."""
    assert response.status_code == status_code, response.text
    assert response.headers["content-type"] == JSON_UTF8
    body: dict[str, Any] = response.json()
    assert body["name"] == "GeneralError"
    assert body["status_code"] == status_code
    assert body["status"] == STATUS_NAMES[status_code]
    assert isinstance(body["message"], str) and body["message"]
    assert body["links"] == []
    assert "backtrace" not in body
    return body


def wait_until(probe: Callable[[], Any], done: Callable[[Any], bool]) -> Any:
    """Call probe until done(result) or the guard time passes; returns the last result."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        result = probe()
        if done(result) or time.monotonic() > deadline:
            return result
        time.sleep(0.02)


@dataclass
class Api:
    """A running server on a seeded database, with its clients' credentials."""

    base_url: str
    database_url: str
    credentials: dict[str, tuple[str, str]]
    engine: Engine
    http: httpx.Client

    @classmethod
    def on(cls, server: RunningServer, database_url: str, *clients: str) -> Api:
        """The API of a running server whose schema exists, with new credentials of clients."""
        credentials = issue_credentials(database_url, *clients)
        engine = make_engine(database_url)
        return cls(server.base_url, database_url, credentials, engine, httpx.Client(timeout=30))

    def close(self) -> None:
        self.http.close()
        self.engine.dispose()

    def url(self, client: str, path: str, locale: str = "de") -> str:
        return f"{self.base_url}/{locale}/api_v4/clients/{client}/{path}"

    def post(
        self,
        client: str,
        path: str,
        body: Any,
        *,
        locale: str = "de",
        auth: Any = None,
        **kwargs: Any,
    ) -> httpx.Response:
        if "content" not in kwargs:
            kwargs["json"] = body
        return self.http.post(
            self.url(client, path, locale),
            auth=auth if auth is not None else self.credentials[client],
            **kwargs,
        )

    def pledge(
        self, client: str, body: Any, project: int | None = OPEN, **kwargs: Any
    ) -> httpx.Response:
        path = "pool" if project is None else f"projects/{project}"
        return self.post(client, f"{path}/donation_pledges.json", body, **kwargs)

    def forwarding(self, client: str, project: int, body: Any, **kwargs: Any) -> httpx.Response:
        return self.post(client, f"projects/{project}/forwarding_requests.json", body, **kwargs)

    def status(
        self, client: str, kind: str, request_id: int | str, *, locale: str = "de", auth: Any = None
    ) -> httpx.Response:
        return self.http.get(
            self.url(client, f"{kind}/{request_id}.json", locale),
            auth=auth if auth is not None else self.credentials[client],
        )

    def settled(
        self, client: str, kind: str, request_id: int, locale: str = "de"
    ) -> dict[str, Any]:
        """The request's status once a worker has processed it."""
        body: dict[str, Any] = wait_until(
            lambda: self.status(client, kind, request_id, locale=locale).json(),
            lambda b: b.get("state") != "pending",
        )
        return body

    def book(
        self,
        client: str,
        body: Any,
        project: int | None = OPEN,
        locale: str = "de",
        auth: Any = None,
    ) -> dict[str, Any]:
        """POST a pledge that must be accepted; its status once processed."""
        response = self.pledge(client, body, project, locale=locale, auth=auth)
        request_id = accepted_id(response, self, client, "donation_pledges", locale)
        body_out: dict[str, Any] = wait_until(
            lambda: self.status(
                client, "donation_pledges", request_id, locale=locale, auth=auth
            ).json(),
            lambda b: b.get("state") != "pending",
        )
        return body_out

    def ledger_stats(self, client: str) -> dict[str, Any]:
        """The client's figures read from the database, bypassing the server's cache."""
        return get_snapshot_or_raise(self.engine, client).statistics.as_response()

    def fresh_stats(self, client: str) -> dict[str, Any]:
        """The current figures, once the server serves them too."""
        return self.stats_become(client, self.ledger_stats(client))

    def stats(self, client: str) -> dict[str, Any]:
        response = self.http.get(self.url(client, "project_statistics.json"))
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def stats_become(self, client: str, expected: dict[str, Any]) -> dict[str, Any]:
        """The client's statistics once they equal `expected` (or the last ones seen)."""
        body: dict[str, Any] = wait_until(lambda: self.stats(client), lambda b: b == expected)
        return body


def accepted_id(
    response: httpx.Response, api: Api, client: str, kind: str, locale: str = "de"
) -> int:
    """Check a 202 answer exactly; returns the request id its location names."""
    assert response.status_code == 202, response.text
    assert response.headers["content-type"] == JSON_UTF8
    body = response.json()
    assert list(body) == ["status", "status_code", "links"]
    assert (body["status"], body["status_code"]) == ("accepted", 202)
    [link] = body["links"]
    assert link["rel"] == "location"
    match = re.fullmatch(
        re.escape(api.url(client, f"{kind}/", locale)) + r"(\d+)\.json", link["href"]
    )
    assert match is not None, link["href"]
    return int(match.group(1))


def with_delta(before: dict[str, Any], **delta: int) -> dict[str, Any]:
    return {k: v + delta.get(k, 0) if isinstance(v, int) else v for k, v in before.items()}


def new_database(kind: str, tmp_path: Path) -> tuple[str, Callable[[], None]]:
    """A fresh database URL of this kind and how to drop it."""
    stack = contextlib.ExitStack()
    return stack.enter_context(fresh_database(kind, tmp_path)), stack.close


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """One server per database kind for the module; tests keep apart by references and deltas."""
    database_url, drop = new_database(request.param, tmp_path_factory.mktemp("db"))
    server = RunningServer(database_url)
    try:
        post_events(server.base_url, SEED)
        running = Api.on(server, database_url, "vf", "acme", "tb", "renewed")
        yield running
        running.close()
    finally:
        server.stop()
        drop()


# --- validation: every rule, in both languages --------------------------------

REMOVE = object()
_RANGE = ("must be between 1 and 1000000", "muss zwischen 1 und 1000000 liegen")
_INTEGER = ("must be an integer", "muss eine ganze Zahl sein")
_REQUIRED = ("is required", "muss ausgefüllt werden")
_REFERENCE = (
    "must be 1 to 128 characters of A-Z, a-z, 0-9, _ and -",
    "muss aus 1 bis 128 Zeichen A-Z, a-z, 0-9, _ und - bestehen",
)
INVALID_PLEDGES: list[tuple[str, dict[str, Any], str, tuple[str, str]]] = [
    ("amount zero", {"amount_in_cents": 0}, "amount_in_cents", _RANGE),
    ("amount negative", {"amount_in_cents": -100}, "amount_in_cents", _RANGE),
    ("amount above max", {"amount_in_cents": 1_000_001}, "amount_in_cents", _RANGE),
    (
        "amount beyond 64 bits",
        {"amount_in_cents": 99999999999999999999999},
        "amount_in_cents",
        _RANGE,
    ),
    ("amount 1e23", {"amount_in_cents": 1e23}, "amount_in_cents", _RANGE),
    ("amount string", {"amount_in_cents": "1000"}, "amount_in_cents", _INTEGER),
    ("amount float", {"amount_in_cents": 10.5}, "amount_in_cents", _INTEGER),
    ("amount bool", {"amount_in_cents": True}, "amount_in_cents", _INTEGER),
    ("amount missing", {"amount_in_cents": REMOVE}, "amount_in_cents", _REQUIRED),
    ("amount null", {"amount_in_cents": None}, "amount_in_cents", _REQUIRED),
    ("reference missing", {"client_reference": REMOVE}, "client_reference", _REQUIRED),
    ("reference space", {"client_reference": "a b"}, "client_reference", _REFERENCE),
    ("reference too long", {"client_reference": "r" * 129}, "client_reference", _REFERENCE),
    ("reference empty", {"client_reference": ""}, "client_reference", _REFERENCE),
    ("reference number", {"client_reference": 12}, "client_reference", _REFERENCE),
    *(
        (f"{name} missing", {name: REMOVE}, name, _REQUIRED)
        for name in ("first_name", "last_name", "email", "street", "city", "zip", "country_code")
    ),
    (
        "first_name blank",
        {"first_name": "  "},
        "first_name",
        ("must not be blank", "darf nicht leer sein"),
    ),
    ("city number", {"city": 54290}, "city", ("must be a string", "muss ein Text sein")),
    (
        "street too long",
        {"street": "s" * 201},
        "street",
        ("is too long (at most 200 characters)", "ist zu lang (höchstens 200 Zeichen)"),
    ),
    (
        "last_name control",
        {"last_name": "Muster\u0000mann"},
        "last_name",
        ("must not contain control characters", "darf keine Steuerzeichen enthalten"),
    ),
    (
        "email invalid",
        {"email": "erika.example.org"},
        "email",
        ("is not a valid email address", "ist keine gültige E-Mail-Adresse"),
    ),
    (
        "country unknown",
        {"country_code": "XX"},
        "country_code",
        (
            "is not an ISO 3166-1 alpha-2 country code",
            "ist kein Ländercode nach ISO 3166-1 alpha-2",
        ),
    ),
    (
        "country alpha-3",
        {"country_code": "DEU"},
        "country_code",
        ("is too long (at most 2 characters)", "ist zu lang (höchstens 2 Zeichen)"),
    ),
    (
        "validate_address string",
        {"validate_address": "false"},
        "validate_address",
        ("must be true or false", "muss true oder false sein"),
    ),
    (
        "tracking_via too long",
        {"tracking_via": "t" * 201},
        "tracking_via",
        ("is too long (at most 200 characters)", "ist zu lang (höchstens 200 Zeichen)"),
    ),
    (
        "tracking_via number",
        {"tracking_via": 7},
        "tracking_via",
        ("must be a string", "muss ein Text sein"),
    ),
    (
        "earmark zero",
        {"earmark": 0},
        "earmark",
        (
            "must be between 1 and 9223372036854775807",
            "muss zwischen 1 und 9223372036854775807 liegen",
        ),
    ),
    ("earmark string", {"earmark": "59220"}, "earmark", _INTEGER),
    (
        "message too long",
        {"message": "m" * 2001},
        "message",
        ("is too long (at most 2000 characters)", "ist zu lang (höchstens 2000 Zeichen)"),
    ),
    ("message list", {"message": ["hi"]}, "message", ("must be a string", "muss ein Text sein")),
    ("message empty", {"message": ""}, "message", ("must not be blank", "darf nicht leer sein")),
    (
        "country AA",
        {"country_code": "AA"},
        "country_code",
        (
            "is not an ISO 3166-1 alpha-2 country code",
            "ist kein Ländercode nach ISO 3166-1 alpha-2",
        ),
    ),
    (
        "tracking_via control",
        {"tracking_via": "news\u007fletter"},
        "tracking_via",
        ("must not contain control characters", "darf keine Steuerzeichen enthalten"),
    ),
    (
        "address null",
        {"street": None},
        "street",
        _REQUIRED,
    ),
    (
        "unknown field",
        {"donor_name": "x"},
        "donor_name",
        ("is not a known field", "ist kein bekanntes Feld"),
    ),
]
SUMMARY = {
    "en": "The submitted data cannot be processed",
    "de": "Die übermittelten Daten können nicht verarbeitet werden",
}


def invalid_body(changes: dict[str, Any]) -> dict[str, Any]:
    body = pledge_body()
    for key, value in changes.items():
        if value is REMOVE:
            del body[key]
        else:
            body[key] = value
    return body


@pytest.mark.parametrize("locale", ["en", "de"])
@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [pytest.param(c, f, w, id=name) for name, c, f, w in INVALID_PLEDGES],
)
def test_each_invalid_pledge_field_is_a_422_in_the_locale_language(
    api: Api, locale: str, changes: dict[str, Any], field: str, words: tuple[str, str]
) -> None:
    response = api.pledge("vf", invalid_body(changes), locale=locale)
    body = assert_error(response, 422)
    assert body["reason"] == "Cannot Process Submitted Data"
    assert body["message"] == SUMMARY[locale]
    assert body["errors"] == {field: [words[0] if locale == "en" else words[1]]}


@pytest.mark.parametrize("locale", ["en", "de"])
def test_every_problem_of_a_pledge_is_listed_at_once(api: Api, locale: str) -> None:
    body = {"amount_in_cents": 0, "client_reference": "no spaces", "email": "x", "colour": "red"}
    errors = assert_error(api.pledge("vf", body, locale=locale), 422)["errors"]
    assert set(errors) == {
        "amount_in_cents",
        "client_reference",
        "email",
        "colour",
        "first_name",
        "last_name",
        "street",
        "city",
        "zip",
        "country_code",
    }
    assert errors["colour"] == [
        "is not a known field" if locale == "en" else "ist kein bekanntes Feld"
    ]


def test_without_address_validation_only_amount_and_reference_are_needed(api: Api) -> None:
    body = {"amount_in_cents": 100, "client_reference": unique(), "validate_address": False}
    assert api.book("vf", body)["state"] == "confirmed"


def test_a_pledge_with_every_optional_field_is_accepted(api: Api) -> None:
    body = pledge_body(
        tracking_via="newsletter", earmark=10, message="Alles Gute!", validate_address=True
    )
    charset = {"content-type": "application/json; charset=utf-8"}
    response = api.pledge("vf", None, content=json.dumps(body).encode(), headers=charset)
    request_id = accepted_id(response, api, "vf", "donation_pledges")
    assert api.settled("vf", "donation_pledges", request_id)["state"] == "confirmed"


def test_null_is_a_left_out_optional_field(api: Api) -> None:
    body = pledge_body(tracking_via=None, earmark=None, message=None, validate_address=None)
    assert api.book("vf", body)["state"] == "confirmed"
    pool = {"amount_in_cents": 100, "client_reference": unique(), "validate_address": False}
    assert api.book("vf", {**pool, **dict.fromkeys(ADDRESS)}, None)["state"] == "confirmed"


def pledge_amount_written(api: Api, written: str, locale: str = "de") -> httpx.Response:
    """POST a valid pledge whose amount is spelled exactly as `written` in the JSON text."""
    body = json.dumps(pledge_body(reference=unique()), separators=(",", ":"))
    body = body.replace('"amount_in_cents":1000', f'"amount_in_cents":{written}', 1)
    json_type = {"content-type": "application/json"}
    return api.pledge("vf", None, content=body.encode(), headers=json_type, locale=locale)


@pytest.mark.parametrize(
    ("written", "cents"), [("5.0", 5), ("5e0", 5), ("500e-2", 5), ("1.0E3", 1000)]
)
def test_an_amount_without_a_fraction_is_that_integer_however_written(
    api: Api, written: str, cents: int
) -> None:
    before = api.fresh_stats("vf")
    response = pledge_amount_written(api, written)
    request_id = accepted_id(response, api, "vf", "donation_pledges")
    assert api.settled("vf", "donation_pledges", request_id)["state"] == "confirmed"
    expected = with_delta(before, **donated(cents))
    assert api.stats_become("vf", expected) == expected


@pytest.mark.parametrize(
    ("written", "words"),
    [
        ("5.000000000000000001", _INTEGER),  # a binary float would read 5.0
        ("999999.99999999999999", _INTEGER),
        ("1e400", _RANGE),  # beyond a double
        ("-1e999999999", _RANGE),
    ],
)
def test_amounts_a_float_cannot_hold_are_judged_as_written(
    api: Api, written: str, words: tuple[str, str]
) -> None:
    for locale, worded in zip(("en", "de"), words, strict=True):
        response = pledge_amount_written(api, written, locale)
        assert assert_error(response, 422)["errors"] == {"amount_in_cents": [worded]}


@pytest.mark.parametrize("locale", ["en", "de"])
def test_a_forwarding_amount_beyond_64_bits_is_out_of_range(api: Api, locale: str) -> None:
    body = {"amount_in_cents": 10**30, "client_reference": unique()}
    errors = assert_error(api.forwarding("vf", FORWARD_TARGET, body, locale=locale), 422)["errors"]
    words = {
        "en": "must be between 1 and 100000000000",
        "de": "muss zwischen 1 und 100000000000 liegen",
    }
    assert errors == {"amount_in_cents": [words[locale]]}


@pytest.mark.parametrize(
    "content",
    [
        b'{"amount_in_cents": 1000, "client_reference": "r", "first_name": "M\xfcller"}',
        '{"amount_in_cents": 1000}'.encode("utf-16"),
        b"\xff",
    ],
)
def test_a_body_that_is_not_utf8_is_400_in_plain_words(api: Api, content: bytes) -> None:
    response = api.pledge("vf", None, content=content, headers={"content-type": "application/json"})
    assert assert_error(response, 400)["message"] == "The request body is not valid UTF-8 JSON"


@pytest.mark.parametrize("locale", ["en", "de"])
def test_invalid_forwarding_requests_are_422(api: Api, locale: str) -> None:
    body = {"amount_in_cents": 0, "client_reference": "a b", "email": "x@y.de"}
    errors = assert_error(api.forwarding("vf", FORWARD_TARGET, body, locale=locale), 422)["errors"]
    words = {
        "en": ("must be between 1 and 100000000000", _REFERENCE[0], "is not a known field"),
        "de": ("muss zwischen 1 und 100000000000 liegen", _REFERENCE[1], "ist kein bekanntes Feld"),
    }[locale]
    assert errors == {
        "amount_in_cents": [words[0]],
        "client_reference": [words[1]],
        "email": [words[2]],
    }


# --- unreadable bodies and unknown targets: the error, nothing stored ----------


def bad_requests(api: Api) -> list[tuple[int, Callable[[], httpx.Response]]]:
    valid = json.dumps(pledge_body()).encode()
    big = json.dumps(pledge_body(message="m" * (65 * 1024))).encode()
    as_json = {"content-type": "application/json"}

    def raw(content: Any, content_type: str | None = "application/json") -> httpx.Response:
        headers = {} if content_type is None else {"content-type": content_type}
        return api.pledge("vf", None, content=content, headers=headers)

    def chunked() -> Iterator[bytes]:
        for _ in range(70):
            yield b" " * 1024
        yield valid

    forwarding = {"amount_in_cents": 1, "client_reference": unique()}
    return [
        (415, lambda: raw(valid, "text/plain")),
        (415, lambda: raw(valid, "application/x-www-form-urlencoded")),
        (415, lambda: raw(valid, None)),
        (400, lambda: raw(b'{"amount_in_cents": 1')),
        (400, lambda: raw(b"")),
        (400, lambda: raw(valid.replace(b"Erika", b"Erik\xe4"))),  # Latin-1, not UTF-8
        (413, lambda: raw(big)),
        (413, lambda: raw(chunked())),
        (422, lambda: api.pledge("vf", [pledge_body()])),
        (422, lambda: api.pledge("vf", "pledge")),
        (422, lambda: raw(b"null")),
        (404, lambda: api.pledge("vf", pledge_body(), project=987_654)),
        (404, lambda: api.post("vf", "projects/abc/donation_pledges.json", pledge_body())),
        # Digits, but not ASCII ones: superscript two, Arabic-Indic one.
        (404, lambda: api.post("vf", "projects/\u00b2/donation_pledges.json", pledge_body())),
        (404, lambda: api.post("vf", "projects/\u0661/donation_pledges.json", pledge_body())),
        (404, lambda: api.pledge("vf", pledge_body(), project=0)),
        (404, lambda: api.pledge("vf", pledge_body(), project=2**64)),
        (404, lambda: api.pledge("vf", pledge_body(), locale="fr")),
        (404, lambda: api.forwarding("vf", 987_654, forwarding)),
        (404, lambda: api.pledge("vf", pledge_body(), project=TB_ONLY)),
        (404, lambda: api.forwarding("vf", TB_ONLY, forwarding)),
        (415, lambda: api.forwarding("vf", OPEN, None, content=b"{}", headers={})),
        (400, lambda: api.forwarding("vf", OPEN, None, content=b"{", headers=as_json)),
    ]


def test_unreadable_bodies_and_unknown_targets_answer_their_error_and_store_nothing(
    api: Api,
) -> None:
    first = api.book("vf", pledge_body(100))["id"]
    before = api.fresh_stats("vf")
    for status_code, send in bad_requests(api):
        assert_error(send(), status_code)
    # Nothing was stored: the next id is still free, and the next valid pledge takes it.
    assert_error(api.status("vf", "donation_pledges", first + 1), 404)
    assert_error(api.status("vf", "forwarding_requests", first + 1), 404)
    assert api.ledger_stats("vf") == before
    second = api.book("vf", pledge_body(100))
    assert second["id"] == first + 1
    expected = with_delta(
        before,
        donated_amount_in_cents=100,
        open_amount_in_cents=-100,
        client_donated_amount_in_cents=100,
        client_donations_count=1,
    )
    assert api.stats_become("vf", expected) == expected


def test_a_project_outside_the_clients_projects_is_404_like_an_unknown_one(api: Api) -> None:
    reference = unique()
    forwarding = {"amount_in_cents": 1, "client_reference": reference}
    for project in (TB_ONLY, 987_654):
        for response in (
            api.pledge("vf", pledge_body(reference=reference), project=project),
            api.forwarding("vf", project, forwarding),
        ):
            body = assert_error(response, 404)
            assert body["message"] == f"Couldn't find Project with id={project}"
    # The refused requests left the reference free; tb may pledge to its own project 6.
    assert api.book("vf", pledge_body(reference=reference))["state"] == "confirmed"
    assert api.book("tb", pledge_body(reference=reference), TB_ONLY)["state"] == "confirmed"


def test_a_body_that_is_not_an_object_names_the_body(api: Api) -> None:
    de = assert_error(api.pledge("vf", [1, 2], locale="de"), 422)
    en = assert_error(api.pledge("vf", 42, locale="en"), 422)
    assert de["errors"] == {"body": ["muss ein JSON-Objekt sein"]}
    assert en["errors"] == {"body": ["must be a JSON object"]}


def test_status_of_unknown_requests_is_404(api: Api) -> None:
    assert_error(api.status("vf", "donation_pledges", 10**9), 404)
    assert_error(api.status("vf", "donation_pledges", "abc"), 404)
    assert_error(api.status("vf", "donation_pledges", "\u00b2"), 404)
    assert_error(api.status("vf", "donation_pledges", "\u0661"), 404)  # not pledge 1
    assert_error(api.status("vf", "donation_pledges", 2**64), 404)
    assert_error(api.status("vf", "forwarding_requests", 10**9), 404)
    pledge = api.book("vf", pledge_body())["id"]
    # A pledge is not a forwarding request.
    assert_error(api.status("vf", "forwarding_requests", pledge), 404)
    assert api.status("vf", "donation_pledges", pledge).status_code == 200


# --- accepted requests and their outcomes --------------------------------------------------


def donated(amount: int, **more: int) -> dict[str, int]:
    """The deltas of a confirmed client donation of `amount` to a project of the client."""
    return {
        "donated_amount_in_cents": amount,
        "open_amount_in_cents": -amount,
        "client_donated_amount_in_cents": amount,
        "client_donations_count": 1,
        **more,
    }


@pytest.mark.parametrize("locale", ["de", "en"])
def test_a_pledge_is_accepted_and_confirmed_and_counted(api: Api, locale: str) -> None:
    before = api.fresh_stats("vf")
    response = api.pledge("vf", pledge_body(1234), locale=locale)
    request_id = accepted_id(response, api, "vf", "donation_pledges", locale)
    status = api.settled("vf", "donation_pledges", request_id, locale)
    assert list(status)[: len(STATUS_KEYS)] == STATUS_KEYS
    assert status["id"] == request_id
    assert status["state"] == "confirmed"
    assert status["failure_code"] is None and status["failure_reason"] is None
    assert status["failed_at"] is None
    assert status["created_at"] <= status["confirmed_at"] == status["updated_at"]
    # The location link is the status endpoint.
    linked = api.http.get(
        response.json()["links"][0]["href"], auth=api.credentials["vf"], timeout=10
    )
    assert linked.json() == status
    expected = with_delta(before, **donated(1234))
    assert api.stats_become("vf", expected) == expected


def test_statistics_reflect_a_processed_pledge_within_one_second(api: Api) -> None:
    before = api.fresh_stats("tb")  # and cached by the server from now on
    assert api.book("tb", pledge_body(777))["state"] == "confirmed"
    confirmed_seen = time.monotonic()
    expected = with_delta(before, **donated(777))
    while api.stats("tb") != expected and time.monotonic() - confirmed_seen < 1.0:
        time.sleep(0.02)
    # Fresh within 1 s of the booking (the server polls versions every 0.1 s here).
    assert api.stats("tb") == expected


def test_matching_applies_to_pledges(api: Api) -> None:
    before = api.fresh_stats("vf")
    assert api.book("vf", pledge_body(2000), MATCHED)["state"] == "confirmed"
    expected = with_delta(
        before, **donated(2000, donated_amount_in_cents=2500, open_amount_in_cents=-2500)
    )
    expected["client_matched_amount_in_cents"] += 500
    assert api.stats_become("vf", expected) == expected


@pytest.mark.parametrize("project", [CLOSED, PROHIBITED])
def test_a_pledge_to_a_project_that_takes_no_donations_goes_to_the_pool(
    api: Api, project: int
) -> None:
    before = api.fresh_stats("vf")
    assert api.book("vf", pledge_body(3000), project)["state"] == "confirmed"
    expected = with_delta(
        before,
        pool_balance_in_cents=3000,
        client_donated_amount_in_cents=3000,
        client_donations_count=1,
    )
    assert api.stats_become("vf", expected) == expected


def test_a_pool_pledge_raises_the_pool_balance(api: Api) -> None:
    before = api.fresh_stats("vf")
    assert api.book("vf", pledge_body(4100), None)["state"] == "confirmed"
    expected = with_delta(
        before,
        pool_balance_in_cents=4100,
        client_donated_amount_in_cents=4100,
        client_donations_count=1,
    )
    assert api.stats_become("vf", expected) == expected


@pytest.mark.parametrize(("project", "locale"), [(CLOSED, "en"), (None, "de")])
def test_pledges_that_need_a_pool_fail_for_a_client_without_one(
    api: Api, project: int | None, locale: str
) -> None:
    before = api.fresh_stats("acme")
    status = api.book("acme", pledge_body(500), project, locale)
    assert status["state"] == "failed"
    assert status["failure_code"] == "pool_missing"
    assert status["failure_reason"] == (
        "The client has no pool." if locale == "en" else "Der Kunde hat keinen Pool."
    )
    assert status["confirmed_at"] is None
    assert status["created_at"] <= status["failed_at"] == status["updated_at"]
    assert api.ledger_stats("acme") == before


def forward(api: Api, client: str, project: int, amount: int) -> dict[str, Any]:
    body = {"amount_in_cents": amount, "client_reference": unique("fw"), "tracking_via": "api"}
    response = api.forwarding(client, project, body, locale="en")
    request_id = accepted_id(response, api, client, "forwarding_requests", "en")
    return api.settled(client, "forwarding_requests", request_id, "en")


def test_a_forwarding_moves_money_from_the_pool_to_the_project(api: Api) -> None:
    assert api.book("vf", pledge_body(9000), None)["state"] == "confirmed"
    before = api.fresh_stats("vf")
    status = forward(api, "vf", FORWARD_TARGET, 8000)
    assert status["state"] == "confirmed"
    assert status["failure_code"] is None and status["failure_reason"] is None
    expected = with_delta(
        before,
        pool_balance_in_cents=-8000,
        donated_amount_in_cents=8000,
        open_amount_in_cents=-8000,
    )
    assert api.stats_become("vf", expected) == expected


_NO_POOL = ("The client has no pool.", "Der Kunde hat keinen Pool.")
_EMPTY = (
    "The client pool's balance is lower than the amount.",
    "Das Guthaben des Pools ist kleiner als der Betrag.",
)
_PROHIBITED = ("The project does not accept donations.", "Das Projekt nimmt keine Spenden an.")


@pytest.mark.parametrize(
    ("client", "project", "amount", "code", "reasons"),
    [
        ("vf", FORWARD_TARGET, 10**11, "pool_empty", _EMPTY),
        ("vf", PROHIBITED, 1, "receiver_prohibited_from_receiving_donations", _PROHIBITED),
        ("vf", CLOSED, 1, "receiver_prohibited_from_receiving_donations", _PROHIBITED),
        ("acme", FORWARD_TARGET, 1, "pool_missing", _NO_POOL),
    ],
)
def test_forwardings_fail_with_the_codes_of_section_4_4(
    api: Api, client: str, project: int, amount: int, code: str, reasons: tuple[str, str]
) -> None:
    before = api.fresh_stats(client)
    status = forward(api, client, project, amount)
    assert (status["state"], status["failure_code"]) == ("failed", code)
    assert status["failure_reason"] == reasons[0]
    german = api.status(client, "forwarding_requests", status["id"], locale="de").json()
    assert (german["failure_code"], german["failure_reason"]) == (code, reasons[1])
    assert api.ledger_stats(client) == before


def test_a_reference_of_a_pledge_reused_by_a_forwarding_is_a_conflict(api: Api) -> None:
    reference = unique()
    pledged = api.book("vf", pledge_body(reference=reference))
    body = {"amount_in_cents": 1, "client_reference": reference}
    for locale in ("en", "de"):
        response = api.forwarding("vf", FORWARD_TARGET, body, locale=locale)
        href = api.url("vf", f"donation_pledges/{pledged['id']}.json", locale)
        assert_platform_error(response, 409, links=[{"rel": "location", "href": href}])


def test_the_same_reference_of_two_clients_books_two_donations(api: Api) -> None:
    reference = unique()
    before = {c: api.fresh_stats(c) for c in ("vf", "tb")}
    vf, tb = (api.book(c, pledge_body(100, reference)) for c in ("vf", "tb"))
    assert vf["id"] != tb["id"]
    assert vf["state"] == tb["state"] == "confirmed"
    for client in ("vf", "tb"):
        # Both clients have project OPEN, so each sees both donations in its project figures.
        expected = with_delta(
            before[client], **donated(100, donated_amount_in_cents=200, open_amount_in_cents=-200)
        )
        assert api.stats_become(client, expected) == expected


def test_a_reference_already_booked_by_an_import_fails_the_pledge(api: Api) -> None:
    reference = unique("imp")
    imported = {
        "event": "donation",
        "token": unique("tok"),
        "channel": "client",
        "client_id": "vf",
        "client_reference": reference,
        "receiver": {"type": "project", "id": OPEN},
        "amount_in_cents": 100,
    }
    post_events(api.base_url, [imported])
    before = api.fresh_stats("vf")
    status = api.book("vf", pledge_body(100, reference), locale="en")
    assert status["state"] == "failed"
    assert status["failure_code"] == "client_reference_taken"
    assert status["failure_reason"] == "The client_reference is already used by another booking."
    assert api.ledger_stats("vf") == before


# --- authentication and scope ----------------------------------------------------


def assert_unauthenticated(response: httpx.Response) -> None:
    assert_error(response, 401)
    assert response.headers["www-authenticate"].startswith("Basic")


def test_requests_without_or_with_wrong_credentials_are_401(api: Api) -> None:
    url = api.url("vf", f"projects/{OPEN}/donation_pledges.json")
    user, password = api.credentials["vf"]
    before = api.fresh_stats("vf")
    assert_unauthenticated(api.http.post(url, json=pledge_body(), timeout=10))
    assert_unauthenticated(api.http.get(api.url("vf", "donation_pledges/1.json"), timeout=10))
    assert_unauthenticated(api.pledge("vf", pledge_body(), auth=(user, password + "x")))
    assert_unauthenticated(api.pledge("vf", pledge_body(), auth=("nobody", password)))
    assert_unauthenticated(api.status("vf", "donation_pledges", 1, auth=(user, "")))
    garbage = {"authorization": "Basic !!!not-base64!!!"}
    assert_unauthenticated(api.http.post(url, json=pledge_body(), headers=garbage, timeout=10))
    assert api.ledger_stats("vf") == before


def test_the_admin_token_is_no_client_credential(api: Api) -> None:
    bearer = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    url = api.url("vf", f"projects/{OPEN}/donation_pledges.json")
    assert_unauthenticated(api.http.post(url, json=pledge_body(), headers=bearer, timeout=10))
    assert_unauthenticated(api.pledge("vf", pledge_body(), auth=("vf", ADMIN_TOKEN)))
    assert_unauthenticated(api.pledge("vf", pledge_body(), auth=("admin", ADMIN_TOKEN)))
    status_url = api.url("vf", "donation_pledges/1.json")
    assert_unauthenticated(api.http.get(status_url, headers=bearer, timeout=10))


def test_client_credentials_are_no_admin_token(api: Api) -> None:
    user, password = api.credentials["vf"]
    event = b'{"event": "client", "id": "intruder", "name": "X"}\n'
    ndjson = {"content-type": "application/x-ndjson"}
    for auth, headers in (
        ((user, password), ndjson),
        (None, {**ndjson, "authorization": f"Bearer {password}"}),
    ):
        response = api.http.post(
            f"{api.base_url}/admin/events", content=event, auth=auth, headers=headers, timeout=10
        )
        assert_error(response, 401)
    assert (
        api.http.get(api.url("intruder", "project_statistics.json"), timeout=10).status_code == 404
    )


def test_another_clients_url_or_request_is_404(api: Api) -> None:
    vf_pledge = api.book("vf", pledge_body())["id"]
    before = api.fresh_stats("vf")
    acme = api.credentials["acme"]
    forwarding = {"amount_in_cents": 1, "client_reference": unique()}
    # acme's valid credentials on vf's URLs: to acme these resources do not exist.
    assert_error(api.pledge("vf", pledge_body(), auth=acme), 404)
    assert_error(api.pledge("vf", pledge_body(), None, auth=acme), 404)
    assert_error(api.forwarding("vf", OPEN, forwarding, auth=acme), 404)
    assert_error(api.status("vf", "donation_pledges", vf_pledge, auth=acme), 404)
    # ...and vf's pledge id on acme's own URL is not acme's.
    assert_error(api.status("acme", "donation_pledges", vf_pledge), 404)
    assert api.status("vf", "donation_pledges", vf_pledge).status_code == 200
    assert api.ledger_stats("vf") == before


def test_the_client_permalink_in_the_url_is_case_insensitive(api: Api) -> None:
    response = api.pledge("VF", pledge_body(), auth=api.credentials["vf"])
    request_id = accepted_id(response, api, "vf", "donation_pledges")
    found = api.status("Vf", "donation_pledges", request_id, auth=api.credentials["vf"])
    assert found.status_code == 200
    assert api.settled("vf", "donation_pledges", request_id)["state"] == "confirmed"


# --- new credentials (the pending state without a worker: tests/reliability/test_worker_crash.py)


def test_new_credentials_invalidate_the_old_password(api: Api) -> None:
    old = api.credentials["renewed"]
    first = api.book("renewed", pledge_body(), None, auth=old)  # the old password is verified
    assert first["state"] == "confirmed"
    command = [sys.executable, "-m", "clientstats", "client", "credentials"]
    env = server_env(api.database_url)
    # Meanwhile, credentials for an unknown client are refused.
    unknown = subprocess.Popen(
        [*command, "nobody"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    new = issue_credentials(api.database_url, "renewed")["renewed"]
    assert new[0] == old[0] == "renewed"
    assert new[1] != old[1]
    assert_unauthenticated(api.pledge("renewed", pledge_body(), None, auth=old))
    assert_unauthenticated(api.status("renewed", "donation_pledges", first["id"], auth=old))
    assert api.book("renewed", pledge_body(), None, auth=new)["state"] == "confirmed"
    out, err = unknown.communicate(timeout=120)
    assert (unknown.returncode, out) == (1, b"")
    assert err == b"clientstats: Couldn't find Client with permalink=nobody\n"
