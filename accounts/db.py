"""Engines, sessions, transactions, row locks and migrations.

Nothing here runs at import time: call :func:`make_engine` and
:func:`make_session_factory` when the application starts.

Transactions:

* :func:`write_session` opens a session whose transaction is a *write*
  transaction. On SQLite it starts with ``BEGIN IMMEDIATE`` (the pysqlite
  recipe from the SQLAlchemy docs: the driver's own transaction handling is
  switched off and the engine emits ``BEGIN`` itself), so the database write
  lock is taken up front and concurrent writers queue on the busy timeout
  instead of failing half-way. Foreign keys are switched on for every
  connection.
* :func:`read_session` opens a plain (deferred) transaction.
* On PostgreSQL, operations lock the rows they decide on with
  ``SELECT ... FOR UPDATE`` (:func:`lock_account`); ``with_for_update`` renders
  nothing on SQLite, where ``BEGIN IMMEDIATE`` already serialises writers.

Locking convention: every write that touches an account's members, services,
invoices, payments or status locks the account row first (:func:`lock_account`),
then the child rows. This gives one lock order and no deadlocks.
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional, Union

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from accounts import settings
from accounts.models import Account

#: Execution option marking a connection whose transaction will write.
WRITE_OPTION = "accounts_write_transaction"

#: Seconds a SQLite connection waits for the write lock before failing.
SQLITE_BUSY_TIMEOUT_SECONDS = 30.0

MIGRATIONS_DIR: Path = Path(__file__).resolve().parent / "migrations"


def _install_sqlite_hooks(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        # Take transaction control away from pysqlite (see SQLAlchemy docs,
        # "Serializable isolation / Savepoints / Transactional DDL").
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.engine.Connection) -> None:
        if conn.get_execution_options().get(WRITE_OPTION):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


def make_engine(url: Optional[str] = None, **kwargs: Any) -> Engine:
    """Create a SQLAlchemy 2.0-style engine for the accounts database.

    Args:
        url: Database URL; defaults to ``ACCOUNTS_DB_URL`` or
            ``sqlite:///<project root>/var/accounts.db``. For a SQLite file the
            parent folder is created.
        **kwargs: Extra keyword arguments for :func:`sqlalchemy.create_engine`.

    Returns:
        The engine (``future=True``), with the SQLite hooks installed when needed.
        SQL parameters are left out of log records and error messages
        (``hide_parameters``): they include outbox payloads with e-mailed codes
        and links, and TOTP secrets.
    """
    url = url or settings.database_url()
    kwargs.setdefault("hide_parameters", True)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
        connect_args = dict(kwargs.pop("connect_args", {}))
        connect_args.setdefault("timeout", SQLITE_BUSY_TIMEOUT_SECONDS)
        engine = sa.create_engine(url, future=True, connect_args=connect_args, **kwargs)
        _install_sqlite_hooks(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return sa.create_engine(url, future=True, **kwargs)


def make_session_factory(bind: Union[Engine, str, None] = None) -> sessionmaker:
    """Create the session factory the operations take.

    Args:
        bind: An engine, or a URL for :func:`make_engine`, or None for the default URL.

    Returns:
        A ``sessionmaker`` producing 2.0-style sessions (``expire_on_commit=False``).
    """
    engine = bind if isinstance(bind, Engine) else make_engine(bind)
    return sessionmaker(bind=engine, future=True, expire_on_commit=False)


@contextmanager
def write_session(session_factory: sessionmaker) -> Iterator[Session]:
    """Open a session inside one write transaction; commit on success, roll back on error.

    Args:
        session_factory: Factory from :func:`make_session_factory`.

    Yields:
        The session; its transaction began with ``BEGIN IMMEDIATE`` on SQLite.
    """
    with session_factory() as session:
        with session.begin():
            session.connection(execution_options={WRITE_OPTION: True})
            yield session


@contextmanager
def read_session(session_factory: sessionmaker) -> Iterator[Session]:
    """Open a session inside one read transaction (rolled back at the end).

    Args:
        session_factory: Factory from :func:`make_session_factory`.

    Yields:
        The session.
    """
    with session_factory() as session:
        try:
            yield session
        finally:
            session.rollback()


def lock_account(session: Session, account_id: int) -> Any:
    """Load an account row with ``FOR UPDATE`` (a no-op lock on SQLite).

    Args:
        session: Session inside a write transaction.
        account_id: Primary key of the account.

    Returns:
        The :class:`accounts.models.Account`, or None if it does not exist.
    """
    return lock_row(session, Account, account_id)


def lock_row(session: Session, model: Any, ident: int) -> Any:
    """Load one row by primary key with ``FOR UPDATE``, fresh from the database.

    Args:
        session: Session inside a write transaction.
        model: The mapped class (its primary key column is ``id``).
        ident: The primary key.

    Returns:
        The row, or None if it does not exist.
    """
    stmt = (
        sa.select(model)
        .where(model.id == ident)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return session.execute(stmt).scalar_one_or_none()


def lock_name(session: Session, name: str) -> None:
    """Serialise transactions on an arbitrary name (e.g. a rate-limit bucket).

    On PostgreSQL this takes a transaction-scoped advisory lock; on SQLite the
    write transaction already holds the database lock, so nothing is needed.

    Args:
        session: Session inside a write transaction.
        name: The name to lock.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
    session.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def alembic_config(url: Optional[str] = None) -> Any:
    """Build an Alembic config in code, pointing at this package's migrations.

    Args:
        url: Database URL; defaults to :func:`accounts.settings.database_url`.

    Returns:
        An :class:`alembic.config.Config`, usable from any working directory.
    """
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", (url or settings.database_url()).replace("%", "%%"))
    return cfg


def upgrade(url: Optional[str] = None, revision: str = "head") -> None:
    """Apply the Alembic migrations to the database.

    Args:
        url: Database URL; defaults to :func:`accounts.settings.database_url`.
        revision: Target revision.
    """
    from alembic import command

    command.upgrade(alembic_config(url), revision)
