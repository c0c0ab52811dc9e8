"""Schema migrations (Alembic) applied from code, and the check that a database is current."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

from clientstats.errors import SchemaOutdated
from clientstats.storage.database import write_transaction
from clientstats.storage.tables import metadata


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", "clientstats.storage:migrations")
    return config


def head_revision() -> str:
    """The newest migration this code knows."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The migration the database is at; None for an empty database."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def migrate(engine: Engine) -> None:
    """Bring the schema up to date."""
    config = _config()
    with write_transaction(engine) as conn:
        if conn.dialect.name == "postgresql":
            # Several processes may start on an empty database at once: one migrates.
            conn.execute(text("SELECT pg_advisory_xact_lock(74657)"))
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


def ensure_schema(engine: Engine) -> None:
    """Create the schema on an empty database; refuse to run on an outdated one."""
    current = current_revision(engine)
    if current is None:
        migrate(engine)
    elif current != head_revision():
        raise SchemaOutdated(
            f"the database schema is at {current}, this version needs {head_revision()}: "
            "run `clientstats migrate`"
        )


def refresh_planner_statistics(engine: Engine) -> None:
    """Have PostgreSQL re-read the size and value spread of every table (ANALYZE).

    A plan PostgreSQL caches for a prepared statement keeps the row counts it was made with.
    A bulk load grows the ledger faster than autovacuum analyzes it (and a server may run
    without autovacuum), so lookups would keep a plan made for an empty table: a sequential
    scan per batch, slower with every row. ANALYZE replaces the statistics and drops those
    plans. SQLite plans its lookups by index without statistics; nothing to do there.
    """
    if engine.dialect.name != "postgresql":
        return
    names = ", ".join(f'"{table.name}"' for table in metadata.sorted_tables)
    with engine.connect() as conn, conn.begin():
        conn.execute(text(f"ANALYZE {names}"))
