"""Table definitions: reference data, the append-only ledger and its maintained aggregates."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    TypeDecorator,
    UniqueConstraint,
    text,
)

metadata = MetaData()

# SQLite only makes INTEGER PRIMARY KEY an auto-incrementing rowid; PostgreSQL gets BIGINT.
Serial = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """Timestamps stored in UTC and always read back timezone-aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _money(name: str, **kwargs: Any) -> Column[int]:
    return Column(name, BigInteger, nullable=False, **kwargs)


clients = Table(
    "clients",
    metadata,
    Column("permalink", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("has_pool", Boolean, nullable=False),
    Column("statistics_private", Boolean, nullable=False),
    Column("api_username", String(64), nullable=True, unique=True),
    Column("api_password_hash", String(255), nullable=True),
)

projects = Table(
    "projects",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("title", String(200), nullable=False),
    Column("closed", Boolean, nullable=False),
    Column("donations_prohibited", Boolean, nullable=False),
    CheckConstraint("id >= 1", name="id_positive"),
)

client_projects = Table(
    "client_projects",
    metadata,
    Column("client_id", String(64), ForeignKey("clients.permalink"), primary_key=True),
    Column("project_id", BigInteger, ForeignKey("projects.id"), primary_key=True),
    Index("ix_client_projects_project_id", "project_id"),
)

needs = Table(
    "needs",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("project_id", BigInteger, ForeignKey("projects.id"), nullable=False, index=True),
    Column("title", String(200), nullable=False),
    _money("requested_amount_in_cents"),
    CheckConstraint("id >= 1", name="id_positive"),
    CheckConstraint("requested_amount_in_cents >= 1", name="requested_positive"),
)

matching_funds = Table(
    "matching_funds",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("client_id", String(64), ForeignKey("clients.permalink"), nullable=False, index=True),
    Column("title", String(200), nullable=False),
    _money("provided_amount_in_cents"),
    _money("maximum_matching_amount_in_cents"),
    Column("state", String(16), nullable=False),
    CheckConstraint("provided_amount_in_cents >= 0", name="provided_not_negative"),
    CheckConstraint("maximum_matching_amount_in_cents >= 1", name="maximum_positive"),
    CheckConstraint("state IN ('activated', 'closed')", name="state_known"),
)

matching_fund_projects = Table(
    "matching_fund_projects",
    metadata,
    Column("fund_id", BigInteger, ForeignKey("matching_funds.id"), primary_key=True),
    Column("project_id", BigInteger, ForeignKey("projects.id"), primary_key=True),
    Index("ix_matching_fund_projects_project_id", "project_id"),
)

CHANNELS = "('platform', 'client', 'external', 'offline', 'matching', 'forwarding')"

donations = Table(
    "donations",
    metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("token", String(100), nullable=False, unique=True),
    Column("channel", String(16), nullable=False),
    _money("amount_in_cents"),
    Column("project_id", BigInteger, ForeignKey("projects.id"), nullable=True),
    Column("pool_client_id", String(64), ForeignKey("clients.permalink"), nullable=True),
    Column("client_id", String(64), ForeignKey("clients.permalink"), nullable=True),
    Column("client_reference", String(128), nullable=True),
    Column("tracking_via", String(200), nullable=True),
    Column("matching_fund_id", BigInteger, ForeignKey("matching_funds.id"), nullable=True),
    Column("matched_token", String(100), ForeignKey("donations.token"), nullable=True, unique=True),
    Column("redirected_from_project_id", BigInteger, ForeignKey("projects.id"), nullable=True),
    Column("failure_code", String(64), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("booked_at", UtcDateTime(), nullable=False),
    CheckConstraint("amount_in_cents > 0", name="amount_positive"),
    CheckConstraint(f"channel IN {CHANNELS}", name="channel_known"),
    CheckConstraint(
        "(project_id IS NULL) <> (pool_client_id IS NULL)", name="exactly_one_receiver"
    ),
    CheckConstraint("channel <> 'client' OR client_id IS NOT NULL", name="client_has_client"),
    CheckConstraint(
        "channel <> 'forwarding' OR (client_id IS NOT NULL AND project_id IS NOT NULL)",
        name="forwarding_from_pool_to_project",
    ),
    CheckConstraint(
        "channel <> 'matching' OR (matching_fund_id IS NOT NULL AND matched_token IS NOT NULL)",
        name="matching_has_fund",
    ),
    CheckConstraint("failure_code IS NULL OR channel = 'forwarding'", name="only_forwardings_fail"),
    UniqueConstraint("client_id", "client_reference", name="uq_donations_client_reference"),
    # Partial: only the entries a lookup can name (a pool, a client) are indexed.
    Index(
        "ix_donations_pool_client_id",
        "pool_client_id",
        sqlite_where=text("pool_client_id IS NOT NULL"),
        postgresql_where=text("pool_client_id IS NOT NULL"),
    ),
    # A project's entries newest first: its last donation is a few steps from the end.
    Index("ix_donations_project_created", "project_id", "created_at"),
    # The client donations and forwardings lists walk a client's entries newest first.
    Index(
        "ix_donations_client_channel_created",
        "client_id",
        "channel",
        "created_at",
        "id",
        sqlite_where=text("client_id IS NOT NULL"),
        postgresql_where=text("client_id IS NOT NULL"),
    ),
)

revocations = Table(
    "revocations",
    metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("token", String(100), ForeignKey("donations.token"), nullable=False, unique=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("booked_at", UtcDateTime(), nullable=False),
)

# Aggregates kept in the same transaction as every booking, so statistics never scan donations.
project_totals = Table(
    "project_totals",
    metadata,
    Column("project_id", BigInteger, ForeignKey("projects.id"), primary_key=True),
    _money("requested_in_cents", server_default="0"),
    _money("money_in_cents", server_default="0"),
    # Confirmed entries to the project other than matching ones, and the matched money.
    _money("donations_count", server_default="0"),
    _money("matched_in_cents", server_default="0"),
    Column("last_donation_at", UtcDateTime(), nullable=True),
)

# What each client's own `client` donations brought to each project.
client_project_totals = Table(
    "client_project_totals",
    metadata,
    Column("client_id", String(64), ForeignKey("clients.permalink"), primary_key=True),
    Column("project_id", BigInteger, ForeignKey("projects.id"), primary_key=True),
    _money("client_donated_in_cents", server_default="0"),
    _money("client_donations_count", server_default="0"),
)

client_totals = Table(
    "client_totals",
    metadata,
    Column("client_id", String(64), ForeignKey("clients.permalink"), primary_key=True),
    _money("client_donated_in_cents", server_default="0"),
    _money("client_donations_count", server_default="0"),
    _money("pool_in_cents", server_default="0"),
    _money("pool_out_cents", server_default="0"),
    _money("pool_in_count", server_default="0"),
    _money("pool_out_count", server_default="0"),
    # A random token, new whenever any figure of the client may have changed; caches compare
    # it and the shared cache keys by it, so it never repeats across restores or deployments.
    Column("version", BigInteger, nullable=False, server_default="0"),
    # The change feed's sequence number of that change: "what changed since" reads by it.
    Column("changed_seq", BigInteger, nullable=False, server_default="0"),
    Index("ix_client_totals_changed_seq", "changed_seq"),
)

matching_fund_totals = Table(
    "matching_fund_totals",
    metadata,
    Column("fund_id", BigInteger, ForeignKey("matching_funds.id"), primary_key=True),
    _money("matched_in_cents", server_default="0"),
    _money("matched_count", server_default="0"),
)

# Revocations whose donation is not booked (yet): kept, and applied when it arrives.
deferred_revocations = Table(
    "deferred_revocations",
    metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("token", String(100), nullable=False, unique=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("booked_at", UtcDateTime(), nullable=False),
)

# The change feed. Every transaction that may change figures takes the next `seq` from the
# one row of `change_feed`, which stays locked until it commits, so sequence order is commit
# order; `stamp` is random, so a restored database never hands out a (seq, stamp) pair again.
change_feed = Table(
    "change_feed",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("stamp", BigInteger, nullable=False),
    CheckConstraint("id = 1", name="single_row"),
)

# The recent (seq, stamp) pairs: a reader checks that the position it read from is still
# part of the history (a restore replaces it), else it reads everything again.
change_log = Table(
    "change_log",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("stamp", BigInteger, nullable=False),
)

# Writes a client made through the API: stored before the 202, booked by a worker.
client_requests = Table(
    "client_requests",
    metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("client_id", String(64), ForeignKey("clients.permalink"), nullable=False),
    Column("client_reference", String(128), nullable=False),
    Column("project_id", BigInteger, ForeignKey("projects.id"), nullable=True),
    _money("amount_in_cents"),
    Column("tracking_via", String(200), nullable=True),
    Column("details", String(8000), nullable=False),
    Column("state", String(16), nullable=False),
    Column("failure_code", String(64), nullable=True),
    Column("donation_token", String(100), ForeignKey("donations.token"), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("confirmed_at", UtcDateTime(), nullable=True),
    Column("failed_at", UtcDateTime(), nullable=True),
    CheckConstraint("amount_in_cents > 0", name="request_amount_positive"),
    CheckConstraint("kind IN ('pledge', 'forwarding')", name="request_kind_known"),
    CheckConstraint("state IN ('pending', 'confirmed', 'failed')", name="request_state_known"),
    CheckConstraint("kind = 'pledge' OR project_id IS NOT NULL", name="forwarding_has_project"),
    UniqueConstraint("client_id", "client_reference", name="uq_client_requests_reference"),
    Index("ix_client_requests_state_id", "state", "id"),
    Index("ix_client_requests_donation_token", "donation_token"),
)
