"""Writers of one process take turns before they ask SQLite for its write lock."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import text

from clientstats.storage.database import (
    SQLITE_BULK_CACHE_KIB,
    SQLITE_BULK_CHECKPOINT_PAGES,
    make_engine,
    write_transaction,
)
from clientstats.storage.schema import ensure_schema

WAIT = 5.0


def test_a_waiting_sqlite_writer_holds_no_connection_and_goes_next(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'turns.db'}")
    ensure_schema(engine)
    first_inside, first_may_finish, second_done = (threading.Event() for _ in range(3))
    order: list[str] = []

    def first() -> None:
        with write_transaction(engine) as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = version_num"))
            order.append("first")
            first_inside.set()
            assert first_may_finish.wait(WAIT)

    def second() -> None:
        with write_transaction(engine):
            order.append("second")
        second_done.set()

    one = threading.Thread(target=first)
    one.start()
    assert first_inside.wait(WAIT)
    two = threading.Thread(target=second)
    two.start()
    two.join(0.3)

    assert two.is_alive() and order == ["first"]
    # It waits for its turn in the process, not inside SQLite holding a pooled connection.
    assert engine.pool.checkedout() == 1  # type: ignore[attr-defined]

    first_may_finish.set()
    assert second_done.wait(WAIT)
    one.join(WAIT)
    assert order == ["first", "second"]
    engine.dispose()


def test_a_bulk_sqlite_writer_has_a_larger_cache_and_rarer_checkpoints(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'bulk.db'}")
    ensure_schema(engine)
    with write_transaction(engine) as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000
    with write_transaction(engine, bulk=True) as conn:
        size = conn.exec_driver_sql("PRAGMA cache_size").scalar()
        pages = conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
    assert size == -SQLITE_BULK_CACHE_KIB
    assert pages == SQLITE_BULK_CHECKPOINT_PAGES
    engine.dispose()
