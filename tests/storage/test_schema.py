"""The migrations build exactly the tables the code declares, on every database."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, insert
from sqlalchemy.exc import IntegrityError

from clientstats.storage.schema import current_revision, head_revision
from clientstats.storage.tables import clients, metadata


def test_migrated_schema_matches_the_table_definitions(engine: Engine) -> None:
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    assert differences == []


def test_database_is_at_head_after_ensure_schema(engine: Engine) -> None:
    assert current_revision(engine) == head_revision()


def test_database_refuses_a_client_without_a_name(engine: Engine) -> None:
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(
            insert(clients).values(
                permalink="x", name=None, has_pool=False, statistics_private=False
            )
        )
