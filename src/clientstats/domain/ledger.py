"""Ledger entries, reference data and the booking rules, as pure data and functions."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class Channel(StrEnum):
    """How money reached its receiver."""

    PLATFORM = "platform"
    CLIENT = "client"
    EXTERNAL = "external"
    OFFLINE = "offline"
    MATCHING = "matching"
    FORWARDING = "forwarding"


class FailureCode(StrEnum):
    """Why a booking moved nothing."""

    POOL_MISSING = "pool_missing"
    POOL_EMPTY = "pool_empty"
    RECEIVER_PROHIBITED = "receiver_prohibited_from_receiving_donations"


FAILURE_REASONS: dict[FailureCode, str] = {
    FailureCode.POOL_MISSING: "The client has no pool.",
    FailureCode.POOL_EMPTY: "The client pool's balance is lower than the amount.",
    FailureCode.RECEIVER_PROHIBITED: "The project does not accept donations.",
}

MATCHING_ACTIVATED = "activated"
MATCHING_CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Client:
    """A client (newspaper, company) with its own donation pages and maybe a pool."""

    permalink: str
    name: str
    has_pool: bool = False
    statistics_private: bool = False


@dataclass(frozen=True, slots=True)
class Project:
    """A fundraising project; it accepts donations unless closed or prohibited."""

    id: int
    title: str
    closed: bool = False
    donations_prohibited: bool = False

    @property
    def accepts_donations(self) -> bool:
        return not (self.closed or self.donations_prohibited)


@dataclass(frozen=True, slots=True)
class Need:
    """A need of a project; needs are filled in ascending id."""

    id: int
    project_id: int
    title: str
    requested_amount_in_cents: int


@dataclass(frozen=True, slots=True)
class MatchingFund:
    """A client's budget that tops up donations to the projects it matches."""

    id: int
    client_id: str
    title: str
    provided_amount_in_cents: int
    maximum_matching_amount_in_cents: int
    state: str = MATCHING_ACTIVATED
    project_ids: frozenset[int] = field(default_factory=frozenset)

    def matches(self, project_id: int) -> bool:
        return self.state == MATCHING_ACTIVATED and project_id in self.project_ids


@dataclass(frozen=True, slots=True)
class Donation:
    """One immutable ledger entry that moved money, or a forwarding that failed and moved none.

    `project_id` xor `pool_client_id` names the receiver. `client_id` is the donor client
    of a `client` donation and the source pool's client of a `forwarding`.
    """

    token: str
    channel: Channel
    amount_in_cents: int
    created_at: datetime
    project_id: int | None = None
    pool_client_id: str | None = None
    client_id: str | None = None
    client_reference: str | None = None
    tracking_via: str | None = None
    matching_fund_id: int | None = None
    matched_token: str | None = None
    redirected_from_project_id: int | None = None
    failure_code: FailureCode | None = None

    @property
    def moved_money(self) -> bool:
        return self.failure_code is None


@dataclass(frozen=True, slots=True)
class FundBudget:
    """A matching fund that matches a project, with what is left of its budget."""

    fund_id: int
    maximum_matching_amount_in_cents: int
    remaining_in_cents: int


class BookingRejected(Exception):
    """A booking that breaks a booking rule; nothing of it may be stored."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def matching_token(fund_id: int, original_token: str) -> str:
    """Token of the matching donation booked for `original_token`.

    It contains a colon, which imported tokens cannot, so it never collides with them.
    """
    return f"matching:{fund_id}:{original_token}"


def matching_for(donation: Donation, budgets: list[FundBudget]) -> Donation | None:
    """The matching donation booked for `donation`, given the funds matching its project.

    `budgets` must be the activated funds matching the project, in ascending fund id.
    """
    if donation.channel not in (Channel.PLATFORM, Channel.CLIENT) or donation.project_id is None:
        return None
    if not donation.moved_money:
        return None
    for budget in budgets:
        if budget.remaining_in_cents <= 0:
            continue
        amount = min(
            donation.amount_in_cents,
            budget.maximum_matching_amount_in_cents,
            budget.remaining_in_cents,
        )
        if amount <= 0:
            continue
        return Donation(
            token=matching_token(budget.fund_id, donation.token),
            channel=Channel.MATCHING,
            amount_in_cents=amount,
            created_at=donation.created_at,
            project_id=donation.project_id,
            matching_fund_id=budget.fund_id,
            matched_token=donation.token,
        )
    return None


def route_donation(
    donation: Donation,
    *,
    project: Project | None,
    donor_client: Client | None,
    pool_client: Client | None,
) -> Donation:
    """Check a donation against the booking rules and settle its receiver.

    A `client` donation to a project that does not accept donations is redirected to the
    donor client's pool. Raises BookingRejected when the donation cannot be booked.
    """
    channel = donation.channel
    if channel in (Channel.MATCHING, Channel.FORWARDING):
        raise BookingRejected("channel", f"channel {channel.value} cannot be booked as a donation")
    if channel is Channel.CLIENT:
        if donation.client_id is None:
            raise BookingRejected("client_id", "is required for channel client")
        if donor_client is None:
            raise BookingRejected("client_id", f"unknown client {donation.client_id}")
    elif donation.client_id is not None:
        raise BookingRejected("client_id", "is only allowed for channel client")
    if donation.pool_client_id is not None:
        return _route_to_pool(donation, pool_client)
    if project is None:
        raise BookingRejected("receiver", f"unknown project {donation.project_id}")
    if channel is Channel.OFFLINE:
        raise BookingRejected("channel", "offline money goes to client pools only")
    if project.accepts_donations:
        return donation
    if channel is not Channel.CLIENT:
        raise BookingRejected("receiver", f"project {project.id} does not accept donations")
    assert donor_client is not None
    if not donor_client.has_pool:
        raise BookingRejected(
            "receiver",
            f"project {project.id} does not accept donations and client "
            f"{donor_client.permalink} has no pool to redirect to",
        )
    return _replace_receiver(donation, pool_client_id=donor_client.permalink)


def _route_to_pool(donation: Donation, pool_client: Client | None) -> Donation:
    if pool_client is None:
        raise BookingRejected("receiver", f"unknown client {donation.pool_client_id}")
    if not pool_client.has_pool:
        raise BookingRejected("receiver", f"client {pool_client.permalink} has no pool")
    if donation.channel is Channel.CLIENT:
        if donation.client_id != pool_client.permalink:
            raise BookingRejected(
                "receiver", "a client donation goes only to its own client's pool"
            )
    elif donation.channel is not Channel.OFFLINE:
        raise BookingRejected("channel", "a pool receives only offline or client donations")
    return donation


def _replace_receiver(donation: Donation, *, pool_client_id: str) -> Donation:
    return Donation(
        token=donation.token,
        channel=donation.channel,
        amount_in_cents=donation.amount_in_cents,
        created_at=donation.created_at,
        project_id=None,
        pool_client_id=pool_client_id,
        client_id=donation.client_id,
        client_reference=donation.client_reference,
        tracking_via=donation.tracking_via,
        redirected_from_project_id=donation.project_id,
    )


def settle_forwarding(
    forwarding: Donation,
    *,
    pool_client: Client | None,
    project: Project | None,
    pool_balance_in_cents: int,
) -> Donation:
    """Decide a forwarding from a client's pool: booked, or recorded as failed.

    Raises BookingRejected for unknown references; a failure of a forwarding is not an error but a
    forwarding that moved nothing.
    """
    if pool_client is None:
        raise BookingRejected("client_id", f"unknown client {forwarding.client_id}")
    if project is None:
        raise BookingRejected("project_id", f"unknown project {forwarding.project_id}")
    failure: FailureCode | None = None
    if not pool_client.has_pool:
        failure = FailureCode.POOL_MISSING
    elif not project.accepts_donations:
        failure = FailureCode.RECEIVER_PROHIBITED
    elif pool_balance_in_cents < forwarding.amount_in_cents:
        failure = FailureCode.POOL_EMPTY
    if failure is None:
        return forwarding
    return Donation(
        token=forwarding.token,
        channel=forwarding.channel,
        amount_in_cents=forwarding.amount_in_cents,
        created_at=forwarding.created_at,
        project_id=forwarding.project_id,
        client_id=forwarding.client_id,
        client_reference=forwarding.client_reference,
        tracking_via=forwarding.tracking_via,
        failure_code=failure,
    )


def same_booking(requested: Donation, booked: Donation, *, created_at_given: bool) -> bool:
    """Whether a repeated donation/forwarding event asks for what is already booked.

    A redirect or a failure decided at booking time does not make a repeat different;
    `created_at` is compared only when the repeat states it.
    """
    booked_receiver = (booked.project_id, booked.pool_client_id)
    if booked.redirected_from_project_id is not None:
        booked_receiver = (booked.redirected_from_project_id, None)
    return (
        requested.channel == booked.channel
        and requested.amount_in_cents == booked.amount_in_cents
        and (requested.project_id, requested.pool_client_id) == booked_receiver
        and requested.client_id == booked.client_id
        and requested.client_reference == booked.client_reference
        and requested.tracking_via == booked.tracking_via
        and (not created_at_given or requested.created_at == booked.created_at)
    )
