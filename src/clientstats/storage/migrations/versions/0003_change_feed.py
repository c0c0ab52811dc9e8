"""The change feed and deferred revocations.

Client versions become random tokens (they never repeat across restores or deployments
sharing one Redis), ordered by a commit-ordered change sequence that readers poll from
where they left off. Revocations that arrive before their donation are kept.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

from clientstats.storage.tables import Serial, UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_RANDOM_TOKEN = {
    "postgresql": "floor(random() * 9223372036854775807)::bigint",
    "sqlite": "(random() & 9223372036854775807)",
}


def upgrade() -> None:
    with op.batch_alter_table("client_totals") as batch:
        batch.add_column(
            sa.Column("changed_seq", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch.create_index("ix_client_totals_changed_seq", ["changed_seq"])
    dialect = op.get_bind().dialect.name
    # Counters (0, 1, 2, ...) are the same in every deployment: replace them by tokens.
    op.execute(f"UPDATE client_totals SET version = {_RANDOM_TOKEN[dialect]}")
    change_feed = op.create_table(
        "change_feed",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("stamp", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("id = 1", name="single_row"),
    )
    change_log = op.create_table(
        "change_log",
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("stamp", sa.BigInteger(), nullable=False),
    )
    stamp = secrets.randbits(63)
    op.bulk_insert(change_feed, [{"id": 1, "seq": 0, "stamp": stamp}])
    op.bulk_insert(change_log, [{"seq": 0, "stamp": stamp}])
    op.create_table(
        "deferred_revocations",
        sa.Column("id", Serial, primary_key=True, autoincrement=True),
        sa.Column("token", sa.String(100), nullable=False, unique=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("booked_at", UtcDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("deferred_revocations")
    op.drop_table("change_log")
    op.drop_table("change_feed")
    with op.batch_alter_table("client_totals") as batch:
        batch.drop_index("ix_client_totals_changed_seq")
        batch.drop_column("changed_seq")
