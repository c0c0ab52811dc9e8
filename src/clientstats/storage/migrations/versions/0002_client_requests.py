"""Client requests: donation pledges and forwarding requests.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from clientstats.storage.tables import Serial, UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "client_requests",
        sa.Column("id", Serial, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("client_id", sa.String(64), sa.ForeignKey("clients.permalink"), nullable=False),
        sa.Column("client_reference", sa.String(128), nullable=False),
        sa.Column("project_id", sa.BigInteger(), sa.ForeignKey("projects.id"), nullable=True),
        sa.Column("amount_in_cents", sa.BigInteger(), nullable=False),
        sa.Column("tracking_via", sa.String(200), nullable=True),
        sa.Column("details", sa.String(8000), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("failure_code", sa.String(64), nullable=True),
        sa.Column(
            "donation_token", sa.String(100), sa.ForeignKey("donations.token"), nullable=True
        ),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("confirmed_at", UtcDateTime(), nullable=True),
        sa.Column("failed_at", UtcDateTime(), nullable=True),
        sa.CheckConstraint("amount_in_cents > 0", name="request_amount_positive"),
        sa.CheckConstraint("kind IN ('pledge', 'forwarding')", name="request_kind_known"),
        sa.CheckConstraint(
            "state IN ('pending', 'confirmed', 'failed')", name="request_state_known"
        ),
        sa.CheckConstraint(
            "kind = 'pledge' OR project_id IS NOT NULL", name="forwarding_has_project"
        ),
        sa.UniqueConstraint("client_id", "client_reference", name="uq_client_requests_reference"),
    )
    op.create_index("ix_client_requests_state_id", "client_requests", ["state", "id"])


def downgrade() -> None:
    op.drop_table("client_requests")
