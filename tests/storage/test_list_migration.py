"""Migration 0004 fills the list aggregates from the ledger: verify finds no difference."""

from __future__ import annotations

from alembic import command
from sqlalchemy import Engine, select

from clientstats.services.importing import import_lines
from clientstats.services.verification import verify
from clientstats.storage.database import write_transaction
from clientstats.storage.schema import _config, migrate
from clientstats.storage.tables import project_totals
from tests.api.conftest import SEED_EVENTS, ndjson


def test_downgrading_and_migrating_again_backfills_every_list_aggregate(engine: Engine) -> None:
    import_lines(engine, ndjson(SEED_EVENTS).splitlines(keepends=True), batch_size=50)
    assert verify(engine).differences == []
    with engine.connect() as conn:
        before = sorted(conn.execute(select(project_totals)).all())
    config = _config()
    with write_transaction(engine) as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0003")
    migrate(engine)
    assert verify(engine).differences == []
    with engine.connect() as conn:
        assert sorted(conn.execute(select(project_totals)).all()) == before
