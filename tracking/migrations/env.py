"""Alembic environment of the tracker database (conversation log, review index, console tables).

Its history is separate from the account store's: the version is kept in
``tracking_alembic_version``, so both histories may even share one database.
:func:`tracking.migrate.upgrade_tracker` passes its connection (inside a write
transaction holding the schema lock) as ``config.attributes["connection"]``;
otherwise (the ``alembic`` command) an engine is made from the config's URL or
``TRACKER_DB_URL``.
"""

from __future__ import annotations

from alembic import context

from tracking.db import make_engine, write_transaction
from tracking.migrate import VERSION_TABLE
from tracking.settings import tracker_db_url

config = context.config


def _run(connection: object) -> None:
    context.configure(connection=connection, target_metadata=None, version_table=VERSION_TABLE)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations on the given connection, or on a new engine."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url") or tracker_db_url())
    try:
        with write_transaction(engine) as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("the tracker database's migrations run online only")
run_migrations_online()
