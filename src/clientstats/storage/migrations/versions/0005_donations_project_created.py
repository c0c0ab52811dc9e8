"""A project's donations by time: the index the last donation's time is read back from.

Revoking a project's latest entry makes an older entry its last donation. With the
project's entries indexed by time, that one is found by walking back from the newest,
a few index steps, instead of reading every entry the project ever had. The index on
`project_id` alone is replaced: the new one serves every lookup it served.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_donations_project_created", "donations", ["project_id", "created_at"])
    op.drop_index("ix_donations_project_id", "donations")


def downgrade() -> None:
    op.create_index("ix_donations_project_id", "donations", ["project_id"])
    op.drop_index("ix_donations_project_created", "donations")
