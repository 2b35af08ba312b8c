"""Alembic migrations of the tracker database: ``events``, the review index and the console's tables.

Every process that uses the tracker database (Rasa's tracker store, the
console, the scheduler, ``python -m tracking migrate`` run by ``make run``)
brings it to the newest revision at start with :func:`upgrade_tracker`. The
upgrade runs in one write transaction under the schema lock (an advisory lock
on PostgreSQL, the write lock on SQLite), so processes starting together
migrate once. A database made before these migrations (by ``create_all``) is
adopted: the first revision creates only what is missing and keeps every row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from sqlalchemy.engine import Connection, Engine

from tracking.db import lock_schema, write_transaction

#: Folder of the tracker database's migrations.
MIGRATIONS_DIR: Path = Path(__file__).resolve().parent / "migrations"

#: Alembic's version table of this history (the account store keeps ``alembic_version``).
VERSION_TABLE = "tracking_alembic_version"


def alembic_config(url: Optional[str] = None, connection: Optional[Connection] = None) -> Any:
    """An Alembic config of this history, for a URL or an open connection."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def upgrade_tracker(engine: Engine, revision: str = "head") -> None:
    """Bring the tracker database to ``revision`` in one serialised write transaction."""
    from alembic import command

    with write_transaction(engine) as conn:
        lock_schema(conn)
        command.upgrade(alembic_config(connection=conn), revision)


def current_revision(engine: Engine) -> Optional[str]:
    """The tracker database's revision, or None when it was never migrated."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()
