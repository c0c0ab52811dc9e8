"""Every list's totals equal the statistics' figures and the reference book's, for every client."""

from __future__ import annotations

from collections import defaultdict

import pytest

from clientstats.domain.ledger import Need
from clientstats.domain.list_figures import need_figures, project_figures_from_ledger
from tests.api.conftest import REFERENCE, SEED_CLIENTS, get_stats
from tests.api.lists_helpers import api, href, ok, walk
from tests.conftest import RunningServer

NEEDS: dict[int, list[Need]] = defaultdict(list)
for _need in REFERENCE.needs.values():
    NEEDS[_need.project_id].append(_need)
TOTALS = REFERENCE.totals()


@pytest.mark.parametrize("client", SEED_CLIENTS)
def test_projects_add_up_to_the_statistics_and_match_the_reference(
    seeded_server: RunningServer, client: str
) -> None:
    stats = get_stats(seeded_server.base_url, client).json()
    projects, envelopes = walk(api(seeded_server, f"/clients/{client}/projects.json?per_page=2"))
    first = envelopes[0]
    assert first["total_entries"] == stats["projects_count"] == len(projects)
    assert first["requested_amount_in_cents"] == stats["requested_amount_in_cents"]
    assert first["open_amount_in_cents"] == stats["open_amount_in_cents"]
    assert first["donated_amount_in_cents"] == stats["donated_amount_in_cents"]
    member_ids = sorted(p for (c, p) in REFERENCE.members if c == client)
    assert [p["id"] for p in projects] == member_ids
    for project in projects:
        expected = project_figures_from_ledger(
            TOTALS, project_id=project["id"], client_id=client, needs=NEEDS[project["id"]]
        )
        assert project["requested_amount_in_cents"] == expected.requested_in_cents
        assert project["open_amount_in_cents"] == expected.open_in_cents
        assert project["donated_amount_in_cents"] == expected.donated_in_cents
        assert project["donations_count"] == expected.donations_count
        assert project["matched_amount_in_cents"] == expected.matched_in_cents
        assert project["client_donated_amount_in_cents"] == expected.client_donated_in_cents
        assert project["progress_percentage"] == expected.progress_percentage
        assert project["completed_need_count"] == expected.completed_need_count
        assert project["incomplete_need_count"] == expected.incomplete_need_count
        assert (project["last_donation_at"] is None) == (expected.last_donation_at is None)


@pytest.mark.parametrize("client", SEED_CLIENTS)
def test_each_projects_needs_add_up_to_its_open_and_requested_amounts(
    seeded_server: RunningServer, client: str
) -> None:
    projects, _ = walk(api(seeded_server, f"/clients/{client}/projects?per_page=200"))
    for project in projects:
        needs, envelopes = walk(href(project, "needs") + "?per_page=1")  # type: ignore[operator]
        assert sum(n["open_amount_in_cents"] for n in needs) == project["open_amount_in_cents"]
        assert (
            sum(n["requested_amount_in_cents"] for n in needs)
            == (project["requested_amount_in_cents"])
        )
        assert envelopes[0]["total_entries"] == len(needs)
        expected = need_figures(NEEDS[project["id"]], TOTALS.project_money[project["id"]])
        assert [(n["id"], n["donated_amount_in_cents"]) for n in needs] == [
            (f.need.id, f.donated_in_cents) for f in expected
        ]


@pytest.mark.parametrize("client", SEED_CLIENTS)
def test_funds_and_pool_add_up_to_the_statistics(seeded_server: RunningServer, client: str) -> None:
    stats = get_stats(seeded_server.base_url, client).json()
    funds, _ = walk(api(seeded_server, f"/clients/{client}/matching_funds"))
    assert (
        sum(f["matched_amount_in_cents"] for f in funds) == stats["client_matched_amount_in_cents"]
    )
    for fund in funds:
        assert fund["matched_amount_in_cents"] == TOTALS.fund_matched[fund["id"]]
        assert fund["matched_donations_count"] == TOTALS.fund_matched_count[fund["id"]]
        assert fund["remaining_amount_in_cents"] == (
            fund["provided_amount_in_cents"] - fund["matched_amount_in_cents"]
        )
    hub = ok(api(seeded_server, f"/clients/{client}"))
    if not REFERENCE.clients[client].has_pool:
        assert href(hub, "pool") is None
        assert get_status(api(seeded_server, f"/clients/{client}/pool")) == 404
        return
    pool = ok(href(hub, "pool"))  # type: ignore[arg-type]
    assert pool["balance_in_cents"] == stats["pool_balance_in_cents"]
    assert pool["balance_in_cents"] == (
        pool["donated_amount_in_cents"] - pool["forwarded_amount_in_cents"]
    )
    assert pool["donated_amount_in_cents"] == TOTALS.pool_in[client]
    assert pool["donations_count"] == TOTALS.pool_in_count[client]
    forwardings, envelopes = walk(href(pool, "forwardings") + "?per_page=3")  # type: ignore[operator]
    assert envelopes[0]["total_amount_in_cents"] == pool["forwarded_amount_in_cents"]
    assert sum(f["amount_in_cents"] for f in forwardings) == pool["forwarded_amount_in_cents"]
    assert len(forwardings) == pool["forwardings_count"] == TOTALS.pool_out_count[client]


def get_status(url: str) -> int:
    from tests.api.lists_helpers import get

    return get(url).status_code


def test_the_client_hub_links_what_the_client_has(seeded_server: RunningServer) -> None:
    base = api(seeded_server, "/clients/volksfreund")
    hub = ok(api(seeded_server, "/clients/Volksfreund.json"))
    assert {k: hub[k] for k in ("id", "name", "has_pool", "statistics_private")} == {
        "id": "volksfreund",
        "name": "Volksfreund",
        "has_pool": True,
        "statistics_private": False,
    }
    assert [(e["rel"], e["href"]) for e in hub["links"]] == [
        ("self", f"{base}.json"),
        ("project_statistics", f"{base}/project_statistics.json"),
        ("projects", f"{base}/projects.json"),
        ("client_donations", f"{base}/client_donations.json"),
        ("matching_funds", f"{base}/matching_funds.json"),
        ("pool", f"{base}/pool.json"),
        ("new_pool_donation_pledge", f"{base}/pool/donation_pledges.json"),
    ]
    acme = ok(api(seeded_server, "/clients/acme"))
    assert [e["rel"] for e in acme["links"]] == [
        "self",
        "project_statistics",
        "projects",
        "client_donations",
        "matching_funds",
    ]


ORDERS = ["id", "title", "progress_percentage", "open_amount", "donated_amount", "last_donation_at"]
SORT_FIELDS = {
    "id": "id",
    "title": "title",
    "progress_percentage": "progress_percentage",
    "open_amount": "open_amount_in_cents",
    "donated_amount": "donated_amount_in_cents",
    "last_donation_at": "last_donation_at",
}


@pytest.mark.parametrize("direction", ["ASC", "DESC"])
@pytest.mark.parametrize("key", ORDERS)
def test_walking_projects_in_any_order_returns_each_once_in_that_order(
    seeded_server: RunningServer, key: str, direction: str
) -> None:
    url = api(seeded_server, f"/clients/gen-a/projects?per_page=1&order={key}:{direction}")
    projects, envelopes = walk(url)
    ids = [p["id"] for p in projects]
    assert sorted(ids) == sorted(p for (c, p) in REFERENCE.members if c == "gen-a")
    assert len(ids) == len(set(ids)) == envelopes[0]["total_entries"]
    field = SORT_FIELDS[key]
    values = [("" if p[field] is None else p[field], p["id"]) for p in projects]
    if key != "title":  # the database's collation orders titles; the others compare exactly
        expected = sorted(values, key=lambda v: v[0], reverse=direction == "DESC")
        assert [v[0] for v in values] == [v[0] for v in expected]
    assert [e["current_page"] for e in envelopes] == list(range(1, len(envelopes) + 1))
