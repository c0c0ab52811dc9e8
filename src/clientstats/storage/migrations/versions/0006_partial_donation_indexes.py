"""Two ledger indexes keep only the entries they can be asked for.

`ix_donations_pool_client_id` and `ix_donations_client_channel_created` had an entry for
every donation, with a NULL key for those that go to no pool or come from no client (on a
typical ledger most of them). Every question they answer names a pool or a client, so those
entries were never read; PostgreSQL still wrote each one, for every booked donation. They
now index only the rows whose column is set (`WHERE ... IS NOT NULL`): the same lookups,
smaller indexes, less work per booking.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_INDEXES = (
    ("ix_donations_pool_client_id", ["pool_client_id"], "pool_client_id IS NOT NULL"),
    (
        "ix_donations_client_channel_created",
        ["client_id", "channel", "created_at", "id"],
        "client_id IS NOT NULL",
    ),
)


def upgrade() -> None:
    for name, columns, condition in _INDEXES:
        op.drop_index(name, "donations")
        where = sa.text(condition)
        op.create_index(name, "donations", columns, sqlite_where=where, postgresql_where=where)


def downgrade() -> None:
    for name, columns, _ in _INDEXES:
        op.drop_index(name, "donations")
        op.create_index(name, "donations", columns)
