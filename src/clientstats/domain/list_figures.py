"""The figures the drill-down lists show per project, need, pool and fund: pure rules.

The service computes them from stored aggregates with these functions; tests compute them
from a MemoryBook's ledger with the same rules (`project_figures_from_ledger`), the oracle.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from clientstats.domain.ledger import Need
from clientstats.domain.stats import LedgerTotals, fill_needs


def progress_percentage(requested_in_cents: int, open_in_cents: int) -> int:
    """floor(100 * (requested - open) / requested); 0 without anything requested."""
    if requested_in_cents <= 0:
        return 0
    return (100 * (requested_in_cents - open_in_cents)) // requested_in_cents


@dataclass(frozen=True, slots=True)
class NeedFigures:
    """One need as the needs list shows it."""

    need: Need
    donated_in_cents: int
    open_in_cents: int

    @property
    def completed(self) -> bool:
        return self.open_in_cents == 0

    @property
    def progress_percentage(self) -> int:
        return progress_percentage(self.need.requested_amount_in_cents, self.open_in_cents)


def need_figures(needs: Iterable[Need], money_in_cents: int) -> list[NeedFigures]:
    """Every need of a project filled from its money (ascending id), as listed."""
    return [
        NeedFigures(f.need, f.donated_in_cents, f.open_in_cents)
        for f in fill_needs(needs, money_in_cents)
    ]


@dataclass(frozen=True, slots=True)
class ProjectFigures:
    """The money figures of one project of a client's list."""

    requested_in_cents: int
    open_in_cents: int
    donated_in_cents: int  # all confirmed money on it, over-funding included
    donations_count: int
    matched_in_cents: int
    client_donated_in_cents: int
    completed_need_count: int
    incomplete_need_count: int
    last_donation_at: datetime | None

    @property
    def progress_percentage(self) -> int:
        return progress_percentage(self.requested_in_cents, self.open_in_cents)

    @property
    def completed(self) -> bool:
        return self.requested_in_cents > 0 and self.open_in_cents == 0


def project_figures(
    *,
    needs: Iterable[Need],
    money_in_cents: int,
    donations_count: int,
    matched_in_cents: int,
    client_donated_in_cents: int,
    last_donation_at: datetime | None,
) -> ProjectFigures:
    """A project's figures from its needs and its money."""
    fills = need_figures(needs, money_in_cents)
    requested = sum(f.need.requested_amount_in_cents for f in fills)
    return ProjectFigures(
        requested_in_cents=requested,
        open_in_cents=sum(f.open_in_cents for f in fills),
        donated_in_cents=money_in_cents,
        donations_count=donations_count,
        matched_in_cents=matched_in_cents,
        client_donated_in_cents=client_donated_in_cents,
        completed_need_count=sum(1 for f in fills if f.completed),
        incomplete_need_count=sum(1 for f in fills if not f.completed),
        last_donation_at=last_donation_at,
    )


def project_figures_from_ledger(
    totals: LedgerTotals, *, project_id: int, client_id: str, needs: Iterable[Need]
) -> ProjectFigures:
    """The reference: a project's figures for a client folded from every ledger entry."""
    return project_figures(
        needs=[n for n in needs if n.project_id == project_id],
        money_in_cents=totals.project_money.get(project_id, 0),
        donations_count=totals.project_donations.get(project_id, 0),
        matched_in_cents=totals.project_matched.get(project_id, 0),
        client_donated_in_cents=totals.client_project_donated.get((client_id, project_id), 0),
        last_donation_at=totals.project_last_donation.get(project_id),
    )
