"""Engines for SQLite (WAL, explicit write locks) and PostgreSQL, and transaction helpers."""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from clientstats.errors import ConfigurationError
from clientstats.observability.tallies import DATABASE_ERRORS

T = TypeVar("T")

DEFAULT_URL = "sqlite:///./clientstats.db"
SUPPORTED_BACKENDS = frozenset({"sqlite", "postgresql"})
SQLITE_BUSY_TIMEOUT_MS = 30_000
# The page cache of a connection that writes an import's batches (SQLite's default: 2 MiB).
# Each batch adds to every index of the ledger at thousands of places; with the pages it
# just touched still cached, the next batch reads fewer of them back. A fixed size, so an
# import's memory does not grow with the ledger.
SQLITE_BULK_CACHE_KIB = 16 * 1024
# Pages in the write-ahead log before such a connection's commit copies them into the
# database file (SQLite's default: 1,000 pages, 4 MiB, about every batch). Index pages that
# several batches change are copied once instead of once per batch; a commit is as durable.
SQLITE_BULK_CHECKPOINT_PAGES = 10_000
_SQLITE_WRITERS: weakref.WeakKeyDictionary[Engine, threading.RLock] = weakref.WeakKeyDictionary()


def normalize_url(url: str) -> str:
    """Accept the URLs operators write (`postgresql://`) and pick the drivers we ship."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str, *, pool_size: int = 5, timeout: float = 5.0) -> Engine:
    """Create the engine for a database URL with the settings this product relies on.

    `timeout` bounds connecting and waiting for a pooled connection, so a database that is
    down turns into a quick error (503) instead of a hanging request.
    """
    url = normalize_url(url)
    try:
        backend = make_url(url).get_backend_name()
    except ArgumentError as exc:
        raise ConfigurationError(f"CLIENTSTATS_DATABASE_URL is not a database URL: {exc}") from exc
    if backend not in SUPPORTED_BACKENDS:
        raise ConfigurationError(
            f"CLIENTSTATS_DATABASE_URL names {backend}; use sqlite:///PATH or postgresql://..."
        )
    if backend == "sqlite":
        engine = _sqlite_engine(url)
    else:
        engine = create_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
            pool_timeout=timeout,
            connect_args={"connect_timeout": max(1, int(timeout))},
        )
        event.listen(engine, "connect", _send_lists_as_binary_arrays)
    event.listen(engine, "handle_error", _count_error)
    return engine


def _send_lists_as_binary_arrays(dbapi_connection: Any, _record: Any) -> None:
    """Send list parameters to PostgreSQL in its binary array format, not the text one.

    psycopg writes a list as an array literal by default, checking every element against a
    regular expression to quote it: for the thousands of tokens and ids an import batch
    looks up and the aggregate rows it writes, that costs several times what packing them in
    the binary format does. Every list this product sends holds values of one type, cast in
    its statement (`%s::bigint[]`), which is what the binary format needs.
    """
    from psycopg.types.array import ListBinaryDumper  # only PostgreSQL users load psycopg

    dbapi_connection.adapters.register_dumper(list, ListBinaryDumper)


def _count_error(context: Any) -> None:
    """Count every error the driver raised, by kind (a pre-ping's is the pool's business)."""
    if context.is_pre_ping:
        return
    error = context.sqlalchemy_exception or context.original_exception
    DATABASE_ERRORS.add(type(error).__name__)


def _sqlite_engine(url: str) -> Engine:
    in_memory = make_url(url).database in (None, "", ":memory:")
    if in_memory:
        raise ValueError("an in-memory SQLite database cannot be shared; name a file")
    engine = create_engine(url, connect_args={"check_same_thread": False})
    _SQLITE_WRITERS[engine] = threading.RLock()

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so that BEGIN IMMEDIATE is ours to issue.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A writer takes the write lock up front: reads it makes stay valid until it commits.
        options = conn.get_execution_options()
        if options.get("clientstats_bulk", False):
            conn.exec_driver_sql(f"PRAGMA cache_size=-{SQLITE_BULK_CACHE_KIB}")
            conn.exec_driver_sql(f"PRAGMA wal_autocheckpoint={SQLITE_BULK_CHECKPOINT_PAGES}")
        immediate = options.get("clientstats_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


@contextmanager
def write_transaction(engine: Engine, *, bulk: bool = False) -> Iterator[Connection]:
    """One transaction that will write; on SQLite it holds the write lock from its start.

    `bulk`: one of many large transactions (an import's batches); on SQLite its connection
    keeps a larger page cache and checkpoints less often (SQLITE_BULK_*).
    """
    with _one_writer_per_process(engine), engine.connect() as conn:
        conn = conn.execution_options(clientstats_write=True, clientstats_bulk=bulk)
        with conn.begin():
            yield conn


@contextmanager
def _one_writer_per_process(engine: Engine) -> Iterator[None]:
    """On SQLite, let this process's writers take turns before they ask SQLite for its lock.

    SQLite has one write lock per database; a writer that finds it taken sleeps and retries
    with growing pauses (busy_timeout), so many threads of one process contending for it
    leave it idle between holders and answer slowly. An in-process lock hands it on at
    once; writers in other processes still meet at SQLite's own lock. Should the turn take
    longer than busy_timeout, the writer goes ahead and SQLite decides, as before.
    """
    lock = _SQLITE_WRITERS.get(engine)
    if lock is None:
        yield
        return
    acquired = lock.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
    try:
        yield
    finally:
        if acquired:
            lock.release()


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """One read-only transaction: a consistent snapshot of the database."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            yield conn


RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})  # serialization failure, deadlock


def is_retryable(exc: DBAPIError) -> bool:
    """Whether a transaction failed only because a concurrent one won; retrying is safe."""
    return getattr(exc.orig, "sqlstate", None) in RETRYABLE_SQLSTATES


def retrying(attempts: int, action: Callable[[], T]) -> T:
    """Run a whole transaction again when it lost a deadlock or serialization race."""
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except DBAPIError as exc:
            if attempt == attempts or not is_retryable(exc):
                raise
            time.sleep(0.01 * attempt)
    raise AssertionError("unreachable")


def database_answers(engine: Engine) -> bool:
    """Whether the database answers a trivial query right now."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False
