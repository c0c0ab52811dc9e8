"""The migrations build exactly the tables the code declares, on every database."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, insert, text
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


PARTIAL_INDEXES = {
    "ix_donations_pool_client_id": "pool_client_id IS NOT NULL",
    "ix_donations_client_channel_created": "client_id IS NOT NULL",
}


def test_pool_and_client_indexes_leave_out_entries_without_one(engine: Engine) -> None:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            found = conn.execute(
                text("SELECT name, sql FROM sqlite_master WHERE type = 'index'")
            ).all()
        else:
            found = conn.execute(
                text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'donations'")
            ).all()
    definitions = {name: sql for name, sql in found if name in PARTIAL_INDEXES}
    assert definitions.keys() == PARTIAL_INDEXES.keys()
    for name, condition in PARTIAL_INDEXES.items():
        assert f"WHERE {condition}" in definitions[name].replace("(", "").replace(")", ""), name
