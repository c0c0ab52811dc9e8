"""Tests of the eight figures and need filling computed by the pure oracle."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clientstats.domain.events import EventInvalid, parse_event, parse_line
from clientstats.domain.ledger import BookingRejected, Channel, Donation, FailureCode, Need
from clientstats.domain.memory_book import MemoryBook
from clientstats.domain.stats import (
    RESPONSE_KEYS,
    LedgerTotals,
    Statistics,
    fill_needs,
)
from tests.strategies import (
    client_event,
    donation_event,
    event_streams,
    forwarding_event,
    fund_event,
    member_event,
    need_event,
    project_event,
    revocation_event,
    to_lines,
)

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def book_of(*events: dict[str, Any]) -> MemoryBook:
    book = MemoryBook()
    for event in events:
        outcome = book.apply(parse_event(event, now=NOW))
        assert not isinstance(outcome, BookingRejected), f"{event}: {outcome}"
    return book


def figures(book: MemoryBook, client_id: str) -> dict[str, object]:
    return book.statistics(client_id).as_response()


# --- need filling --------------------------------------------------------------


def fills(needs: list[Need], money: int) -> dict[int, tuple[int, int]]:
    return {f.need.id: (f.donated_in_cents, f.open_in_cents) for f in fill_needs(needs, money)}


NEEDS = [Need(30, 1, "c", 500), Need(10, 1, "a", 1_000), Need(20, 1, "b", 2_000)]


@pytest.mark.parametrize(
    ("money", "expected"),
    [
        (0, {10: (0, 1_000), 20: (0, 2_000), 30: (0, 500)}),
        (700, {10: (700, 300), 20: (0, 2_000), 30: (0, 500)}),
        (1_000, {10: (1_000, 0), 20: (0, 2_000), 30: (0, 500)}),
        (2_500, {10: (1_000, 0), 20: (1_500, 500), 30: (0, 500)}),
        (3_500, {10: (1_000, 0), 20: (2_000, 0), 30: (500, 0)}),
        (9_999, {10: (1_000, 0), 20: (2_000, 0), 30: (500, 0)}),  # over-funded
        (-50, {10: (0, 1_000), 20: (0, 2_000), 30: (0, 500)}),
    ],
)
def test_needs_are_filled_in_ascending_id_each_up_to_its_request(
    money: int, expected: dict[int, tuple[int, int]]
) -> None:
    assert fills(NEEDS, money) == expected
    assert [f.need.id for f in fill_needs(NEEDS, money)] == [10, 20, 30]


@given(
    requests=st.lists(st.integers(1, 10**11), max_size=8),
    money=st.integers(-(10**12), 10**13),
)
def test_open_is_the_requested_amount_beyond_the_money(requests: list[int], money: int) -> None:
    needs = [Need(index + 1, 1, "n", amount) for index, amount in enumerate(requests)]
    result = fill_needs(needs, money)
    requested = sum(requests)
    assert sum(f.open_in_cents for f in result) == max(0, requested - max(0, money))
    assert sum(f.donated_in_cents for f in result) == min(requested, max(0, money))
    assert all(
        f.donated_in_cents + f.open_in_cents == f.need.requested_amount_in_cents for f in result
    )


def ledger(*extra: dict[str, Any]) -> MemoryBook:
    return book_of(
        client_event("vf", pool=True),
        client_event("acme"),
        project_event(1),
        project_event(2),
        member_event("vf", 1),
        member_event("vf", 2),
        member_event("acme", 2),
        need_event(10, 1, 1_000),
        need_event(11, 1, 2_000),
        need_event(20, 2, 500),
        *extra,
    )


def test_over_funding_is_not_donated_and_a_later_need_is_filled_from_it() -> None:
    book = ledger(donation_event("d1", 4_000, project=1))
    assert figures(book, "vf") == {
        "donated_amount_in_cents": 3_000,
        "pool_balance_in_cents": 0,
        "open_amount_in_cents": 500,
        "requested_amount_in_cents": 3_500,
        "projects_count": 2,
        "client_donated_amount_in_cents": 0,
        "client_matched_amount_in_cents": 0,
        "client_donations_count": 0,
        "links": [],
    }
    book.apply(parse_event(need_event(12, 1, 1_500), now=NOW))
    after = book.statistics("vf")
    assert after.requested_amount_in_cents == 5_000
    assert after.donated_amount_in_cents == 4_000  # 1000 of the surplus went to need 12
    assert after.open_amount_in_cents == 1_000


def test_a_changed_request_refills_the_needs() -> None:
    book = ledger(donation_event("d1", 1_500, project=1))
    assert book.statistics("vf").open_amount_in_cents == 2_000
    book.apply(parse_event({"event": "need", "id": 10, "requested_amount_in_cents": 100}, now=NOW))
    figures_after = book.statistics("vf")
    assert figures_after.requested_amount_in_cents == 2_600
    assert figures_after.open_amount_in_cents == 600 + 500  # need 11 got 1400 of the 1500


def test_every_client_sees_the_figures_of_its_own_projects() -> None:
    book = ledger(donation_event("d1", 300, project=2))
    assert book.statistics("acme").requested_amount_in_cents == 500
    assert book.statistics("acme").donated_amount_in_cents == 300
    assert book.statistics("acme").projects_count == 1
    assert book.statistics("vf").donated_amount_in_cents == 300


def test_a_project_without_needs_counts_but_requests_nothing() -> None:
    book = ledger(project_event(3), member_event("acme", 3), donation_event("d1", 900, project=3))
    acme = book.statistics("acme")
    assert acme.projects_count == 2
    assert (acme.requested_amount_in_cents, acme.donated_amount_in_cents) == (500, 0)


# --- client figures ------------------------------------------------------------


def test_pool_balance_is_zero_for_a_client_without_a_pool() -> None:
    book = ledger(donation_event("d1", 900, channel="offline", pool="vf"))
    assert book.statistics("acme").pool_balance_in_cents == 0
    assert book.statistics("vf").pool_balance_in_cents == 900
    book.apply(parse_event({"event": "client", "id": "vf", "pool": False}, now=NOW))
    assert book.statistics("vf").pool_balance_in_cents == 0
    book.apply(parse_event({"event": "client", "id": "vf", "pool": True}, now=NOW))
    assert book.statistics("vf").pool_balance_in_cents == 900


def test_pool_money_is_neither_donated_nor_open() -> None:
    before = ledger().statistics("vf")
    after = ledger(donation_event("d1", 900, channel="offline", pool="vf")).statistics("vf")
    assert after.donated_amount_in_cents == before.donated_amount_in_cents
    assert after.open_amount_in_cents == before.open_amount_in_cents


def test_client_donated_counts_project_pool_and_redirected_client_donations() -> None:
    book = ledger(
        project_event(5, closed=True),
        donation_event("d1", 100, channel="client", client="vf", project=1),
        donation_event("d2", 200, channel="client", client="vf", pool="vf"),
        donation_event("d3", 400, channel="client", client="vf", project=5),  # redirected
        donation_event("d4", 800, channel="client", client="vf", project=2),
        donation_event("x1", 1_600, channel="offline", pool="vf"),
        donation_event("x2", 3_200, channel="platform", project=1),
        donation_event("x3", 6_400, channel="external", project=1),
        forwarding_event("x4", "vf", 1, 50),
    )
    vf = book.statistics("vf")
    assert vf.client_donated_amount_in_cents == 1_500
    assert vf.client_donations_count == 4
    assert vf.pool_balance_in_cents == 200 + 400 + 1_600 - 50
    assert book.statistics("acme").client_donated_amount_in_cents == 0


def test_client_donations_count_whatever_the_receivers_later_state() -> None:
    book = ledger(
        donation_event("d1", 100, channel="client", client="vf", project=1),
        member_event("vf", 1, member=False),
        {"event": "project", "id": 1, "closed": True},
    )
    vf = book.statistics("vf")
    assert (vf.client_donated_amount_in_cents, vf.client_donations_count) == (100, 1)
    assert vf.projects_count == 1


def test_a_revoked_client_donation_is_not_counted() -> None:
    book = ledger(
        donation_event("d1", 100, channel="client", client="vf", project=1),
        donation_event("d2", 300, channel="client", client="vf", project=1),
        revocation_event("d1"),
    )
    vf = book.statistics("vf")
    assert (vf.client_donated_amount_in_cents, vf.client_donations_count) == (300, 1)


def test_client_matched_sums_the_funds_of_the_client_on_any_project() -> None:
    book = ledger(
        project_event(7),
        fund_event(1, "acme", provided=10_000, maximum=250, project_ids=[1, 7]),
        donation_event("d1", 1_000, project=1),
        donation_event("d2", 100, project=7),
    )
    assert book.statistics("acme").client_matched_amount_in_cents == 350
    assert book.statistics("vf").client_matched_amount_in_cents == 0


def test_the_response_has_the_documented_keys_in_order_and_only_integers() -> None:
    body = ledger().statistics("vf").as_response()
    assert list(body) == [*RESPONSE_KEYS, "links"]
    assert body["links"] == []
    assert all(type(body[key]) is int for key in RESPONSE_KEYS)


def test_failed_and_revoked_entries_count_as_never_booked() -> None:
    totals = LedgerTotals()
    donation = Donation("d", Channel.CLIENT, 100, NOW, project_id=1, client_id="vf")
    totals.add(donation, revoked=True)
    forwarding = Donation("f", Channel.FORWARDING, 100, NOW, project_id=1, client_id="vf")
    totals.add(replace(forwarding, failure_code=FailureCode.POOL_EMPTY), revoked=False)
    assert totals == LedgerTotals()
    totals.add(forwarding, revoked=False)
    assert totals.project_money == {1: 100}
    assert totals.pool_out == {"vf": 100}


# --- properties over random streams --------------------------------------------------------


def apply_lines(book: MemoryBook, lines: list[bytes]) -> None:
    for raw in lines:
        if not raw.strip():
            continue
        try:
            event = parse_line(raw, now=NOW)
        except EventInvalid:
            continue
        book.apply(event)


def every_figure(book: MemoryBook) -> dict[str, Statistics]:
    return {client_id: book.statistics(client_id) for client_id in book.clients}


@settings(max_examples=75, deadline=None)
@given(stream=event_streams())
def test_figures_are_consistent_for_every_client(stream: list[Any]) -> None:
    book = MemoryBook()
    apply_lines(book, to_lines(stream))
    totals = book.totals()
    for client_id, s in every_figure(book).items():
        assert s.donated_amount_in_cents == s.requested_amount_in_cents - s.open_amount_in_cents
        assert 0 <= s.donated_amount_in_cents <= s.requested_amount_in_cents
        projects = {p for c, p in book.members if c == client_id}
        assert s.projects_count == len(projects)
        requested = {
            p: sum(n.requested_amount_in_cents for n in book.needs.values() if n.project_id == p)
            for p in projects
        }
        money = {p: totals.project_money[p] for p in projects}
        assert s.open_amount_in_cents == sum(max(0, requested[p] - money[p]) for p in projects)
        confirmed = [
            d
            for d in book.donations.values()
            if d.token not in book.revoked and d.moved_money and d.client_id == client_id
        ]
        client_donations = [d for d in confirmed if d.channel is Channel.CLIENT]
        assert s.client_donations_count == len(client_donations)
        assert s.client_donated_amount_in_cents == sum(d.amount_in_cents for d in client_donations)
        if not book.clients[client_id].has_pool:
            assert s.pool_balance_in_cents == 0


@settings(max_examples=75, deadline=None)
@given(stream=event_streams(), amount=st.integers(1, 5_000), target=st.integers(0, 3))
def test_a_donation_booked_and_revoked_leaves_every_figure_unchanged(
    stream: list[Any], amount: int, target: int
) -> None:
    book = MemoryBook()
    apply_lines(book, to_lines(stream))
    before = every_figure(book)
    clients = sorted(c for c, client in book.clients.items() if client.has_pool)
    projects = sorted(p for p, project in book.projects.items() if project.accepts_donations)
    candidates = [
        *(donation_event("extra", amount, channel="platform", project=p) for p in projects),
        *(donation_event("extra", amount, channel="offline", pool=c) for c in clients),
        *(
            donation_event("extra", amount, channel="client", client=c, project=p)
            for c in clients
            for p in book.projects
        ),
    ]
    if not candidates:
        return
    extra = candidates[target % len(candidates)]
    assert book.apply(parse_event(extra, now=NOW)) is not None
    assert "extra" in book.donations
    book.apply(parse_event(revocation_event("extra"), now=NOW))
    assert every_figure(book) == before
