"""The ledger event types: what a validated event line becomes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from clientstats.domain.ledger import Donation


@dataclass(frozen=True, slots=True)
class ClientEvent:
    """Create or update a client; None means "not named in the event"."""

    id: str
    name: str | None
    pool: bool | None
    statistics_private: bool | None


@dataclass(frozen=True, slots=True)
class ProjectEvent:
    """Create or update a project."""

    id: int
    title: str | None
    closed: bool | None
    donations_prohibited: bool | None


@dataclass(frozen=True, slots=True)
class ClientProjectEvent:
    """Add a project to a client's projects (member) or remove it."""

    client_id: str
    project_id: int
    member: bool


@dataclass(frozen=True, slots=True)
class NeedEvent:
    """Create or update a need."""

    id: int
    project_id: int | None
    title: str | None
    requested_amount_in_cents: int | None


@dataclass(frozen=True, slots=True)
class MatchingFundEvent:
    """Create or update a matching fund."""

    id: int
    client_id: str | None
    title: str | None
    provided_amount_in_cents: int | None
    maximum_matching_amount_in_cents: int | None
    state: str | None
    project_ids: frozenset[int] | None


@dataclass(frozen=True, slots=True)
class DonationEvent:
    """Book a donation (not yet routed: ledger.route_donation checks the booking rules)."""

    donation: Donation
    created_at_given: bool


@dataclass(frozen=True, slots=True)
class ForwardingEvent:
    """Forward money from a client's pool to a project."""

    forwarding: Donation
    created_at_given: bool


@dataclass(frozen=True, slots=True)
class RevocationEvent:
    """Revoke a booked donation."""

    token: str
    created_at: datetime


Event = (
    ClientEvent
    | ProjectEvent
    | ClientProjectEvent
    | NeedEvent
    | MatchingFundEvent
    | DonationEvent
    | ForwardingEvent
    | RevocationEvent
)
