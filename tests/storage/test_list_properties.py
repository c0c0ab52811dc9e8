"""The drill-down lists of random ledgers agree with the reference book, on both databases.

Random streams (over-funded projects, needs added later, redirects, revocations, failed
forwardings, matching budgets running out) are imported; every client's lists, read as the
API reads them, must show the figures the in-memory book computes with the pure rules.
"""

from __future__ import annotations

from collections import defaultdict

from hypothesis import given, settings
from sqlalchemy import Engine

from clientstats.domain.ledger import Need
from clientstats.domain.list_figures import need_figures, project_figures_from_ledger
from clientstats.domain.list_query import ListQuery
from clientstats.domain.memory_book import MemoryBook
from clientstats.services import listing, money_listing
from clientstats.services.importing import import_lines
from clientstats.storage.database import read_transaction
from tests.storage.test_stored_book_properties import (
    SETTINGS,
    Databases,
    databases,
    reference_pass,
)
from tests.strategies import Line, event_streams, to_lines

__all__ = ["databases"]


def query(per_page: int = 200, *order: tuple[str, bool]) -> ListQuery:
    return ListQuery(page=1, per_page=per_page, facets=(), order=order or (("id", False),))


def walk_projects(engine: Engine, client_id: str) -> tuple[list[dict[str, object]], listing.Page]:
    """Every project through keyset pages of 2, and the first page (with the totals)."""
    items: list[dict[str, object]] = []
    after = None
    first = None
    with read_transaction(engine) as conn:
        client = listing.client_or_raise(conn, client_id)
        while True:
            page = listing.list_projects(conn, client, query(2), after)
            first = first or page
            items += page.items
            if page.last_keys is None:
                break
            after = page.last_keys
    assert first is not None
    return items, first


def assert_lists_agree(engine: Engine, book: MemoryBook) -> None:
    totals = book.totals()
    needs: dict[int, list[Need]] = defaultdict(list)
    for need in book.needs.values():
        needs[need.project_id].append(need)
    for client_id, client in book.clients.items():
        stats = book.statistics(client_id)
        projects, first = walk_projects(engine, client_id)
        assert first.total_entries == stats.projects_count == len(projects)
        assert first.totals["open_amount_in_cents"] == stats.open_amount_in_cents
        assert first.totals["requested_amount_in_cents"] == stats.requested_amount_in_cents
        assert [p["id"] for p in projects] == sorted(p for c, p in book.members if c == client_id)
        with read_transaction(engine) as conn:
            info = listing.client_or_raise(conn, client_id)
            for project in projects:
                pid = int(project["id"])  # type: ignore[call-overload]
                expected = project_figures_from_ledger(
                    totals, project_id=pid, client_id=client_id, needs=needs[pid]
                )
                assert project["open_amount_in_cents"] == expected.open_in_cents
                assert project["donated_amount_in_cents"] == expected.donated_in_cents
                assert project["donations_count"] == expected.donations_count
                assert project["matched_amount_in_cents"] == expected.matched_in_cents
                assert project["client_donated_amount_in_cents"] == expected.client_donated_in_cents
                assert project["completed_need_count"] == expected.completed_need_count
                assert project["progress_percentage"] == expected.progress_percentage
                assert (project["last_donation_at"] is None) == (expected.last_donation_at is None)
                listed = listing.list_needs(conn, pid, query(), None)
                fills = need_figures(needs[pid], totals.project_money.get(pid, 0))
                assert [(n["id"], n["open_amount_in_cents"]) for n in listed.items] == [
                    (f.need.id, f.open_in_cents) for f in fills
                ]
            donations = money_listing.list_client_donations(
                conn, info, query(200, ("created_at", True)), None
            )
            assert donations.total_entries == stats.client_donations_count
            assert donations.totals["total_amount_in_cents"] == stats.client_donated_amount_in_cents
            funds = listing.list_funds(conn, info, query(), None)
            assert funds.totals["matched_amount_in_cents"] == stats.client_matched_amount_in_cents
            for fund in funds.items:
                assert fund["matched_donations_count"] == totals.fund_matched_count.get(
                    fund["id"], 0
                )
            if client.has_pool:
                pool = money_listing.get_pool(info)
                assert pool["balance_in_cents"] == stats.pool_balance_in_cents
                assert pool["donations_count"] == totals.pool_in_count.get(client_id, 0)
                forwardings = money_listing.list_forwardings(
                    conn, info, query(200, ("created_at", True)), None
                )
                assert (
                    forwardings.totals["total_amount_in_cents"] == pool["forwarded_amount_in_cents"]
                )
                assert forwardings.total_entries == totals.pool_out_count.get(client_id, 0)


@settings(SETTINGS, max_examples=30)
@given(stream=event_streams())
def test_lists_of_random_ledgers_agree_with_the_reference_book(
    databases: Databases, stream: list[Line]
) -> None:
    lines = to_lines(stream)
    book = MemoryBook()
    with databases.fresh() as engine:
        reference_pass(book, lines)
        import_lines(engine, lines, batch_size=7)
        assert_lists_agree(engine, book)
