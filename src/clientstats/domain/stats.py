"""The eight figures as pure functions over ledger entries: the reference oracle."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from clientstats.domain.ledger import Channel, Donation, MatchingFund, Need

RESPONSE_KEYS: tuple[str, ...] = (
    "donated_amount_in_cents",
    "pool_balance_in_cents",
    "open_amount_in_cents",
    "requested_amount_in_cents",
    "projects_count",
    "client_donated_amount_in_cents",
    "client_matched_amount_in_cents",
    "client_donations_count",
)


@dataclass(frozen=True, slots=True)
class Statistics:
    """The eight integer figures of the Client Project Statistics endpoint."""

    donated_amount_in_cents: int
    pool_balance_in_cents: int
    open_amount_in_cents: int
    requested_amount_in_cents: int
    projects_count: int
    client_donated_amount_in_cents: int
    client_matched_amount_in_cents: int
    client_donations_count: int

    def as_response(self) -> dict[str, object]:
        """The statistics response body, keys in the documented order."""
        body: dict[str, object] = {key: getattr(self, key) for key in RESPONSE_KEYS}
        body["links"] = []
        return body


@dataclass(frozen=True, slots=True)
class NeedFill:
    """How much of one need is donated and how much is still open."""

    need: Need
    donated_in_cents: int
    open_in_cents: int


def fill_needs(needs: Iterable[Need], money_in_cents: int) -> list[NeedFill]:
    """Fill a project's needs in ascending id from its money, each up to its request."""
    left = max(0, money_in_cents)
    fills = []
    for need in sorted(needs, key=lambda n: n.id):
        donated = min(need.requested_amount_in_cents, left)
        left -= donated
        fills.append(NeedFill(need, donated, need.requested_amount_in_cents - donated))
    return fills


@dataclass(slots=True)
class LedgerTotals:
    """Confirmed money per receiver and per client, folded from ledger entries one by one."""

    project_money: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    pool_in: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    pool_out: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    client_donated: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    client_donations: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    fund_matched: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    # What the drill-down lists show besides: counts, per-project matching, the last donation.
    project_donations: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    project_matched: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    project_last_donation: dict[int, datetime] = field(default_factory=dict)
    client_project_donated: dict[tuple[str, int], int] = field(
        default_factory=lambda: defaultdict(int)
    )
    client_project_donations: dict[tuple[str, int], int] = field(
        default_factory=lambda: defaultdict(int)
    )
    pool_in_count: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    pool_out_count: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    fund_matched_count: dict[int, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, donation: Donation, *, revoked: bool) -> None:
        """Count one entry; failed and revoked entries count as if never booked."""
        if revoked or not donation.moved_money:
            return
        amount = donation.amount_in_cents
        if donation.project_id is not None:
            self.project_money[donation.project_id] += amount
            self._add_to_project(donation.project_id, donation)
        if donation.pool_client_id is not None:
            self.pool_in[donation.pool_client_id] += amount
            self.pool_in_count[donation.pool_client_id] += 1
        if donation.channel is Channel.FORWARDING and donation.client_id is not None:
            self.pool_out[donation.client_id] += amount
            self.pool_out_count[donation.client_id] += 1
        if donation.channel is Channel.CLIENT and donation.client_id is not None:
            self.client_donated[donation.client_id] += amount
            self.client_donations[donation.client_id] += 1
            if donation.project_id is not None:
                self.client_project_donated[(donation.client_id, donation.project_id)] += amount
                self.client_project_donations[(donation.client_id, donation.project_id)] += 1
        if donation.channel is Channel.MATCHING and donation.matching_fund_id is not None:
            self.fund_matched[donation.matching_fund_id] += amount
            self.fund_matched_count[donation.matching_fund_id] += 1

    def _add_to_project(self, project_id: int, donation: Donation) -> None:
        if donation.channel is Channel.MATCHING:
            self.project_matched[project_id] += donation.amount_in_cents
            return
        self.project_donations[project_id] += 1
        last = self.project_last_donation.get(project_id)
        if last is None or donation.created_at > last:
            self.project_last_donation[project_id] = donation.created_at


def client_statistics(
    *,
    client_id: str,
    has_pool: bool,
    project_ids: Iterable[int],
    needs_by_project: Mapping[int, Iterable[Need]],
    funds: Iterable[MatchingFund],
    totals: LedgerTotals,
) -> Statistics:
    """Compute the eight figures of one client the slow, obvious way."""
    requested = open_amount = count = 0
    for project_id in set(project_ids):
        count += 1
        fills = fill_needs(needs_by_project.get(project_id, ()), totals.project_money[project_id])
        requested += sum(f.need.requested_amount_in_cents for f in fills)
        open_amount += sum(f.open_in_cents for f in fills)
    matched = sum(totals.fund_matched[f.id] for f in funds if f.client_id == client_id)
    pool_balance = totals.pool_in[client_id] - totals.pool_out[client_id] if has_pool else 0
    return Statistics(
        donated_amount_in_cents=requested - open_amount,
        pool_balance_in_cents=pool_balance,
        open_amount_in_cents=open_amount,
        requested_amount_in_cents=requested,
        projects_count=count,
        client_donated_amount_in_cents=totals.client_donated[client_id],
        client_matched_amount_in_cents=matched,
        client_donations_count=totals.client_donations[client_id],
    )
