"""POST /admin/events over real HTTP: token, content type, line errors, idempotency."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.api.conftest import (
    JSON_UTF8,
    NDJSON,
    assert_error,
    donation,
    get_stats,
    http,
    ndjson,
    new_client_events,
    post_events,
    unique_permalink,
)
from tests.conftest import ADMIN_TOKEN, RunningServer


def ok_summary(lines: int, applied: int, unchanged: int = 0) -> dict[str, Any]:
    return {
        "status": "ok",
        "status_code": 200,
        "lines": lines,
        "applied": applied,
        "unchanged": unchanged,
        "deferred": 0,
        "failed": 0,
        "rejected": 0,
        "blank": 0,
        "links": [],
    }


def figures(server: RunningServer, client: str) -> dict[str, Any]:
    response = get_stats(server.base_url, client)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def fresh_client(server: RunningServer, requested: int = 100_000) -> tuple[str, int]:
    """A new client with one project of one need, created through the endpoint."""
    permalink = unique_permalink("adm")
    events = new_client_events(permalink, requested=requested, pool=True)
    response = post_events(server.base_url, events)
    assert response.status_code == 200, response.text
    return permalink, events[1]["id"]


# --- authentication and content type -------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer wrong-token",
        f"Bearer {ADMIN_TOKEN[:-1]}",
        f"Bearer {ADMIN_TOKEN}x",
        f"Basic {ADMIN_TOKEN}",
        f"Token {ADMIN_TOKEN}",
        ADMIN_TOKEN,
    ],
)
def test_missing_or_wrong_token_is_401_and_applies_nothing(
    seeded_server: RunningServer, authorization: str | None
) -> None:
    permalink = unique_permalink("unauth")
    headers = {"content-type": NDJSON}
    if authorization is not None:
        headers["authorization"] = authorization
    body = ndjson([{"event": "client", "id": permalink, "name": "X"}])
    response = http().post(f"{seeded_server.base_url}/admin/events", content=body, headers=headers)
    assert_error(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer ")
    assert get_stats(seeded_server.base_url, permalink).status_code == 404


def test_the_auth_scheme_is_case_insensitive(seeded_server: RunningServer) -> None:
    permalink = unique_permalink("scheme")
    body = ndjson([{"event": "client", "id": permalink, "name": "X"}])
    headers = {"content-type": NDJSON, "authorization": f"bearer {ADMIN_TOKEN}"}
    response = http().post(f"{seeded_server.base_url}/admin/events", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert get_stats(seeded_server.base_url, permalink).status_code == 200


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/json", "application/x-www-form-urlencoded", "", "ndjson"],
)
def test_wrong_content_type_is_415_and_applies_nothing(
    seeded_server: RunningServer, content_type: str
) -> None:
    permalink = unique_permalink("ctype")
    events = [{"event": "client", "id": permalink, "name": "X"}]
    response = post_events(seeded_server.base_url, events, content_type=content_type)
    assert_error(response, 415)
    assert get_stats(seeded_server.base_url, permalink).status_code == 404


def test_a_wrong_token_is_reported_before_a_wrong_content_type(
    seeded_server: RunningServer,
) -> None:
    response = post_events(seeded_server.base_url, b"x", token="nope", content_type="text/plain")
    assert_error(response, 401)


@pytest.mark.parametrize(
    "content_type", ["application/x-ndjson; charset=utf-8", "Application/X-NDJSON"]
)
def test_ndjson_with_parameters_or_other_case_is_accepted(
    seeded_server: RunningServer, content_type: str
) -> None:
    permalink = unique_permalink("ctype")
    events = [{"event": "client", "id": permalink, "name": "X"}]
    response = post_events(seeded_server.base_url, events, content_type=content_type)
    assert response.status_code == 200, response.text


# --- applying events -----------------------------------------------------------------------


def test_a_good_body_is_200_with_its_summary(seeded_server: RunningServer) -> None:
    permalink = unique_permalink("good")
    events = new_client_events(permalink, requested=10_000)
    project = events[1]["id"]
    events.append(donation(f"{permalink}-1", project, 2500))
    response = post_events(seeded_server.base_url, events)
    assert response.status_code == 200
    assert response.headers["content-type"] == JSON_UTF8
    assert response.json() == ok_summary(lines=5, applied=5)
    body = figures(seeded_server, permalink)
    assert (body["donated_amount_in_cents"], body["open_amount_in_cents"]) == (2500, 7500)


def test_blank_lines_and_early_revocations_are_counted_and_add_up(
    seeded_server: RunningServer,
) -> None:
    permalink = unique_permalink("early")
    events = new_client_events(permalink, requested=10_000)
    project = events[1]["id"]
    lines = [
        ndjson(events),  # 1-4
        b"\n",  # 5: blank
        ndjson([{"event": "revocation", "token": f"{permalink}-1"}]),  # 6: kept
        b"  \r\n",  # 7: blank
        ndjson([donation(f"{permalink}-1", project, 2500)]),  # 8: booked and revoked at once
        ndjson([donation(f"{permalink}-2", project, 700)]),  # 9
    ]
    response = post_events(seeded_server.base_url, b"".join(lines))
    assert response.status_code == 200, response.text
    summary = response.json()
    assert summary == {**ok_summary(lines=9, applied=6), "deferred": 1, "blank": 2}
    counts = ("applied", "unchanged", "deferred", "failed", "rejected", "blank")
    assert sum(summary[key] for key in counts) == summary["lines"]
    assert figures(seeded_server, permalink)["donated_amount_in_cents"] == 700


def test_an_empty_body_is_200_with_nothing_applied(seeded_server: RunningServer) -> None:
    response = post_events(seeded_server.base_url, b"")
    assert response.status_code == 200
    assert response.json() == ok_summary(lines=0, applied=0)


def test_bad_lines_are_422_by_line_number_and_every_good_line_is_applied(
    seeded_server: RunningServer,
) -> None:
    permalink, project = fresh_client(seeded_server)
    too_much = {
        "event": "forwarding",
        "token": f"{permalink}-f",
        "client_id": permalink,
        "project_id": project,
        "amount_in_cents": 99_000,
    }
    lines = [
        ndjson([donation(f"{permalink}-a", project, 1000)]),  # 1
        b"\n",  # 2: blank, skipped but counted
        b"{not json\n",  # 3
        ndjson([donation(f"{permalink}-b", project, 0)]),  # 4: amount must be >= 1
        ndjson([donation(f"{permalink}-c", project, 2000, "client", client_id=permalink)]),  # 5
        ndjson([{"event": "revocation", "token": f"{permalink}-never"}]),  # 6: kept
        ndjson([donation(f"{permalink}-d", 987_654_321, 500)]),  # 7: unknown project
        ndjson([too_much]),  # 8: the pool is empty
        ndjson([donation(f"{permalink}-a", project, 1001)]),  # 9: token reused, other amount
        ndjson([{"event": "revocation", "token": f"{permalink}-c"}]),  # 10
        ndjson([donation(f"{permalink}-e", project, 300, "external")])[:-1],  # 11: no newline
    ]
    response = post_events(seeded_server.base_url, b"".join(lines))
    error = assert_error(response, 422)
    assert sorted(error["errors"]) == sorted(f"line {n}" for n in (3, 4, 7, 8, 9))
    assert "pool_empty" in error["errors"]["line 8"][0]
    assert "amount_in_cents" in error["errors"]["line 4"][0]
    body = figures(seeded_server, permalink)
    assert body["donated_amount_in_cents"] == 1000 + 300
    assert body["client_donated_amount_in_cents"] == 0
    assert body["pool_balance_in_cents"] == 0


def test_a_line_that_is_not_utf8_is_rejected_by_itself_in_plain_words(
    seeded_server: RunningServer,
) -> None:
    permalink, project = fresh_client(seeded_server)
    lines = [
        ndjson([donation(f"{permalink}-a", project, 1000)]),  # 1
        b'{"event": "client", "id": "' + permalink.encode() + b'", "name": "M\xfcller"}\n',  # 2
        b"\xff\xfe{\x00}\x00\n",  # 3: UTF-16
        ndjson([donation(f"{permalink}-b", project, 500)]),  # 4
    ]
    error = assert_error(post_events(seeded_server.base_url, b"".join(lines)), 422)
    at = len(f'{{"event": "client", "id": "{permalink}", "name": "M') + 1
    assert error["errors"] == {
        "line 2": [f"line: is not valid UTF-8 text (byte {at} of the line)"],
        "line 3": ["line: is not valid UTF-8 text (byte 1 of the line)"],
    }
    assert figures(seeded_server, permalink)["donated_amount_in_cents"] == 1500


def test_the_same_body_twice_changes_nothing_the_second_time(
    seeded_server: RunningServer,
) -> None:
    permalink = unique_permalink("twice")
    events = new_client_events(permalink, requested=50_000, pool=True)
    project = events[1]["id"]
    events += [
        donation(f"{permalink}-1", project, 1500, "client", client_id=permalink),
        {
            "event": "donation",
            "token": f"{permalink}-2",
            "channel": "offline",
            "receiver": {"type": "pool", "client_id": permalink},
            "amount_in_cents": 5000,
        },
        {
            "event": "forwarding",
            "token": f"{permalink}-3",
            "client_id": permalink,
            "project_id": project,
            "amount_in_cents": 2000,
        },
        {"event": "revocation", "token": f"{permalink}-1"},
    ]
    body = ndjson(events)
    first = post_events(seeded_server.base_url, body)
    assert first.json() == ok_summary(lines=len(events), applied=len(events))
    before = get_stats(seeded_server.base_url, permalink)
    second = post_events(seeded_server.base_url, body)
    assert second.status_code == 200
    assert second.json() == ok_summary(lines=len(events), applied=0, unchanged=len(events))
    after = get_stats(seeded_server.base_url, permalink)
    assert after.content == before.content
    assert after.headers["etag"] == before.headers["etag"]
    assert after.json()["pool_balance_in_cents"] == 3000


def test_line_numbers_stay_right_across_batches_and_chunks(
    configured_server: RunningServer,
) -> None:
    """The configured server applies 3 lines per transaction; the body arrives in odd chunks."""
    permalink, project = fresh_client(configured_server, requested=1_000_000)
    lines = [ndjson([donation(f"{permalink}-{n}", project, n)]) for n in range(1, 21)]
    bad = {4, 9, 10, 17}
    for n in bad:
        lines[n - 1] = b'{"event": "donation", "token": "x"}\r\n'
    body = b"".join(lines).replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n")

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 37):
            yield body[start : start + 37]

    response = http().post(
        f"{configured_server.base_url}/admin/events",
        content=chunks(),
        headers={"content-type": NDJSON, "authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    error = assert_error(response, 422, debug=True)
    assert sorted(error["errors"]) == sorted(f"line {n}" for n in bad)
    donated = sum(n for n in range(1, 21) if n not in bad)
    assert figures(configured_server, permalink)["donated_amount_in_cents"] == donated


def test_a_client_donation_to_a_closed_project_goes_to_the_pool(
    seeded_server: RunningServer,
) -> None:
    permalink, project = fresh_client(seeded_server)
    events = [
        {"event": "project", "id": project, "donations_prohibited": True},
        donation(f"{permalink}-r", project, 4200, "client", client_id=permalink),
    ]
    response = post_events(seeded_server.base_url, events)
    assert response.json() == ok_summary(lines=2, applied=2)
    body = figures(seeded_server, permalink)
    assert body["pool_balance_in_cents"] == 4200
    assert body["donated_amount_in_cents"] == 0
    assert (body["client_donated_amount_in_cents"], body["client_donations_count"]) == (4200, 1)
