"""Tests of applying ledger events to a book, with the in-memory book."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings

from clientstats.domain.booking import Outcome
from clientstats.domain.events import (
    DonationEvent,
    EventInvalid,
    ForwardingEvent,
    RevocationEvent,
    parse_event,
    parse_line,
)
from clientstats.domain.ledger import BookingRejected, Channel, FailureCode
from clientstats.domain.memory_book import MemoryBook
from clientstats.domain.stats import Statistics
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
MONEY_EVENTS = (DonationEvent, ForwardingEvent, RevocationEvent)


def apply(book: MemoryBook, event: dict[str, Any]) -> Outcome | BookingRejected:
    return book.apply(parse_event(event, now=NOW))


def book_of(*events: dict[str, Any]) -> MemoryBook:
    """A book with every event applied; each one must be accepted."""
    book = MemoryBook()
    for event in events:
        outcome = apply(book, event)
        assert isinstance(outcome, Outcome), f"{event} rejected: {outcome}"
    return book


def rejected(book: MemoryBook, event: dict[str, Any]) -> BookingRejected:
    before = copy.deepcopy(book)
    outcome = apply(book, event)
    assert isinstance(outcome, BookingRejected), f"{event} was not rejected: {outcome}"
    assert book == before, "a rejected event changed the book"
    return outcome


def stats(book: MemoryBook, client_id: str = "vf") -> Statistics:
    return book.statistics(client_id)


def ledger(*extra: dict[str, Any]) -> MemoryBook:
    """Volksfreund (with a pool) and ACME (without), sharing open project 1 and closed 2."""
    return book_of(
        client_event("vf", pool=True),
        client_event("acme", pool=False),
        project_event(1),
        project_event(2, closed=True),
        member_event("vf", 1),
        member_event("vf", 2),
        member_event("acme", 1),
        need_event(10, 1, 10_000),
        *extra,
    )


def matched(book: MemoryBook) -> dict[str, tuple[int | None, int]]:
    """Original token -> (fund, amount) of every confirmed matching donation."""
    return {
        d.matched_token: (d.matching_fund_id, d.amount_in_cents)
        for d in book.donations.values()
        if d.channel is Channel.MATCHING and d.matched_token and d.token not in book.revoked
    }


# --- matching ------------------------------------------------------------------


def test_a_fund_matches_up_to_its_cap_and_then_its_remaining_budget() -> None:
    book = ledger(fund_event(1, "acme", provided=1_000, maximum=400, project_ids=[1]))
    for index, amount in enumerate((1_000, 300, 1_000, 1_000)):
        assert apply(book, donation_event(f"d{index}", amount, project=1)) is Outcome.APPLIED
    assert matched(book) == {"d0": (1, 400), "d1": (1, 300), "d2": (1, 300)}
    assert stats(book, "acme").client_matched_amount_in_cents == 1_000
    assert stats(book, "vf").client_matched_amount_in_cents == 0


def test_the_lowest_fund_id_with_budget_matches_then_the_next() -> None:
    book = ledger(
        fund_event(3, "vf", provided=5_000, maximum=5_000, project_ids=[1]),
        fund_event(2, "acme", provided=500, maximum=5_000, project_ids=[1]),
        fund_event(1, "vf", provided=0, maximum=5_000, project_ids=[1]),
    )
    apply(book, donation_event("d1", 800, project=1))
    apply(book, donation_event("d2", 800, project=1))
    assert matched(book) == {"d1": (2, 500), "d2": (3, 800)}
    assert stats(book, "acme").client_matched_amount_in_cents == 500
    assert stats(book, "vf").client_matched_amount_in_cents == 800


def test_matching_money_fills_needs_like_any_money() -> None:
    book = ledger(fund_event(1, "acme", provided=9_000, maximum=9_000, project_ids=[1]))
    apply(book, donation_event("d1", 3_000, project=1))
    assert stats(book).donated_amount_in_cents == 6_000
    assert stats(book).open_amount_in_cents == 4_000


@pytest.mark.parametrize("channel", ["external"])
def test_external_donations_are_not_matched(channel: str) -> None:
    book = ledger(fund_event(1, "acme", provided=9_000, maximum=9_000, project_ids=[1]))
    apply(book, donation_event("d1", 3_000, channel=channel, project=1))
    assert matched(book) == {}


def test_client_donations_are_matched_but_not_when_redirected_to_a_pool() -> None:
    book = ledger(fund_event(1, "acme", provided=9_000, maximum=9_000, project_ids=[1, 2]))
    apply(book, donation_event("d1", 700, channel="client", client="vf", project=1))
    apply(book, donation_event("d2", 900, channel="client", client="vf", project=2))
    assert matched(book) == {"d1": (1, 700)}
    assert book.donations["d2"].pool_client_id == "vf"


def test_a_closed_fund_matches_nothing_new() -> None:
    book = ledger(fund_event(1, "acme", provided=9_000, maximum=9_000, project_ids=[1]))
    apply(book, donation_event("d1", 100, project=1))
    apply(book, {"event": "matching_fund", "id": 1, "state": "closed"})
    apply(book, donation_event("d2", 100, project=1))
    assert matched(book) == {"d1": (1, 100)}
    assert stats(book, "acme").client_matched_amount_in_cents == 100


def test_a_fund_matches_only_its_projects() -> None:
    book = ledger(
        project_event(3),
        fund_event(1, "acme", provided=9_000, maximum=9_000, project_ids=[3]),
    )
    apply(book, donation_event("d1", 100, project=1))
    assert matched(book) == {}


def test_revoking_the_original_revokes_its_matching_and_frees_the_budget() -> None:
    book = ledger(fund_event(1, "acme", provided=500, maximum=500, project_ids=[1]))
    apply(book, donation_event("d1", 500, project=1))
    apply(book, donation_event("d2", 500, project=1))
    assert matched(book) == {"d1": (1, 500)}
    assert apply(book, revocation_event("d1")) is Outcome.APPLIED
    assert "matching:1:d1" in book.revoked
    assert matched(book) == {}
    assert stats(book, "acme").client_matched_amount_in_cents == 0
    apply(book, donation_event("d3", 200, project=1))
    assert matched(book) == {"d3": (1, 200)}


# --- forwardings ---------------------------------------------------------------


def test_forwarding_moves_money_from_the_pool_to_the_project() -> None:
    book = ledger(donation_event("d1", 5_000, channel="offline", pool="vf"))
    assert apply(book, forwarding_event("f1", "vf", 1, 3_000)) is Outcome.APPLIED
    figures = stats(book)
    assert figures.pool_balance_in_cents == 2_000
    assert figures.donated_amount_in_cents == 3_000
    assert figures.client_donated_amount_in_cents == 0  # a forwarding is not a client donation


def test_forwarding_is_never_matched() -> None:
    book = ledger(
        fund_event(1, "vf", provided=9_000, maximum=9_000, project_ids=[1]),
        donation_event("d1", 5_000, channel="offline", pool="vf"),
        forwarding_event("f1", "vf", 1, 3_000),
    )
    assert matched(book) == {}


@pytest.mark.parametrize(
    ("forwarding", "code"),
    [
        (forwarding_event("f1", "acme", 1, 100), FailureCode.POOL_MISSING),
        (forwarding_event("f1", "vf", 1, 5_001), FailureCode.POOL_EMPTY),
        (forwarding_event("f1", "vf", 2, 100), FailureCode.RECEIVER_PROHIBITED),
    ],
)
def test_a_failing_forwarding_is_recorded_and_moves_nothing(
    forwarding: dict[str, Any], code: FailureCode
) -> None:
    book = ledger(donation_event("d1", 5_000, channel="offline", pool="vf"))
    before = {c: stats(book, c) for c in ("vf", "acme")}
    assert apply(book, forwarding) is Outcome.FAILED
    assert book.donations["f1"].failure_code is code
    assert {c: stats(book, c) for c in ("vf", "acme")} == before
    assert apply(book, forwarding) is Outcome.UNCHANGED
    error = rejected(book, revocation_event("f1"))
    assert "moved no money" in error.message


@pytest.mark.parametrize(
    ("forwarding", "field"),
    [
        (forwarding_event("f1", "ghost", 1, 100), "client_id"),
        (forwarding_event("f1", "vf", 99, 100), "project_id"),
    ],
)
def test_a_forwarding_with_unknown_references_is_rejected(
    forwarding: dict[str, Any], field: str
) -> None:
    assert rejected(ledger(), forwarding).field == field


# --- revocations ---------------------------------------------------------------


def test_revocation_leaves_every_figure_as_if_never_booked() -> None:
    book = ledger()
    before = stats(book)
    apply(book, donation_event("d1", 700, channel="client", client="vf", project=1))
    assert stats(book) != before
    assert apply(book, revocation_event("d1")) is Outcome.APPLIED
    assert stats(book) == before


def test_revoking_twice_is_a_no_op() -> None:
    book = ledger(donation_event("d1", 700, project=1), revocation_event("d1"))
    before = copy.deepcopy(book)
    assert apply(book, revocation_event("d1")) is Outcome.UNCHANGED
    assert book == before


def test_a_revocation_before_its_donation_is_kept_and_changes_nothing_else() -> None:
    book = ledger(donation_event("d0", 500, project=1))
    before = copy.deepcopy(book)
    assert apply(book, revocation_event("d1")) is Outcome.DEFERRED
    assert set(book.deferred) == {"d1"}
    assert book.unmet_revocations() == book.deferred
    book.deferred.clear()
    assert book == before


def test_a_donation_revoked_before_it_arrived_is_booked_revoked_and_never_matched() -> None:
    book = ledger(fund_event(1, "acme", provided=1_000, maximum=600, project_ids=[1]))
    assert apply(book, revocation_event("d1")) is Outcome.DEFERRED
    before = {c: stats(book, c) for c in ("vf", "acme")}
    event = donation_event("d1", 700, channel="client", client="vf", project=1)
    assert apply(book, event) is Outcome.APPLIED
    assert book.donations["d1"].amount_in_cents == 700 and "d1" in book.revoked
    assert {c: stats(book, c) for c in ("vf", "acme")} == before
    assert matched(book) == {} and book.unmet_revocations() == {}
    apply(book, donation_event("d2", 900, project=1))
    assert matched(book) == {"d2": (1, 600)}  # d1 used none of the budget
    assert apply(book, event) is Outcome.UNCHANGED
    assert apply(book, revocation_event("d1")) is Outcome.UNCHANGED


def test_revoking_twice_before_the_donation_keeps_the_first_revocation() -> None:
    first = {**revocation_event("d1"), "created_at": "2024-04-01T10:00:00+00:00"}
    book = ledger()
    assert apply(book, first) is Outcome.DEFERRED
    assert apply(book, revocation_event("d1")) is Outcome.DEFERRED
    assert [r.created_at.isoformat() for r in book.deferred.values()] == [
        "2024-04-01T10:00:00+00:00"
    ]


def test_a_kept_revocation_outlives_a_rejected_donation_with_its_token() -> None:
    book = ledger(revocation_event("d1"))
    assert rejected(book, donation_event("d1", 700, project=99)).field == "receiver"
    assert set(book.unmet_revocations()) == {"d1"}
    assert apply(book, donation_event("d1", 700, project=1)) is Outcome.APPLIED
    assert "d1" in book.revoked and book.unmet_revocations() == {}


def test_a_redirected_donation_revoked_before_it_arrived_leaves_the_pool_as_it_was() -> None:
    book = ledger(revocation_event("d1"))
    before = stats(book)
    event = donation_event("d1", 700, channel="client", client="vf", project=2)
    assert apply(book, event) is Outcome.APPLIED
    assert book.donations["d1"].pool_client_id == "vf" and "d1" in book.revoked
    assert stats(book) == before


def test_a_forwarding_revoked_before_it_arrived_moves_nothing() -> None:
    book = ledger(donation_event("d1", 5_000, channel="offline", pool="vf"))
    apply(book, revocation_event("f1"))
    before = stats(book)
    assert apply(book, forwarding_event("f1", "vf", 1, 4_000)) is Outcome.APPLIED
    assert "f1" in book.revoked and book.donations["f1"].moved_money
    assert stats(book) == before


def test_a_kept_revocation_of_a_forwarding_that_fails_has_nothing_to_revoke() -> None:
    book = ledger(revocation_event("f1"))
    assert apply(book, forwarding_event("f1", "vf", 1, 100)) is Outcome.FAILED
    assert book.donations["f1"].failure_code is FailureCode.POOL_EMPTY
    assert "f1" not in book.revoked and book.unmet_revocations() == {}
    # The same revocation again is a no-op, as it is in a second import of the stream.
    assert apply(book, revocation_event("f1")) is Outcome.UNCHANGED


def test_revoking_pool_money_already_forwarded_makes_the_pool_negative() -> None:
    book = ledger(
        donation_event("d1", 5_000, channel="offline", pool="vf"),
        forwarding_event("f1", "vf", 1, 4_000),
    )
    assert apply(book, revocation_event("d1")) is Outcome.APPLIED
    assert stats(book).pool_balance_in_cents == -4_000
    assert stats(book).donated_amount_in_cents == 4_000  # the forwarded money stays


def test_revoking_a_forwarding_returns_the_money_to_the_pool() -> None:
    book = ledger(
        donation_event("d1", 5_000, channel="offline", pool="vf"),
        forwarding_event("f1", "vf", 1, 4_000),
        revocation_event("f1"),
    )
    assert stats(book).pool_balance_in_cents == 5_000
    assert stats(book).donated_amount_in_cents == 0


# --- routing through the book --------------------------------------------


def test_client_donation_to_a_closed_project_is_redirected_to_the_donor_pool() -> None:
    book = ledger()
    event = donation_event("d1", 700, channel="client", client="vf", project=2)
    assert apply(book, event) is Outcome.APPLIED
    assert stats(book).pool_balance_in_cents == 700
    assert stats(book).client_donated_amount_in_cents == 700
    assert stats(book).donated_amount_in_cents == 0
    assert apply(book, event) is Outcome.UNCHANGED  # a repeat matches the request, not the pool


@pytest.mark.parametrize(
    "event",
    [
        donation_event("d1", 700, channel="client", client="acme", project=2),
        donation_event("d1", 700, channel="platform", project=2),
        donation_event("d1", 700, channel="external", project=2),
        donation_event("d1", 700, channel="offline", pool="acme"),
        donation_event("d1", 700, channel="client", client="acme", pool="acme"),
        donation_event("d1", 700, channel="client", client="acme", pool="vf"),
        donation_event("d1", 700, channel="client", client="ghost", project=1),
        donation_event("d1", 700, channel="platform", project=99),
        donation_event("d1", 700, channel="offline", pool="ghost"),
        donation_event("d1", 700, channel="offline", project=1),
    ],
)
def test_donations_the_rules_forbid_are_rejected_and_change_nothing(event: dict[str, Any]) -> None:
    rejected(ledger(), event)


def test_a_project_prohibited_later_rejects_later_platform_donations_only() -> None:
    book = ledger(donation_event("d1", 700, project=1))
    apply(book, {"event": "project", "id": 1, "donations_prohibited": True})
    rejected(book, donation_event("d2", 700, project=1))
    assert stats(book).donated_amount_in_cents == 700  # a closed project keeps counting


def test_a_client_without_a_pool_gets_one_later() -> None:
    book = ledger()
    rejected(book, donation_event("d1", 700, channel="offline", pool="acme"))
    apply(book, {"event": "client", "id": "acme", "pool": True})
    assert apply(book, donation_event("d1", 700, channel="offline", pool="acme")) is (
        Outcome.APPLIED
    )
    assert stats(book, "acme").pool_balance_in_cents == 700


# --- idempotency ---------------------------------------------------------------


def test_the_same_token_with_the_same_content_is_unchanged() -> None:
    event = donation_event("d1", 700, channel="client", client="vf", project=1)
    book = ledger(event)
    before = copy.deepcopy(book)
    assert apply(book, event) is Outcome.UNCHANGED
    assert apply(book, {**event, "client_id": "VF"}) is Outcome.UNCHANGED
    assert book == before


@pytest.mark.parametrize(
    "change",
    [
        {"amount_in_cents": 701},
        {"channel": "platform", "client_id": None},
        {"receiver": {"type": "project", "id": 2}},
        {"receiver": {"type": "pool", "client_id": "vf"}},
        {"client_reference": "other"},
        {"tracking_via": "newsletter"},
        {"created_at": "2020-01-01T00:00:00+00:00"},
    ],
)
def test_the_same_token_with_other_content_is_rejected(change: dict[str, Any]) -> None:
    event = donation_event(
        "d1",
        700,
        channel="client",
        client="vf",
        project=1,
        client_reference="r1",
        created_at="2024-04-01T10:00:00+02:00",
    )
    book = ledger(event)
    error = rejected(book, {**event, **change})
    assert (error.field, error.message) == ("token", "d1 is already booked with other content")


def test_created_at_given_again_as_the_same_instant_is_unchanged() -> None:
    event = donation_event("d1", 700, project=1, created_at="2024-04-01T10:00:00+02:00")
    book = ledger(event)
    same_instant = {**event, "created_at": "2024-04-01T08:00:00Z"}
    assert apply(book, same_instant) is Outcome.UNCHANGED
    assert apply(book, {k: v for k, v in event.items() if k != "created_at"}) is Outcome.UNCHANGED


def test_a_forwarding_repeat_follows_the_same_rules() -> None:
    forwarding = forwarding_event("f1", "vf", 1, 1_000)
    book = ledger(donation_event("d1", 5_000, channel="offline", pool="vf"), forwarding)
    assert apply(book, forwarding) is Outcome.UNCHANGED
    rejected(book, {**forwarding, "amount_in_cents": 999})


def test_a_client_reference_books_at_most_one_entry_per_client() -> None:
    book = ledger(
        donation_event("d1", 700, channel="client", client="vf", project=1, client_reference="r")
    )
    error = rejected(
        book,
        donation_event("d2", 900, channel="client", client="vf", project=1, client_reference="r"),
    )
    assert error.field == "client_reference"
    error = rejected(book, forwarding_event("f1", "vf", 1, 10, client_reference="r"))
    assert error.field == "client_reference"
    other_client = donation_event(
        "d3", 900, channel="client", client="acme", project=1, client_reference="r"
    )
    assert apply(book, other_client) is Outcome.APPLIED


# --- reference data upserts ----------------------------------------------------------------


def test_upserts_change_named_fields_and_report_unchanged_repeats() -> None:
    book = ledger()
    assert apply(book, client_event("vf", pool=True)) is Outcome.UNCHANGED
    assert apply(book, {"event": "client", "id": "vf", "pool": False}) is Outcome.APPLIED
    assert book.clients["vf"].name == "Vf"
    assert apply(book, member_event("vf", 1)) is Outcome.UNCHANGED
    assert apply(book, member_event("vf", 1, member=False)) is Outcome.APPLIED
    assert stats(book).projects_count == 1


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"event": "client", "id": "new"}, "name"),
        ({"event": "project", "id": 7}, "title"),
        ({"event": "need", "id": 70, "title": "T", "requested_amount_in_cents": 5}, "project_id"),
        (need_event(70, 99, 5), "project_id"),
        ({"event": "matching_fund", "id": 9}, "client_id"),
        (fund_event(9, "ghost", provided=1, maximum=1, project_ids=[]), "client_id"),
        (fund_event(9, "vf", provided=1, maximum=1, project_ids=[1, 98, 99]), "project_ids"),
        (member_event("ghost", 1), "client_id"),
        (member_event("vf", 99), "project_id"),
    ],
)
def test_reference_events_with_missing_or_unknown_references_are_rejected(
    event: dict[str, Any], field: str
) -> None:
    assert rejected(ledger(), event).field == field


# --- properties over random streams --------------------------------------------------------


def apply_stream(book: MemoryBook, lines: list[bytes]) -> list[Outcome | BookingRejected | None]:
    """Apply every line; None for lines that do not parse (or are blank)."""
    outcomes: list[Outcome | BookingRejected | None] = []
    for raw in lines:
        try:
            event = parse_line(raw, now=NOW) if raw.strip() else None
        except EventInvalid:
            event = None
        outcomes.append(None if event is None else book.apply(event))
    return outcomes


@settings(max_examples=75, deadline=None)
@given(stream=event_streams())
def test_a_rejected_event_changes_nothing(stream: list[Any]) -> None:
    book = MemoryBook()
    for raw in to_lines(stream):
        before = copy.deepcopy(book)
        outcome = apply_stream(book, [raw])[0]
        if outcome is None or isinstance(outcome, BookingRejected):
            assert book == before


def accepted_lines(lines: list[bytes]) -> list[bytes]:
    """The lines a fresh book accepts (applied, unchanged or failed), in order."""
    outcomes = apply_stream(MemoryBook(), lines)
    return [
        raw for raw, outcome in zip(lines, outcomes, strict=True) if isinstance(outcome, Outcome)
    ]


@settings(max_examples=75, deadline=None)
@given(stream=event_streams())
def test_dropping_the_rejected_lines_gives_the_same_book_and_outcomes(stream: list[Any]) -> None:
    lines = to_lines(stream)
    full, kept = MemoryBook(), MemoryBook()
    outcomes = [o for o in apply_stream(full, lines) if isinstance(o, Outcome)]
    assert apply_stream(kept, accepted_lines(lines)) == outcomes
    assert kept == full


@settings(max_examples=75, deadline=None)
@given(stream=event_streams())
def test_applying_an_accepted_stream_again_changes_nothing(stream: list[Any]) -> None:
    lines = accepted_lines(to_lines(stream))
    book = MemoryBook()
    apply_stream(book, lines)
    before = copy.deepcopy(book)
    second = apply_stream(book, lines)
    assert book == before
    for raw, outcome in zip(lines, second, strict=True):
        assert isinstance(outcome, Outcome), raw
        event = parse_line(raw, now=NOW)
        if isinstance(event, MONEY_EVENTS):
            # Only a revocation whose donation never came is still waiting.
            waiting = isinstance(event, RevocationEvent) and event.token not in book.donations
            assert outcome is (Outcome.DEFERRED if waiting else Outcome.UNCHANGED), raw


def test_a_second_pass_replays_toggles_but_ends_where_the_first_ended() -> None:
    lines = to_lines(
        [
            client_event("vf", pool=True),
            project_event(1),
            member_event("vf", 1),
            member_event("vf", 1, member=False),
            {"event": "client", "id": "vf", "pool": False},
        ]
    )
    book = MemoryBook()
    assert apply_stream(book, lines) == [Outcome.APPLIED] * 5
    before = copy.deepcopy(book)
    second = apply_stream(book, lines)
    assert second == [Outcome.APPLIED, Outcome.UNCHANGED] + [Outcome.APPLIED] * 3
    assert book == before
