"""`GET /metrics` after a known sequence of requests, bookings and imports: exact counts."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import assert_error, ndjson, new_client_events, post_events, run_cli
from tests.api.sse import EventStream
from tests.conftest import ADMIN_TOKEN, RunningServer, fresh_database
from tests.reliability.tcp_proxy import OutputLog
from tests.scrape import STATISTICS, Samples, scrape, scrape_until, value

CLIENT = "metered"
STATS_PATH = f"/de/api_v4/clients/{CLIENT}/project_statistics.json"


@dataclass
class Metered:
    """A server on its own database, with the access log on, and its output."""

    server: RunningServer
    output: OutputLog
    database_url: str
    project: int

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def access_log(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.output.lines() if line.startswith("{")]


@pytest.fixture(scope="module")
def metered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Metered]:
    with fresh_database("sqlite", tmp_path_factory.mktemp("metrics")) as url:
        server = RunningServer(url, CLIENTSTATS_ACCESS_LOG="true")
        output = OutputLog(server.process.stdout)
        events = new_client_events(CLIENT, pool=True)
        try:
            assert post_events(server.base_url, events).status_code == 200
            yield Metered(server, output, url, events[1]["id"])
        finally:
            server.stop()


def responses(samples: Samples, route: str, status: int) -> float:
    return value(samples, "clientstats_http_requests_total", route=route, status=str(status))


def test_statistics_requests_are_counted_by_route_status_and_cache_level(
    metered: Metered,
) -> None:
    base = metered.base_url
    before = scrape(base)
    first = httpx.get(base + STATS_PATH)  # a miss: computed by the database
    assert first.status_code == 200
    for _ in range(3):  # hits
        assert httpx.get(base + STATS_PATH).status_code == 200
    etag = first.headers["etag"]
    not_modified = httpx.get(base + STATS_PATH, headers={"if-none-match": etag})  # a hit
    assert not_modified.status_code == 304
    unknown = httpx.get(
        f"{base}/de/api_v4/clients/nobody-{uuid.uuid4().hex[:6]}/project_statistics"
    )
    assert unknown.status_code == 404  # a miss the database cannot answer
    for path in ("/no/such/path", f"/no/such/path/{uuid.uuid4().hex}"):
        assert httpx.get(base + path).status_code == 404
    after = scrape(base)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert responses(after, STATISTICS, 200) - responses(before, STATISTICS, 200) == 4
    assert responses(after, STATISTICS, 304) - responses(before, STATISTICS, 304) == 1
    assert responses(after, STATISTICS, 404) - responses(before, STATISTICS, 404) == 1
    # Unknown paths share one label, whatever the path.
    assert responses(after, "unmatched", 404) - responses(before, "unmatched", 404) == 2
    assert delta("clientstats_statistics_cache_hits_total", level="process") == 4
    assert delta("clientstats_statistics_cache_misses_total", level="process") == 2
    assert delta("clientstats_statistics_cache_hits_total", level="database") == 1
    # Latency: one observation per response of the route, in the buckets and the count.
    count = "clientstats_http_request_duration_seconds_count"
    assert delta(count, route=STATISTICS) == 6
    inf = "clientstats_http_request_duration_seconds_bucket"
    assert delta(inf, route=STATISTICS, le="+Inf") == 6
    assert delta("clientstats_http_request_duration_seconds_sum", route=STATISTICS) > 0


def test_list_pages_from_the_page_cache_are_counted(metered: Metered) -> None:
    url = f"{metered.base_url}/de/api_v4/clients/{CLIENT}/projects"
    route = "/{locale}/api_v4/clients/{client_id}/projects"
    before = scrape(metered.base_url)
    first = httpx.get(url)  # computed, then kept in the page cache
    assert first.status_code == 200
    for _ in range(3):
        assert httpx.get(url).status_code == 200
    not_modified = httpx.get(url, headers={"if-none-match": first.headers["etag"]})
    assert not_modified.status_code == 304
    after = scrape(metered.base_url)
    hits = "clientstats_list_cache_hits_total"
    assert value(after, hits) - value(before, hits) == 4
    assert responses(after, route, 200) - responses(before, route, 200) == 4
    assert responses(after, route, 304) - responses(before, route, 304) == 1


def test_the_metrics_endpoint_counts_itself_once_answered(metered: Metered) -> None:
    first = scrape(metered.base_url)
    second = scrape(metered.base_url)
    # A scrape is counted when it has answered: the next one shows it.
    assert responses(second, "/metrics", 200) - responses(first, "/metrics", 200) == 1


def test_metrics_need_the_admin_token(metered: Metered) -> None:
    url = f"{metered.base_url}/metrics"
    missing = httpx.get(url)
    assert_error(missing, 401)
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert "clientstats_" not in missing.text
    wrong = httpx.get(url, headers={"authorization": f"Bearer {ADMIN_TOKEN}x"})
    assert_error(wrong, 401)
    basic = httpx.get(url, auth=("admin", ADMIN_TOKEN))
    assert_error(basic, 401)
    good = httpx.get(url, headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
    assert good.status_code == 200
    assert "clientstats_http_requests_total" in good.text


def _request(metered: Metered, kind: str, amount: int) -> int:
    username, password = _credentials(metered)
    body: dict[str, object] = {"amount_in_cents": amount, "client_reference": uuid.uuid4().hex}
    if kind == "pledge":
        path = "donation_pledges"
        body["validate_address"] = False
    else:
        path = "forwarding_requests"
    response = httpx.post(
        f"{metered.base_url}/de/api_v4/clients/{CLIENT}/projects/{metered.project}/{path}.json",
        json=body,
        auth=(username, password),
    )
    assert response.status_code == 202, response.text
    return int(response.json()["links"][0]["href"].rsplit("/", 1)[1].removesuffix(".json"))


_issued: dict[str, tuple[str, str]] = {}  # by database URL


def _credentials(metered: Metered) -> tuple[str, str]:
    if metered.database_url not in _issued:
        done = run_cli(metered.database_url, "client", "credentials", CLIENT)
        assert done.returncode == 0, done.stderr
        data = json.loads(done.stdout)
        _issued[metered.database_url] = (data["username"], data["password"])
    return _issued[metered.database_url]


def test_bookings_by_the_worker_are_counted_by_kind_and_outcome(metered: Metered) -> None:
    before = scrape(metered.base_url)
    name = "clientstats_bookings_total"
    confirmed_before = value(before, name, kind="pledge", outcome="confirmed")
    empty_before = value(before, name, kind="forwarding", outcome="pool_empty")
    for amount in (100, 200):
        _request(metered, "pledge", amount)
    # The pool holds nothing: the forwarding fails and moves no money.
    _request(metered, "forwarding", 10_000)
    after = scrape_until(
        metered.base_url,
        lambda s: (
            value(s, name, kind="pledge", outcome="confirmed") >= confirmed_before + 2
            and value(s, name, kind="forwarding", outcome="pool_empty") >= empty_before + 1
        ),
    )
    assert value(after, name, kind="pledge", outcome="confirmed") == confirmed_before + 2
    assert value(after, name, kind="forwarding", outcome="pool_empty") == empty_before + 1
    assert value(after, name, kind="forwarding", outcome="confirmed") == value(
        before, name, kind="forwarding", outcome="confirmed"
    )
    assert value(after, "clientstats_pending_requests") == 0
    assert value(after, "clientstats_pending_requests_oldest_age_seconds") == 0


def test_import_lines_are_counted_by_outcome(metered: Metered) -> None:
    name = "clientstats_import_lines_total"
    before = scrape(metered.base_url)
    good = new_client_events(f"imp-{uuid.uuid4().hex[:8]}")  # 4 lines
    body = ndjson(good) + b"not json\n" + b'{"event": "no_such_event"}\n' + b"\n"
    assert post_events(metered.base_url, body).status_code == 422
    assert post_events(metered.base_url, good).status_code == 200  # the same again
    after = scrape(metered.base_url)

    def delta(outcome: str) -> float:
        return value(after, name, outcome=outcome) - value(before, name, outcome=outcome)

    assert (delta("applied"), delta("rejected"), delta("blank"), delta("unchanged")) == (4, 2, 1, 4)
    assert delta("failed") == 0 and delta("deferred") == 0


def test_every_response_carries_a_request_id_and_the_access_log_has_it(
    metered: Metered,
) -> None:
    base = metered.base_url
    given = f"trace-{uuid.uuid4().hex}"
    hit = httpx.get(base + STATS_PATH, headers={"x-request-id": given})
    assert hit.status_code == 200 and hit.headers["x-request-id"] == given
    generated = [
        httpx.get(base + STATS_PATH, headers={"if-none-match": hit.headers["etag"]}),
        httpx.get(base + "/de/api_v4/clients/UPPER/project_statistics"),  # 404
        httpx.delete(base + STATS_PATH),  # 405
        httpx.get(base + "/nowhere"),
        httpx.get(base + "/metrics"),  # 401
        httpx.get(base + "/health/live"),
        # Too long, or not printable: replaced by a new id.
        httpx.get(base + "/health/live", headers={"x-request-id": "x" * 129}),
        httpx.get(base + "/health/live", headers={"x-request-id": "a b"}),
    ]
    assert [r.status_code for r in generated] == [304, 404, 405, 404, 401, 200, 200, 200]
    ids = [r.headers["x-request-id"] for r in generated]
    for request_id in ids:
        assert len(request_id) == 32 and uuid.UUID(hex=request_id).version == 4
    assert len(set(ids)) == len(ids)

    wanted = {given, *ids}
    lines = _wait_for_log(metered, wanted)
    by_id = {line["request_id"]: line for line in lines}
    assert set(by_id) >= wanted
    line = by_id[given]
    assert sorted(line) == sorted(
        ["time", "method", "path", "status", "duration_ms", "client", "request_id"]
    )
    assert (line["method"], line["path"], line["status"], line["client"]) == (
        "GET",
        STATS_PATH,
        200,
        CLIENT,
    )
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert isinstance(line["time"], str) and line["time"].endswith("Z")
    assert by_id[ids[1]]["client"] == "upper"  # permalinks match case-insensitively
    assert (by_id[ids[2]]["method"], by_id[ids[2]]["status"]) == ("DELETE", 405)
    assert (by_id[ids[3]]["client"], by_id[ids[3]]["status"]) == (None, 404)


def _wait_for_log(metered: Metered, wanted: set[str]) -> list[dict[str, object]]:

    deadline = time.monotonic() + 10
    while True:
        lines = metered.access_log()
        if wanted <= {line["request_id"] for line in lines} or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def test_no_access_log_by_default(tmp_path: Path) -> None:
    with fresh_database("sqlite", tmp_path) as url:
        server = RunningServer(url)
        output = OutputLog(server.process.stdout)
        try:
            response = httpx.get(f"{server.base_url}/health/live")
            assert response.headers["x-request-id"]
        finally:
            server.stop()
    assert not [line for line in output.lines() if line.startswith("{")]


def test_a_stream_works_with_the_access_log_on_and_is_logged_when_it_ends(
    metered: Metered,
) -> None:
    given = f"stream-{uuid.uuid4().hex}"
    url = f"{metered.base_url}/de/api_v4/clients/{CLIENT}/project_statistics/stream"
    with EventStream(url, headers={"x-request-id": given}) as stream:
        assert stream.response.status_code == 200
        assert stream.response.headers["x-request-id"] == given
        first = stream.block()
        while first is not None and not first.is_event:
            first = stream.block()
        assert first is not None and json.loads(first.fields["data"])["projects_count"] == 1
        # Open: not logged yet (the line is written when the response ends).
        assert given not in {line["request_id"] for line in metered.access_log()}
    lines = _wait_for_log(metered, {given})
    line = next(line for line in lines if line["request_id"] == given)
    assert (line["path"], line["status"], line["client"]) == (
        url.removeprefix(metered.base_url),
        200,
        CLIENT,
    )


def test_pending_requests_are_counted_with_the_age_of_the_oldest(tmp_path: Path) -> None:
    with fresh_database("sqlite", tmp_path) as url:
        server = RunningServer(url, CLIENTSTATS_WORKER_IN_PROCESS="false")  # nobody books
        try:
            events = new_client_events(CLIENT)
            assert post_events(server.base_url, events).status_code == 200
            waiting = Metered(server, OutputLog(None), url, events[1]["id"])
            stored_before = time.time()
            for amount in (100, 200, 300):
                _request(waiting, "pledge", amount)
            time.sleep(1.0)
            samples = scrape(server.base_url)
            waited = time.time() - stored_before
        finally:
            server.stop()
    assert value(samples, "clientstats_pending_requests") == 3
    age = value(samples, "clientstats_pending_requests_oldest_age_seconds")
    assert 1.0 <= age <= waited
