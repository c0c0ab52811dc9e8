"""Tests of the pure booking rules: routing, matching, forwardings, repeats."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from clientstats.domain.ledger import (
    BookingRejected,
    Channel,
    Client,
    Donation,
    FailureCode,
    FundBudget,
    Project,
    matching_for,
    matching_token,
    route_donation,
    same_booking,
    settle_forwarding,
)

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
WITH_POOL = Client("vf", "Volksfreund", has_pool=True)
NO_POOL = Client("acme", "ACME", has_pool=False)
OPEN = Project(1, "Open")
CLOSED = Project(2, "Closed", closed=True)
PROHIBITED = Project(3, "Prohibited", donations_prohibited=True)


def donation(channel: Channel, amount: int = 1000, **fields: object) -> Donation:
    return Donation("d1", channel, amount, NOW, **fields)


def route(
    d: Donation,
    *,
    project: Project | None = None,
    donor: Client | None = None,
    pool: Client | None = None,
) -> Donation:
    return route_donation(d, project=project, donor_client=donor, pool_client=pool)


def rejection(d: Donation, **kwargs: object) -> BookingRejected:
    with pytest.raises(BookingRejected) as caught:
        route(d, **kwargs)
    return caught.value


# --- routing -------------------------------------------------------


def test_project_accepts_donations_only_when_neither_closed_nor_prohibited() -> None:
    assert OPEN.accepts_donations
    assert not CLOSED.accepts_donations
    assert not PROHIBITED.accepts_donations


@pytest.mark.parametrize("channel", [Channel.PLATFORM, Channel.EXTERNAL])
def test_donation_to_an_accepting_project_is_booked_as_requested(channel: Channel) -> None:
    d = donation(channel, project_id=1)
    assert route(d, project=OPEN) == d


def test_client_donation_to_an_accepting_project_is_booked_as_requested() -> None:
    d = donation(Channel.CLIENT, project_id=1, client_id="vf")
    assert route(d, project=OPEN, donor=WITH_POOL) == d


@pytest.mark.parametrize("project", [CLOSED, PROHIBITED])
def test_client_donation_to_a_refusing_project_goes_to_the_donor_pool(project: Project) -> None:
    d = donation(Channel.CLIENT, project_id=project.id, client_id="vf", client_reference="r1")
    routed = route(d, project=project, donor=WITH_POOL)
    assert routed.project_id is None
    assert routed.pool_client_id == "vf"
    assert routed.redirected_from_project_id == project.id
    assert (routed.token, routed.amount_in_cents, routed.client_id) == ("d1", 1000, "vf")
    assert routed.client_reference == "r1"
    assert routed.channel is Channel.CLIENT


def test_client_donation_to_a_refusing_project_without_a_donor_pool_is_rejected() -> None:
    d = donation(Channel.CLIENT, project_id=2, client_id="acme")
    error = rejection(d, project=CLOSED, donor=NO_POOL)
    assert error.field == "receiver"
    assert "no pool" in error.message


@pytest.mark.parametrize("channel", [Channel.PLATFORM, Channel.EXTERNAL])
@pytest.mark.parametrize("project", [CLOSED, PROHIBITED])
def test_platform_and_external_donations_to_a_refusing_project_are_rejected(
    channel: Channel, project: Project
) -> None:
    error = rejection(donation(channel, project_id=project.id), project=project)
    assert error.field == "receiver"
    assert "does not accept donations" in error.message


@pytest.mark.parametrize("channel", [Channel.MATCHING, Channel.FORWARDING])
def test_system_channels_cannot_be_booked_as_donations(channel: Channel) -> None:
    assert rejection(donation(channel, project_id=1), project=OPEN).field == "channel"


def test_client_donation_needs_a_client_id() -> None:
    error = rejection(donation(Channel.CLIENT, project_id=1), project=OPEN)
    assert error.field == "client_id"
    assert "required" in error.message


def test_client_donation_of_an_unknown_client_is_rejected() -> None:
    error = rejection(donation(Channel.CLIENT, project_id=1, client_id="ghost"), project=OPEN)
    assert (error.field, error.message) == ("client_id", "unknown client ghost")


@pytest.mark.parametrize("channel", [Channel.PLATFORM, Channel.EXTERNAL, Channel.OFFLINE])
def test_client_id_is_only_allowed_for_client_donations(channel: Channel) -> None:
    d = donation(channel, pool_client_id="vf", client_id="vf")
    error = rejection(d, pool=WITH_POOL, donor=WITH_POOL)
    assert error.field == "client_id"


def test_donation_to_an_unknown_project_is_rejected() -> None:
    error = rejection(donation(Channel.PLATFORM, project_id=77), project=None)
    assert (error.field, error.message) == ("receiver", "unknown project 77")


def test_offline_money_goes_to_pools_only() -> None:
    error = rejection(donation(Channel.OFFLINE, project_id=1), project=OPEN)
    assert error.field == "channel"


def test_offline_and_own_client_donations_to_a_pool_are_booked() -> None:
    offline = donation(Channel.OFFLINE, pool_client_id="vf")
    assert route(offline, pool=WITH_POOL) == offline
    own = donation(Channel.CLIENT, pool_client_id="vf", client_id="vf")
    assert route(own, pool=WITH_POOL, donor=WITH_POOL) == own


@pytest.mark.parametrize("channel", [Channel.PLATFORM, Channel.EXTERNAL])
def test_a_pool_receives_only_offline_or_client_donations(channel: Channel) -> None:
    error = rejection(donation(channel, pool_client_id="vf"), pool=WITH_POOL)
    assert error.field == "channel"


def test_client_donation_to_another_clients_pool_is_rejected() -> None:
    other = Client("other", "Other", has_pool=True)
    d = donation(Channel.CLIENT, pool_client_id="other", client_id="vf")
    error = rejection(d, pool=other, donor=WITH_POOL)
    assert error.field == "receiver"
    assert "own client's pool" in error.message


def test_donation_to_the_pool_of_a_client_without_a_pool_is_rejected() -> None:
    error = rejection(donation(Channel.OFFLINE, pool_client_id="acme"), pool=NO_POOL)
    assert (error.field, error.message) == ("receiver", "client acme has no pool")


def test_donation_to_the_pool_of_an_unknown_client_is_rejected() -> None:
    error = rejection(donation(Channel.OFFLINE, pool_client_id="ghost"), pool=None)
    assert (error.field, error.message) == ("receiver", "unknown client ghost")


# --- matching ------------------------------------------------------------------


def budget(fund_id: int, maximum: int, remaining: int) -> FundBudget:
    return FundBudget(fund_id, maximum, remaining)


@pytest.mark.parametrize(
    ("amount", "maximum", "remaining", "matched"),
    [
        (1000, 5000, 9000, 1000),  # the amount
        (1000, 300, 9000, 300),  # the cap per donation
        (1000, 5000, 250, 250),  # what is left of the budget
        (1, 1, 1, 1),
    ],
)
def test_matching_is_the_least_of_amount_cap_and_remaining_budget(
    amount: int, maximum: int, remaining: int, matched: int
) -> None:
    original = donation(Channel.PLATFORM, amount, project_id=1)
    match = matching_for(original, [budget(4, maximum, remaining)])
    assert match is not None
    assert match.amount_in_cents == matched
    assert match.channel is Channel.MATCHING
    assert match.project_id == 1 and match.pool_client_id is None
    assert match.matching_fund_id == 4
    assert match.matched_token == "d1"
    assert match.token == matching_token(4, "d1") == "matching:4:d1"
    assert match.created_at == original.created_at


def test_the_lowest_fund_with_budget_matches() -> None:
    original = donation(Channel.CLIENT, 1000, project_id=1, client_id="vf")
    budgets = [budget(1, 500, 0), budget(2, 500, -40), budget(3, 700, 100), budget(5, 900, 900)]
    match = matching_for(original, budgets)
    assert match is not None
    assert (match.matching_fund_id, match.amount_in_cents) == (3, 100)


def test_no_budget_left_matches_nothing() -> None:
    original = donation(Channel.PLATFORM, project_id=1)
    assert matching_for(original, [budget(1, 500, 0)]) is None
    assert matching_for(original, []) is None


@pytest.mark.parametrize(
    "channel", [Channel.EXTERNAL, Channel.OFFLINE, Channel.MATCHING, Channel.FORWARDING]
)
def test_only_platform_and_client_donations_are_matched(channel: Channel) -> None:
    original = donation(channel, project_id=1, client_id="vf")
    assert matching_for(original, [budget(1, 500, 500)]) is None


def test_pool_donations_and_failed_bookings_are_not_matched() -> None:
    to_pool = donation(Channel.CLIENT, pool_client_id="vf", client_id="vf")
    assert matching_for(to_pool, [budget(1, 500, 500)]) is None
    failed = donation(Channel.PLATFORM, project_id=1, failure_code=FailureCode.POOL_EMPTY)
    assert matching_for(failed, [budget(1, 500, 500)]) is None


# --- forwardings ---------------------------------------------------------------


def forwarding(amount: int = 1000, project_id: int = 1) -> Donation:
    return Donation("f1", Channel.FORWARDING, amount, NOW, project_id=project_id, client_id="vf")


def settle(
    f: Donation, *, client: Client | None = WITH_POOL, project: Project | None = OPEN, balance: int
) -> Donation:
    return settle_forwarding(f, pool_client=client, project=project, pool_balance_in_cents=balance)


def test_forwarding_within_the_balance_moves_money() -> None:
    f = forwarding(1000)
    settled = settle(f, balance=1000)
    assert settled == f
    assert settled.moved_money


@pytest.mark.parametrize(
    ("client", "project", "balance", "code"),
    [
        (NO_POOL, OPEN, 5000, FailureCode.POOL_MISSING),
        (WITH_POOL, OPEN, 999, FailureCode.POOL_EMPTY),
        (WITH_POOL, OPEN, -50, FailureCode.POOL_EMPTY),
        (WITH_POOL, CLOSED, 5000, FailureCode.RECEIVER_PROHIBITED),
        (WITH_POOL, PROHIBITED, 5000, FailureCode.RECEIVER_PROHIBITED),
    ],
)
def test_forwarding_failures_move_nothing(
    client: Client, project: Project, balance: int, code: FailureCode
) -> None:
    settled = settle(forwarding(1000, project.id), client=client, project=project, balance=balance)
    assert settled.failure_code is code
    assert not settled.moved_money
    assert replace(settled, failure_code=None) == forwarding(1000, project.id)
    assert code.value in (
        "pool_missing",
        "pool_empty",
        "receiver_prohibited_from_receiving_donations",
    )


def test_forwarding_with_unknown_references_is_rejected() -> None:
    with pytest.raises(BookingRejected) as unknown_client:
        settle(forwarding(), client=None, balance=5000)
    assert unknown_client.value.field == "client_id"
    with pytest.raises(BookingRejected) as unknown_project:
        settle(forwarding(), project=None, balance=5000)
    assert unknown_project.value.field == "project_id"


# --- repeats -------------------------------------------------------------------


def test_a_repeat_is_the_same_booking_when_every_given_field_agrees() -> None:
    booked = donation(Channel.CLIENT, project_id=1, client_id="vf", client_reference="r")
    later = replace(booked, created_at=datetime(2030, 1, 1, tzinfo=UTC))
    assert same_booking(booked, booked, created_at_given=True)
    assert same_booking(later, booked, created_at_given=False)
    assert not same_booking(later, booked, created_at_given=True)


@pytest.mark.parametrize(
    "change",
    [
        {"amount_in_cents": 1001},
        {"channel": Channel.PLATFORM},
        {"project_id": 2},
        {"client_id": "other"},
        {"client_reference": "r2"},
        {"tracking_via": "newsletter"},
    ],
)
def test_a_repeat_with_other_content_is_not_the_same(change: dict[str, object]) -> None:
    booked = donation(Channel.CLIENT, project_id=1, client_id="vf", client_reference="r")
    assert not same_booking(replace(booked, **change), booked, created_at_given=False)


def test_a_redirected_booking_is_the_same_as_its_request() -> None:
    requested = donation(Channel.CLIENT, project_id=2, client_id="vf")
    booked = route(requested, project=CLOSED, donor=WITH_POOL)
    assert same_booking(requested, booked, created_at_given=True)
    to_pool = replace(requested, project_id=None, pool_client_id="vf")
    assert not same_booking(to_pool, booked, created_at_given=True)


def test_a_failed_forwarding_is_the_same_as_its_request() -> None:
    requested = forwarding(1000)
    failed = settle(requested, balance=0)
    assert same_booking(requested, failed, created_at_given=True)
