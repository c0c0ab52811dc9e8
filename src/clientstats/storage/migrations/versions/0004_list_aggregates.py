"""Aggregates behind the drill-down lists, backfilled from the ledger.

Per project: confirmed entries (matching ones aside), matched money and the last donation's
time; per client and project: the client's own donations; pool and matching counts. Indexes
let the client donations and forwardings lists walk newest first at a constant cost per page.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from clientstats.storage.tables import UtcDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_CONFIRMED = (
    "d.failure_code IS NULL AND NOT EXISTS (SELECT 1 FROM revocations r WHERE r.token = d.token)"
)
_TO_PROJECT = f"d.project_id = project_totals.project_id AND {_CONFIRMED}"


def _count(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger(), nullable=False, server_default="0")


def upgrade() -> None:
    with op.batch_alter_table("project_totals") as batch:
        batch.add_column(_count("donations_count"))
        batch.add_column(_count("matched_in_cents"))
        batch.add_column(sa.Column("last_donation_at", UtcDateTime(), nullable=True))
    with op.batch_alter_table("client_totals") as batch:
        batch.add_column(_count("pool_in_count"))
        batch.add_column(_count("pool_out_count"))
    with op.batch_alter_table("matching_fund_totals") as batch:
        batch.add_column(_count("matched_count"))
    op.create_table(
        "client_project_totals",
        sa.Column("client_id", sa.String(64), sa.ForeignKey("clients.permalink"), primary_key=True),
        sa.Column("project_id", sa.BigInteger(), sa.ForeignKey("projects.id"), primary_key=True),
        _count("client_donated_in_cents"),
        _count("client_donations_count"),
    )
    op.create_index(
        "ix_donations_client_channel_created",
        "donations",
        ["client_id", "channel", "created_at", "id"],
    )
    op.create_index("ix_client_requests_donation_token", "client_requests", ["donation_token"])
    _backfill()


def _backfill() -> None:
    entries = f"FROM donations d WHERE {_TO_PROJECT}"
    op.execute(
        "UPDATE project_totals SET "
        f"donations_count = (SELECT COUNT(*) {entries} AND d.channel <> 'matching'), "
        "matched_in_cents = "
        f"(SELECT COALESCE(SUM(d.amount_in_cents), 0) {entries} AND d.channel = 'matching'), "
        f"last_donation_at = (SELECT MAX(d.created_at) {entries} AND d.channel <> 'matching')"
    )
    op.execute(
        "INSERT INTO client_project_totals "
        "(client_id, project_id, client_donated_in_cents, client_donations_count) "
        "SELECT d.client_id, d.project_id, SUM(d.amount_in_cents), COUNT(*) FROM donations d "
        f"WHERE d.channel = 'client' AND d.project_id IS NOT NULL AND {_CONFIRMED} "
        "GROUP BY d.client_id, d.project_id"
    )
    op.execute(
        "UPDATE client_totals SET "
        "pool_in_count = (SELECT COUNT(*) FROM donations d "
        f"WHERE d.pool_client_id = client_totals.client_id AND {_CONFIRMED}), "
        "pool_out_count = (SELECT COUNT(*) FROM donations d WHERE d.channel = 'forwarding' "
        f"AND d.client_id = client_totals.client_id AND {_CONFIRMED})"
    )
    op.execute(
        "UPDATE matching_fund_totals SET matched_count = (SELECT COUNT(*) FROM donations d "
        f"WHERE d.matching_fund_id = matching_fund_totals.fund_id AND {_CONFIRMED})"
    )


def downgrade() -> None:
    op.drop_index("ix_client_requests_donation_token", "client_requests")
    op.drop_index("ix_donations_client_channel_created", "donations")
    op.drop_table("client_project_totals")
    with op.batch_alter_table("matching_fund_totals") as batch:
        batch.drop_column("matched_count")
    with op.batch_alter_table("client_totals") as batch:
        batch.drop_column("pool_out_count")
        batch.drop_column("pool_in_count")
    with op.batch_alter_table("project_totals") as batch:
        batch.drop_column("last_donation_at")
        batch.drop_column("matched_in_cents")
        batch.drop_column("donations_count")
