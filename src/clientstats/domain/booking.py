"""Applying one ledger event to a book of record, whatever stores it."""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol

from clientstats.domain.events import (
    ClientEvent,
    ClientProjectEvent,
    DonationEvent,
    Event,
    ForwardingEvent,
    MatchingFundEvent,
    NeedEvent,
    ProjectEvent,
    RevocationEvent,
)
from clientstats.domain.ledger import (
    BookingRejected,
    Client,
    Donation,
    FundBudget,
    MatchingFund,
    Need,
    Project,
    matching_for,
    route_donation,
    same_booking,
    settle_forwarding,
)
from clientstats.domain.merging import merge_client, merge_matching_fund, merge_need, merge_project


class Outcome(StrEnum):
    """What applying an event did."""

    APPLIED = "applied"
    UNCHANGED = "unchanged"
    FAILED = "failed"  # recorded, but moved no money (a forwarding failing for lack of pool money)
    DEFERRED = "deferred"  # a revocation kept until its donation arrives


class LedgerBook(Protocol):
    """The reads and writes the booking rules need; in memory for the oracle, SQL in storage."""

    def get_client(self, permalink: str) -> Client | None: ...
    def get_project(self, project_id: int) -> Project | None: ...
    def get_need(self, need_id: int) -> Need | None: ...
    def get_matching_fund(self, fund_id: int) -> MatchingFund | None: ...
    def get_donation(self, token: str) -> Donation | None: ...
    def token_for_client_reference(self, client_id: str, reference: str) -> str | None: ...
    def is_revoked(self, token: str) -> bool: ...
    def is_member(self, client_id: str, project_id: int) -> bool: ...
    def pool_balance(self, client_id: str) -> int: ...
    def matching_budgets(self, project_id: int) -> list[FundBudget]: ...
    def matching_donation_of(self, token: str) -> Donation | None: ...
    def deferred_revocation(self, token: str) -> RevocationEvent | None: ...
    def save_client(self, client: Client) -> None: ...
    def save_project(self, project: Project) -> None: ...
    def save_need(self, need: Need) -> None: ...
    def save_matching_fund(self, fund: MatchingFund) -> None: ...
    def set_member(self, client_id: str, project_id: int, member: bool) -> None: ...
    def book(self, donation: Donation) -> None: ...
    def revoke(self, donation: Donation, event: RevocationEvent) -> None: ...
    def defer_revocation(self, event: RevocationEvent) -> None: ...


def apply_event(book: LedgerBook, event: Event) -> Outcome:
    """Apply one event; raises BookingRejected (and changes nothing) if it breaks a rule."""
    match event:
        case ClientEvent():
            return _apply_client(book, event)
        case ProjectEvent():
            return _apply_project(book, event)
        case NeedEvent():
            return _apply_need(book, event)
        case MatchingFundEvent():
            return _apply_matching_fund(book, event)
        case ClientProjectEvent():
            return _apply_membership(book, event)
        case DonationEvent():
            return _apply_donation(book, event)
        case ForwardingEvent():
            return _apply_forwarding(book, event)
        case RevocationEvent():
            return _apply_revocation(book, event)
    raise BookingRejected("event", f"unsupported event {type(event).__name__}")


def _apply_client(book: LedgerBook, event: ClientEvent) -> Outcome:
    existing = book.get_client(event.id)
    client = merge_client(existing, event)
    if client == existing:
        return Outcome.UNCHANGED
    book.save_client(client)
    return Outcome.APPLIED


def _apply_project(book: LedgerBook, event: ProjectEvent) -> Outcome:
    existing = book.get_project(event.id)
    project = merge_project(existing, event)
    if project == existing:
        return Outcome.UNCHANGED
    book.save_project(project)
    return Outcome.APPLIED


def _apply_need(book: LedgerBook, event: NeedEvent) -> Outcome:
    existing = book.get_need(event.id)
    need = merge_need(existing, event)
    if need == existing:
        return Outcome.UNCHANGED
    if book.get_project(need.project_id) is None:
        raise BookingRejected("project_id", f"unknown project {need.project_id}")
    book.save_need(need)
    return Outcome.APPLIED


def _apply_matching_fund(book: LedgerBook, event: MatchingFundEvent) -> Outcome:
    existing = book.get_matching_fund(event.id)
    fund = merge_matching_fund(existing, event)
    if fund == existing:
        return Outcome.UNCHANGED
    if book.get_client(fund.client_id) is None:
        raise BookingRejected("client_id", f"unknown client {fund.client_id}")
    unknown = sorted(p for p in fund.project_ids if book.get_project(p) is None)
    if unknown:
        raise BookingRejected("project_ids", f"unknown projects {unknown}")
    book.save_matching_fund(fund)
    return Outcome.APPLIED


def _apply_membership(book: LedgerBook, event: ClientProjectEvent) -> Outcome:
    if book.get_client(event.client_id) is None:
        raise BookingRejected("client_id", f"unknown client {event.client_id}")
    if book.get_project(event.project_id) is None:
        raise BookingRejected("project_id", f"unknown project {event.project_id}")
    if book.is_member(event.client_id, event.project_id) == event.member:
        return Outcome.UNCHANGED
    book.set_member(event.client_id, event.project_id, event.member)
    return Outcome.APPLIED


def _repeat_outcome(
    book: LedgerBook, requested: Donation, created_at_given: bool
) -> Outcome | None:
    booked = book.get_donation(requested.token)
    if booked is None:
        _check_client_reference(book, requested)
        return None
    if not same_booking(requested, booked, created_at_given=created_at_given):
        raise BookingRejected("token", f"{requested.token} is already booked with other content")
    return Outcome.UNCHANGED


def _check_client_reference(book: LedgerBook, requested: Donation) -> None:
    if requested.client_reference is None or requested.client_id is None:
        return
    other = book.token_for_client_reference(requested.client_id, requested.client_reference)
    if other is not None:
        raise BookingRejected(
            "client_reference",
            f"{requested.client_reference} is already used by {other} of this client",
        )


def _apply_donation(book: LedgerBook, event: DonationEvent) -> Outcome:
    requested = event.donation
    repeat = _repeat_outcome(book, requested, event.created_at_given)
    if repeat is not None:
        return repeat
    pool_client = None
    if requested.pool_client_id is not None:
        pool_client = book.get_client(requested.pool_client_id)
    routed = route_donation(
        requested,
        project=None if requested.project_id is None else book.get_project(requested.project_id),
        donor_client=None if requested.client_id is None else book.get_client(requested.client_id),
        pool_client=pool_client,
    )
    book.book(routed)
    kept = book.deferred_revocation(routed.token)
    if kept is not None:
        # Revoked before it arrived: booked and revoked at once, so it is never matched.
        book.revoke(routed, kept)
    elif routed.project_id is not None:
        matching = matching_for(routed, book.matching_budgets(routed.project_id))
        if matching is not None:
            book.book(matching)
    return Outcome.APPLIED


def _apply_forwarding(book: LedgerBook, event: ForwardingEvent) -> Outcome:
    requested = event.forwarding
    repeat = _repeat_outcome(book, requested, event.created_at_given)
    if repeat is not None:
        return repeat
    assert requested.client_id is not None and requested.project_id is not None
    pool_client = book.get_client(requested.client_id)
    settled = settle_forwarding(
        requested,
        pool_client=pool_client,
        project=book.get_project(requested.project_id),
        pool_balance_in_cents=book.pool_balance(requested.client_id) if pool_client else 0,
    )
    book.book(settled)
    if not settled.moved_money:
        # A kept revocation has nothing to revoke here: the forwarding moved no money.
        return Outcome.FAILED
    kept = book.deferred_revocation(settled.token)
    if kept is not None:
        book.revoke(settled, kept)
    return Outcome.APPLIED


def _apply_revocation(book: LedgerBook, event: RevocationEvent) -> Outcome:
    donation = book.get_donation(event.token)
    if donation is None:
        # Streams arrive out of order: the donation may still come, and is revoked then.
        if book.deferred_revocation(event.token) is None:
            book.defer_revocation(event)
        return Outcome.DEFERRED
    if not donation.moved_money:
        if book.deferred_revocation(event.token) is not None:
            return Outcome.UNCHANGED  # kept before the forwarding arrived and failed
        raise BookingRejected("token", f"{event.token} failed and moved no money")
    if book.is_revoked(event.token):
        return Outcome.UNCHANGED
    book.revoke(donation, event)
    matching = book.matching_donation_of(donation.token)
    if matching is not None and not book.is_revoked(matching.token):
        book.revoke(matching, event)
    return Outcome.APPLIED
