"""Alembic environment of the accounts database.

The URL comes from the config built by :func:`accounts.db.alembic_config`
(or, if absent, from ``ACCOUNTS_DB_URL`` / the default in :mod:`accounts.settings`).
Engines are made with :func:`accounts.db.make_engine`, so SQLite migrations run
in one real transaction with foreign keys on.
"""

from __future__ import annotations

from alembic import context

from accounts import settings
from accounts.db import WRITE_OPTION, make_engine
from accounts.models import metadata

config = context.config


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or settings.database_url()


def run_migrations_offline() -> None:
    """Emit the migration SQL without a database connection."""
    context.configure(
        url=_url(),
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations against the database."""
    engine = make_engine(_url())
    try:
        with engine.connect() as connection:
            connection = connection.execution_options(**{WRITE_OPTION: True})
            context.configure(
                connection=connection,
                target_metadata=metadata,
                render_as_batch=True,
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
