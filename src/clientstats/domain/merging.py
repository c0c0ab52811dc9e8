"""Upserts of reference data: a later event changes the fields it names, no others."""

from __future__ import annotations

from typing import TypeVar

from clientstats.domain.events import ClientEvent, MatchingFundEvent, NeedEvent, ProjectEvent
from clientstats.domain.ledger import BookingRejected, Client, MatchingFund, Need, Project

T = TypeVar("T")


def _required_on_create(value: T | None, field: str, what: str) -> T:
    if value is None:
        raise BookingRejected(field, f"is required when the {what} is created")
    return value


def _keep(new: T | None, old: T) -> T:
    return old if new is None else new


def merge_client(existing: Client | None, event: ClientEvent) -> Client:
    """The client after applying `event`; creating one requires a name."""
    if existing is None:
        existing = Client(
            permalink=event.id, name=_required_on_create(event.name, "name", "client")
        )
    return Client(
        permalink=existing.permalink,
        name=_keep(event.name, existing.name),
        has_pool=_keep(event.pool, existing.has_pool),
        statistics_private=_keep(event.statistics_private, existing.statistics_private),
    )


def merge_project(existing: Project | None, event: ProjectEvent) -> Project:
    """The project after applying `event`; creating one requires a title."""
    if existing is None:
        existing = Project(id=event.id, title=_required_on_create(event.title, "title", "project"))
    return Project(
        id=existing.id,
        title=_keep(event.title, existing.title),
        closed=_keep(event.closed, existing.closed),
        donations_prohibited=_keep(event.donations_prohibited, existing.donations_prohibited),
    )


def merge_need(existing: Need | None, event: NeedEvent) -> Need:
    """The need after applying `event`; creating one requires project, title and amount."""
    if existing is None:
        what = "need"
        return Need(
            id=event.id,
            project_id=_required_on_create(event.project_id, "project_id", what),
            title=_required_on_create(event.title, "title", what),
            requested_amount_in_cents=_required_on_create(
                event.requested_amount_in_cents, "requested_amount_in_cents", what
            ),
        )
    return Need(
        id=existing.id,
        project_id=_keep(event.project_id, existing.project_id),
        title=_keep(event.title, existing.title),
        requested_amount_in_cents=_keep(
            event.requested_amount_in_cents, existing.requested_amount_in_cents
        ),
    )


def merge_matching_fund(existing: MatchingFund | None, event: MatchingFundEvent) -> MatchingFund:
    """The fund after applying `event`; creating one requires client and both amounts."""
    if existing is None:
        what = "matching fund"
        existing = MatchingFund(
            id=event.id,
            client_id=_required_on_create(event.client_id, "client_id", what),
            title=f"Matching fund {event.id}",
            provided_amount_in_cents=_required_on_create(
                event.provided_amount_in_cents, "provided_amount_in_cents", what
            ),
            maximum_matching_amount_in_cents=_required_on_create(
                event.maximum_matching_amount_in_cents, "maximum_matching_amount_in_cents", what
            ),
        )
    return MatchingFund(
        id=existing.id,
        client_id=_keep(event.client_id, existing.client_id),
        title=_keep(event.title, existing.title),
        provided_amount_in_cents=_keep(
            event.provided_amount_in_cents, existing.provided_amount_in_cents
        ),
        maximum_matching_amount_in_cents=_keep(
            event.maximum_matching_amount_in_cents, existing.maximum_matching_amount_in_cents
        ),
        state=_keep(event.state, existing.state),
        project_ids=_keep(event.project_ids, existing.project_ids),
    )
