"""The tracker database's Alembic history: it builds every table, and adopts a database ``create_all`` made."""

from __future__ import annotations

import json

import sqlalchemy as sa

from console.models import metadata as console_metadata
from tracking.db import make_engine
from tracking.migrate import VERSION_TABLE, current_revision, upgrade_tracker
from tracking.schema import create_sqlite_fts, events, message_index, metadata as tracking_metadata

HEAD = "0003_roles_and_interruptions"


def _table_names(engine: sa.engine.Engine) -> set:
    return set(sa.inspect(engine).get_table_names())


def _columns(engine: sa.engine.Engine, table: str) -> dict:
    return {c["name"]: c["nullable"] for c in sa.inspect(engine).get_columns(table)}


def test_upgrade_head_builds_every_table_of_the_tracker_store_and_the_console(tracker_url: str) -> None:
    engine = make_engine(tracker_url)
    try:
        upgrade_tracker(engine)
        names = _table_names(engine)
        expected = set(tracking_metadata.tables) | set(console_metadata.tables)
        assert expected <= names, expected - names
        assert VERSION_TABLE in names
        assert current_revision(engine) == HEAD
        for table in list(tracking_metadata.tables.values()) + list(console_metadata.tables.values()):
            assert _columns(engine, table.name) == {c.name: c.nullable for c in table.columns}, table.name
            migrated = {ix["name"] for ix in sa.inspect(engine).get_indexes(table.name)}
            assert {ix.name for ix in table.indexes} <= migrated, table.name
        if engine.dialect.name == "sqlite":
            assert "message_fts" in names
        else:
            assert "ix_message_text_trgm" in {ix["name"] for ix in sa.inspect(engine).get_indexes("message_index")}
        upgrade_tracker(engine)  # a second start changes nothing
        assert current_revision(engine) == HEAD
    finally:
        engine.dispose()


def test_a_database_made_by_create_all_is_adopted_with_every_row_kept(tracker_url: str) -> None:
    engine = make_engine(tracker_url)
    try:
        with engine.begin() as conn:  # the schema as the assistant made it before migrations
            tracking_metadata.create_all(conn)
            console_metadata.create_all(conn)
            if engine.dialect.name == "sqlite":
                create_sqlite_fts(conn)
            conn.execute(events.insert(), [{"sender_id": "old-chat", "type_name": "user", "timestamp": 1.0,
                                            "data": json.dumps({"event": "user", "text": "my invoice is wrong"})}])
            conn.execute(message_index.insert(), [{"event_id": 1, "sender_id": "old-chat", "timestamp": 1.0,
                                                   "role": "user", "text": "my invoice is wrong",
                                                   "is_payload": False, "in_form": False}])
            conn.execute(console_metadata.tables["console_lead"].insert(),
                         [{"email": "lead@example.com", "password_hash": "x", "created_at": 1.0, "disabled": False}])
            conn.exec_driver_sql("ALTER TABLE conversation_summary DROP COLUMN verified_by")  # not there before
            conn.exec_driver_sql(
                "INSERT INTO conversation_summary (sender_id, started_at, started_day, last_event_at, event_count, "
                "session_count, user_message_count, bot_message_count, customer_id, fallback_count, handoff_count, "
                "support_request_count, failed_action_count, operations_performed, operations_refused) "
                "VALUES ('old-chat', 1, '1970-01-01', 1, 1, 0, 1, 0, '7', 0, 0, 0, 0, 0, 0)")
        assert current_revision(engine) is None

        upgrade_tracker(engine)

        assert current_revision(engine) == HEAD
        with engine.connect() as conn:
            assert conn.execute(sa.select(events.c.sender_id)).scalars().all() == ["old-chat"]
            assert conn.exec_driver_sql("SELECT customer_id, verified_by FROM conversation_summary").all() == [
                ("7", "portal token")]
            assert conn.execute(sa.select(message_index.c.text)).scalars().all() == ["my invoice is wrong"]
            assert conn.execute(sa.select(console_metadata.tables["console_lead"].c.email)).scalars().all() == [
                "lead@example.com"]
            if engine.dialect.name == "sqlite":
                found = conn.exec_driver_sql(
                    "SELECT rowid FROM message_fts WHERE message_fts MATCH '\"invoice\"'").all()
                assert len(found) == 1
    finally:
        engine.dispose()
