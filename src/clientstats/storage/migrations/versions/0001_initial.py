"""Initial schema: reference data, the append-only ledger, aggregates.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from clientstats.storage.tables import CHANNELS, Serial, UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _money(name: str, default: str | None = None) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger(), nullable=False, server_default=default)


def upgrade() -> None:
    op.create_table(
        "clients",
        sa.Column("permalink", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("has_pool", sa.Boolean(), nullable=False),
        sa.Column("statistics_private", sa.Boolean(), nullable=False),
        sa.Column("api_username", sa.String(64), nullable=True, unique=True),
        sa.Column("api_password_hash", sa.String(255), nullable=True),
    )
    op.create_table(
        "projects",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("closed", sa.Boolean(), nullable=False),
        sa.Column("donations_prohibited", sa.Boolean(), nullable=False),
        sa.CheckConstraint("id >= 1", name="id_positive"),
    )
    op.create_table(
        "client_projects",
        sa.Column("client_id", sa.String(64), sa.ForeignKey("clients.permalink"), primary_key=True),
        sa.Column("project_id", sa.BigInteger(), sa.ForeignKey("projects.id"), primary_key=True),
    )
    op.create_index("ix_client_projects_project_id", "client_projects", ["project_id"])
    op.create_table(
        "needs",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("project_id", sa.BigInteger(), sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        _money("requested_amount_in_cents"),
        sa.CheckConstraint("id >= 1", name="id_positive"),
        sa.CheckConstraint("requested_amount_in_cents >= 1", name="requested_positive"),
    )
    op.create_index("ix_needs_project_id", "needs", ["project_id"])
    _create_matching_funds()
    _create_ledger()
    _create_aggregates()


def _create_matching_funds() -> None:
    op.create_table(
        "matching_funds",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("client_id", sa.String(64), sa.ForeignKey("clients.permalink"), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        _money("provided_amount_in_cents"),
        _money("maximum_matching_amount_in_cents"),
        sa.Column("state", sa.String(16), nullable=False),
        sa.CheckConstraint("provided_amount_in_cents >= 0", name="provided_not_negative"),
        sa.CheckConstraint("maximum_matching_amount_in_cents >= 1", name="maximum_positive"),
        sa.CheckConstraint("state IN ('activated', 'closed')", name="state_known"),
    )
    op.create_index("ix_matching_funds_client_id", "matching_funds", ["client_id"])
    op.create_table(
        "matching_fund_projects",
        sa.Column("fund_id", sa.BigInteger(), sa.ForeignKey("matching_funds.id"), primary_key=True),
        sa.Column("project_id", sa.BigInteger(), sa.ForeignKey("projects.id"), primary_key=True),
    )
    op.create_index(
        "ix_matching_fund_projects_project_id", "matching_fund_projects", ["project_id"]
    )


def _create_ledger() -> None:
    op.create_table(
        "donations",
        sa.Column("id", Serial, primary_key=True, autoincrement=True),
        sa.Column("token", sa.String(100), nullable=False, unique=True),
        sa.Column("channel", sa.String(16), nullable=False),
        _money("amount_in_cents"),
        sa.Column("project_id", sa.BigInteger(), sa.ForeignKey("projects.id"), nullable=True),
        sa.Column("pool_client_id", sa.String(64), sa.ForeignKey("clients.permalink")),
        sa.Column("client_id", sa.String(64), sa.ForeignKey("clients.permalink")),
        sa.Column("client_reference", sa.String(128)),
        sa.Column("tracking_via", sa.String(200)),
        sa.Column("matching_fund_id", sa.BigInteger(), sa.ForeignKey("matching_funds.id")),
        sa.Column("matched_token", sa.String(100), sa.ForeignKey("donations.token"), unique=True),
        sa.Column("redirected_from_project_id", sa.BigInteger(), sa.ForeignKey("projects.id")),
        sa.Column("failure_code", sa.String(64)),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("booked_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint("amount_in_cents > 0", name="amount_positive"),
        sa.CheckConstraint(f"channel IN {CHANNELS}", name="channel_known"),
        sa.CheckConstraint(
            "(project_id IS NULL) <> (pool_client_id IS NULL)", name="exactly_one_receiver"
        ),
        sa.CheckConstraint(
            "channel <> 'client' OR client_id IS NOT NULL", name="client_has_client"
        ),
        sa.CheckConstraint(
            "channel <> 'forwarding' OR (client_id IS NOT NULL AND project_id IS NOT NULL)",
            name="forwarding_from_pool_to_project",
        ),
        sa.CheckConstraint(
            "channel <> 'matching' OR (matching_fund_id IS NOT NULL AND matched_token IS NOT NULL)",
            name="matching_has_fund",
        ),
        sa.CheckConstraint(
            "failure_code IS NULL OR channel = 'forwarding'", name="only_forwardings_fail"
        ),
        sa.UniqueConstraint("client_id", "client_reference", name="uq_donations_client_reference"),
    )
    op.create_index("ix_donations_project_id", "donations", ["project_id"])
    op.create_index("ix_donations_pool_client_id", "donations", ["pool_client_id"])
    op.create_table(
        "revocations",
        sa.Column("id", Serial, primary_key=True, autoincrement=True),
        sa.Column(
            "token", sa.String(100), sa.ForeignKey("donations.token"), nullable=False, unique=True
        ),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("booked_at", UtcDateTime(), nullable=False),
    )


def _create_aggregates() -> None:
    op.create_table(
        "project_totals",
        sa.Column("project_id", sa.BigInteger(), sa.ForeignKey("projects.id"), primary_key=True),
        _money("requested_in_cents", "0"),
        _money("money_in_cents", "0"),
    )
    op.create_table(
        "client_totals",
        sa.Column("client_id", sa.String(64), sa.ForeignKey("clients.permalink"), primary_key=True),
        _money("client_donated_in_cents", "0"),
        _money("client_donations_count", "0"),
        _money("pool_in_cents", "0"),
        _money("pool_out_cents", "0"),
        sa.Column("version", sa.BigInteger(), nullable=False, server_default="0"),
    )
    op.create_table(
        "matching_fund_totals",
        sa.Column("fund_id", sa.BigInteger(), sa.ForeignKey("matching_funds.id"), primary_key=True),
        _money("matched_in_cents", "0"),
    )


def downgrade() -> None:
    for table in (
        "matching_fund_totals",
        "client_totals",
        "project_totals",
        "revocations",
        "donations",
        "matching_fund_projects",
        "matching_funds",
        "needs",
        "client_projects",
        "projects",
        "clients",
    ):
        op.drop_table(table)
