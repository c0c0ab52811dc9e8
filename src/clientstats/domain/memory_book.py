"""An in-memory book of record: the reference the stored ledger is checked against."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from clientstats.domain.booking import Outcome, apply_event
from clientstats.domain.events import Event, RevocationEvent
from clientstats.domain.ledger import (
    BookingRejected,
    Client,
    Donation,
    FundBudget,
    MatchingFund,
    Need,
    Project,
)
from clientstats.domain.stats import LedgerTotals, Statistics, client_statistics


@dataclass
class MemoryBook:
    """Reference data and ledger entries held in dicts; implements booking.LedgerBook."""

    clients: dict[str, Client] = field(default_factory=dict)
    projects: dict[int, Project] = field(default_factory=dict)
    needs: dict[int, Need] = field(default_factory=dict)
    funds: dict[int, MatchingFund] = field(default_factory=dict)
    members: set[tuple[str, int]] = field(default_factory=set)
    donations: dict[str, Donation] = field(default_factory=dict)
    revoked: set[str] = field(default_factory=set)
    deferred: dict[str, RevocationEvent] = field(default_factory=dict)  # kept, never removed

    def get_client(self, permalink: str) -> Client | None:
        return self.clients.get(permalink)

    def get_project(self, project_id: int) -> Project | None:
        return self.projects.get(project_id)

    def get_need(self, need_id: int) -> Need | None:
        return self.needs.get(need_id)

    def get_matching_fund(self, fund_id: int) -> MatchingFund | None:
        return self.funds.get(fund_id)

    def get_donation(self, token: str) -> Donation | None:
        return self.donations.get(token)

    def token_for_client_reference(self, client_id: str, reference: str) -> str | None:
        for donation in self.donations.values():
            if donation.client_id == client_id and donation.client_reference == reference:
                return donation.token
        return None

    def is_revoked(self, token: str) -> bool:
        return token in self.revoked

    def is_member(self, client_id: str, project_id: int) -> bool:
        return (client_id, project_id) in self.members

    def pool_balance(self, client_id: str) -> int:
        return self.totals().pool_in[client_id] - self.totals().pool_out[client_id]

    def matching_budgets(self, project_id: int) -> list[FundBudget]:
        matched = self.totals().fund_matched
        return [
            FundBudget(
                f.id, f.maximum_matching_amount_in_cents, f.provided_amount_in_cents - matched[f.id]
            )
            for f in sorted(self.funds.values(), key=lambda f: f.id)
            if f.matches(project_id)
        ]

    def matching_donation_of(self, token: str) -> Donation | None:
        for donation in self.donations.values():
            if donation.matched_token == token:
                return donation
        return None

    def deferred_revocation(self, token: str) -> RevocationEvent | None:
        return self.deferred.get(token)

    def save_client(self, client: Client) -> None:
        self.clients[client.permalink] = client

    def save_project(self, project: Project) -> None:
        self.projects[project.id] = project

    def save_need(self, need: Need) -> None:
        self.needs[need.id] = need

    def save_matching_fund(self, fund: MatchingFund) -> None:
        self.funds[fund.id] = fund

    def set_member(self, client_id: str, project_id: int, member: bool) -> None:
        if member:
            self.members.add((client_id, project_id))
        else:
            self.members.discard((client_id, project_id))

    def book(self, donation: Donation) -> None:
        assert donation.token not in self.donations
        self.donations[donation.token] = donation

    def revoke(self, donation: Donation, event: RevocationEvent) -> None:
        self.revoked.add(donation.token)

    def defer_revocation(self, event: RevocationEvent) -> None:
        assert event.token not in self.deferred
        self.deferred[event.token] = event

    def unmet_revocations(self) -> dict[str, RevocationEvent]:
        """Kept revocations whose donation was never booked, by token."""
        return {t: r for t, r in sorted(self.deferred.items()) if t not in self.donations}

    def apply(self, event: Event) -> Outcome | BookingRejected:
        """Apply an event; a rejection is returned (as data), leaving the book unchanged."""
        try:
            return apply_event(self, event)
        except BookingRejected as rejected:
            return rejected

    def totals(self) -> LedgerTotals:
        """Money per receiver and client, folded from every entry."""
        totals = LedgerTotals()
        for donation in self.donations.values():
            totals.add(donation, revoked=donation.token in self.revoked)
        return totals

    def statistics(self, client_id: str) -> Statistics:
        """The eight figures of one client, computed from scratch."""
        client = self.clients[client_id]
        needs_by_project: dict[int, list[Need]] = defaultdict(list)
        for need in self.needs.values():
            needs_by_project[need.project_id].append(need)
        return client_statistics(
            client_id=client_id,
            has_pool=client.has_pool,
            project_ids=[p for (c, p) in self.members if c == client_id],
            needs_by_project=needs_by_project,
            funds=self.funds.values(),
            totals=self.totals(),
        )
