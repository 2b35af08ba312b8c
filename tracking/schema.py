"""Tables of the tracker database: Rasa's ``events`` and the review index beside it.

``events`` mirrors Rasa's ``SQLTrackerStore.SQLEvent`` column for column (a test
checks it), so this package can read and write it without importing Rasa.

The review index, kept up to date by :mod:`tracking.writer` in the same
transaction as the events and rebuildable from them (:mod:`tracking.rebuild`):

* ``conversation_summary`` - one row per conversation (Rasa sender id) with
  everything the console filters and sorts on;
* ``conversation_fact`` - (kind, value) pairs per conversation: intents seen,
  operations performed or refused, verified customers;
* ``message_index`` - every user and bot message with its NLU result, for the
  free-text search, the NLU inbox and exports. Free text is indexed with an FTS5
  trigram table on SQLite (``message_fts``) and a ``pg_trgm`` GIN index on
  PostgreSQL, so ``contains`` searches do not scan.
"""

from __future__ import annotations

import logging
import time

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from tracking.db import lock_schema, write_transaction

logger = logging.getLogger(__name__)

metadata = sa.MetaData()

#: Rasa's table, exactly as ``rasa.core.tracker_store.SQLTrackerStore.SQLEvent`` defines it.
events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("sender_id", sa.String(255), nullable=False, index=True),
    sa.Column("type_name", sa.String(255), nullable=False),
    sa.Column("timestamp", sa.Float),
    sa.Column("intent_name", sa.String(255)),
    sa.Column("action_name", sa.String(255)),
    sa.Column("data", sa.Text),
)

conversation_summary = sa.Table(
    "conversation_summary",
    metadata,
    sa.Column("sender_id", sa.String(255), primary_key=True),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("started_day", sa.String(10), nullable=False),  # UTC date, YYYY-MM-DD
    sa.Column("last_event_at", sa.Float, nullable=False),
    sa.Column("last_event_id", sa.Integer),
    sa.Column("event_count", sa.Integer, nullable=False, default=0),
    sa.Column("session_count", sa.Integer, nullable=False, default=0),
    sa.Column("user_message_count", sa.Integer, nullable=False, default=0),
    sa.Column("bot_message_count", sa.Integer, nullable=False, default=0),
    sa.Column("channel", sa.String(64)),
    sa.Column("customer_id", sa.String(255)),
    sa.Column("min_confidence", sa.Float),
    sa.Column("fallback_count", sa.Integer, nullable=False, default=0),
    sa.Column("handoff_count", sa.Integer, nullable=False, default=0),
    sa.Column("support_request_count", sa.Integer, nullable=False, default=0),
    sa.Column("failed_action_count", sa.Integer, nullable=False, default=0),
    # Forms interrupted (action_execution_rejected): neutral, not failures.
    sa.Column("form_interruption_count", sa.Integer, nullable=False, default=0, server_default="0"),
    sa.Column("operations_performed", sa.Integer, nullable=False, default=0),
    sa.Column("operations_refused", sa.Integer, nullable=False, default=0),
    sa.Column("first_user_text", sa.String(200)),
    # A custom action that has run and left no event yet (see tracking.conventions).
    sa.Column("pending_action", sa.String(255)),
    # The form (active loop) asking for slots at the last event, if any.
    sa.Column("active_loop", sa.String(255)),
    # How the customer was verified: "portal token" or "<channel> link" (tracking.conventions).
    sa.Column("verified_by", sa.String(64)),
    sa.Index("ix_summary_last_event_at", "last_event_at"),
    sa.Index("ix_summary_started_at", "started_at"),
    sa.Index("ix_summary_started_day", "started_day"),
    sa.Index("ix_summary_channel", "channel", "last_event_at"),
    sa.Index("ix_summary_customer", "customer_id"),
    sa.Index("ix_summary_min_confidence", "min_confidence"),
)

conversation_fact = sa.Table(
    "conversation_fact",
    metadata,
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("value", sa.String(255), primary_key=True),
    sa.Column("sender_id", sa.String(255), primary_key=True),
    sa.Index("ix_fact_sender", "sender_id"),
)

message_index = sa.Table(
    "message_index",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("event_id", sa.Integer, nullable=False, unique=True),
    sa.Column("sender_id", sa.String(255), nullable=False),
    sa.Column("timestamp", sa.Float, nullable=False),
    sa.Column("role", sa.String(8), nullable=False),  # "user" or "bot"
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("intent", sa.String(255)),  # the intent Rasa acted on (may be nlu_fallback)
    sa.Column("confidence", sa.Float),  # NLU confidence of the best real intent
    sa.Column("top_intent", sa.String(255)),  # the best real intent (never nlu_fallback)
    sa.Column("is_payload", sa.Boolean, nullable=False, default=False),  # "/intent" button payloads
    sa.Column("in_form", sa.Boolean, nullable=False, default=False),  # answered a form's question
    sa.Index("ix_message_sender", "sender_id", "id"),
    sa.Index("ix_message_timestamp", "timestamp"),
    sa.Index("ix_message_intent", "intent"),
)

# Kinds of conversation_fact rows (defined where the fold produces them).
from tracking.summary import (  # noqa: E402
    FACT_CUSTOMER,
    FACT_INTENT,
    FACT_OPERATION_PERFORMED,
    FACT_OPERATION_REFUSED,
)

SQLITE_FTS_TABLE = "message_fts"

_SQLITE_FTS_DDL = (
    f"CREATE VIRTUAL TABLE IF NOT EXISTS {SQLITE_FTS_TABLE} USING fts5("
    "text, content='message_index', content_rowid='id', tokenize='trigram')",
    "CREATE TRIGGER IF NOT EXISTS message_index_fts_insert AFTER INSERT ON message_index BEGIN "
    f"INSERT INTO {SQLITE_FTS_TABLE}(rowid, text) VALUES (new.id, new.text); END",
    "CREATE TRIGGER IF NOT EXISTS message_index_fts_delete AFTER DELETE ON message_index BEGIN "
    f"INSERT INTO {SQLITE_FTS_TABLE}({SQLITE_FTS_TABLE}, rowid, text) "
    "VALUES ('delete', old.id, old.text); END",
    "CREATE TRIGGER IF NOT EXISTS message_index_fts_update AFTER UPDATE OF text ON message_index BEGIN "
    f"INSERT INTO {SQLITE_FTS_TABLE}({SQLITE_FTS_TABLE}, rowid, text) "
    "VALUES ('delete', old.id, old.text); "
    f"INSERT INTO {SQLITE_FTS_TABLE}(rowid, text) VALUES (new.id, new.text); END",
)


def create_sqlite_fts(conn: Connection) -> bool:
    """Create the FTS5 trigram table and its triggers; False if FTS5 is unavailable."""
    try:
        with conn.begin_nested():
            for statement in _SQLITE_FTS_DDL:
                conn.exec_driver_sql(statement)
        return True
    except sa.exc.OperationalError as error:  # SQLite built without FTS5 or trigram
        logger.warning("No FTS5 trigram index (%s): message search will scan.", error)
        return False


def drop_sqlite_fts(conn: Connection) -> None:
    """Drop the FTS table and triggers (the rebuild recreates them in one go)."""
    for trigger in ("message_index_fts_insert", "message_index_fts_delete", "message_index_fts_update"):
        conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {trigger}")
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {SQLITE_FTS_TABLE}")


def create_postgresql_trigram_index(conn: Connection) -> bool:
    """Create ``pg_trgm`` and a GIN index on message text; False if not permitted."""
    try:
        with conn.begin_nested():
            conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
            conn.exec_driver_sql(
                "CREATE INDEX IF NOT EXISTS ix_message_text_trgm "
                "ON message_index USING gin (text gin_trgm_ops)"
            )
        return True
    except sa.exc.DBAPIError as error:
        logger.warning("No pg_trgm index (%s): message search will scan.", error.orig)
        return False


def has_sqlite_fts(conn: Connection) -> bool:
    """True when the FTS5 table exists."""
    row = conn.exec_driver_sql(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (SQLITE_FTS_TABLE,)
    ).first()
    return row is not None


def create_schema(engine: Engine, *extra: sa.MetaData) -> None:
    """Bring the tracker database to the newest migration, serialised across processes.

    The tables, the search index and the console's tables come from the
    Alembic history (:mod:`tracking.migrate`); ``extra`` metadata not (yet)
    in it is created if missing, in its own transaction.

    Args:
        engine: Engine of the tracker database.
        *extra: Further metadata to create if missing.
    """
    from tracking.migrate import upgrade_tracker

    upgrade_tracker(engine)
    if extra:
        with write_transaction(engine) as conn:
            lock_schema(conn)
            for more in extra:
                more.create_all(conn, checkfirst=True)


def create_schema_when_reachable(engine: Engine, *extra: sa.MetaData, timeout: float = 60.0,
                                 retry_every: float = 2.0) -> None:
    """:func:`create_schema`, retrying while the database is not reachable yet (start-up order)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            create_schema(engine, *extra)
            return
        except sa.exc.OperationalError as error:
            if time.monotonic() > deadline:
                raise
            logger.warning("Tracker database not reachable yet (%s); retrying.", error.orig)
            time.sleep(retry_every)
