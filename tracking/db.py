"""Engines and transactions for the tracker database (SQLite or PostgreSQL).

Nothing connects at import time: call :func:`make_engine` when a process starts.

* SQLite runs in WAL mode, so the console reads while Rasa writes. The driver's
  own transaction handling is switched off (the pysqlite recipe from the
  SQLAlchemy docs) and the engine emits ``BEGIN`` itself: a write transaction
  (:func:`write_transaction`) starts with ``BEGIN IMMEDIATE``, so it takes the
  write lock up front and waits on the busy timeout instead of failing half-way
  with ``SQLITE_BUSY`` when another process (Rasa or the console) wrote in between.
* PostgreSQL uses a small pool with pre-ping; schema creation is serialised with
  an advisory lock, because Rasa and the console create the tables at the same
  time when the assistant starts.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url

from tracking.settings import tracker_db_url

logger = logging.getLogger(__name__)

#: Execution option that makes a SQLite transaction start with BEGIN IMMEDIATE.
WRITE_OPTION = "tracking_write_transaction"

#: Seconds a SQLite connection waits for the write lock.
SQLITE_BUSY_TIMEOUT_SECONDS = 30.0

#: Advisory lock key serialising schema creation on PostgreSQL.
SCHEMA_LOCK_KEY = 7_402_113_511


def is_sqlite(bind: Any) -> bool:
    """True when ``bind`` (engine or connection) talks to SQLite."""
    return bind.dialect.name == "sqlite"


def is_postgresql(bind: Any) -> bool:
    """True when ``bind`` (engine or connection) talks to PostgreSQL."""
    return bind.dialect.name == "postgresql"


def _install_sqlite_hooks(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_SECONDS * 1000)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get(WRITE_OPTION):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


def make_engine(url: Optional[str] = None, **kwargs: Any) -> Engine:
    """Create a 2.0-style engine for the tracker database.

    Args:
        url: Database URL; defaults to :func:`tracking.settings.tracker_db_url`.
            The folder of a SQLite file is created.
        **kwargs: Extra arguments for :func:`sqlalchemy.create_engine`.

    Returns:
        The engine.
    """
    url = url or tracker_db_url()
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
        connect_args = dict(kwargs.pop("connect_args", {}))
        connect_args.setdefault("timeout", SQLITE_BUSY_TIMEOUT_SECONDS)
        connect_args.setdefault("check_same_thread", False)
        engine = sa.create_engine(url, future=True, connect_args=connect_args, **kwargs)
        _install_sqlite_hooks(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 5)
    kwargs.setdefault("max_overflow", 5)
    return sa.create_engine(url, future=True, **kwargs)


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """One write transaction: commits on success, rolls back on any exception.

    Args:
        engine: Engine from :func:`make_engine`.

    Yields:
        The connection; on SQLite its transaction began with ``BEGIN IMMEDIATE``.
    """
    with engine.connect() as conn:
        conn.execution_options(**{WRITE_OPTION: True})
        with conn.begin():
            yield conn


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """One read transaction (rolled back at the end)."""
    with engine.connect() as conn:
        with conn.begin() as transaction:
            try:
                yield conn
            finally:
                if transaction.is_active:
                    transaction.rollback()


def lock_schema(conn: Connection) -> None:
    """Serialise schema changes across processes (PostgreSQL advisory lock).

    On SQLite the write transaction already holds the database lock.
    """
    if is_postgresql(conn):
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})


def create_tables(engine: Engine, *metadatas: sa.MetaData) -> None:
    """Create the missing tables of ``metadatas`` in one serialised transaction.

    Safe to call from several processes at once (Rasa and the console both do
    at start-up): the check and the creation happen under one lock.
    """
    with write_transaction(engine) as conn:
        lock_schema(conn)
        for metadata in metadatas:
            metadata.create_all(conn, checkfirst=True)
