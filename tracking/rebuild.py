"""Rebuild the review index (summary, facts, message search) from the ``events`` table.

Use after changing the conventions, after restoring ``events`` from a backup, or
to index conversations stored before the index existed::

    python -m tracking rebuild-index [--url URL]

Runs in one transaction holding the write lock (SQLite) or exclusive table locks
(PostgreSQL), so the assistant's saves wait for it instead of racing it and the
console keeps seeing the old index until the new one is committed.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Mapping, Optional, Set, Tuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from tracking.db import is_postgresql, is_sqlite, write_transaction
from tracking.schema import (
    conversation_fact,
    conversation_summary,
    create_schema,
    create_sqlite_fts,
    drop_sqlite_fts,
    events,
    message_index,
)
from tracking.summary import Fact, MessageRow, Summary, fold

logger = logging.getLogger(__name__)

#: Conversations buffered before their rows are written.
BATCH_CONVERSATIONS = 2000
#: Events fetched per round trip while streaming the events table.
FETCH_ROWS = 5000


@dataclass(frozen=True)
class RebuildReport:
    """What a rebuild indexed."""

    conversations: int
    events: int
    messages: int


def _events_in_order(conn: Connection) -> Iterator[Tuple[str, int, Mapping[str, Any]]]:
    query = (
        sa.select(events.c.sender_id, events.c.id, events.c.data)
        .order_by(events.c.sender_id, events.c.id)
        .execution_options(stream_results=True, yield_per=FETCH_ROWS)
    )
    for row in conn.execute(query):
        try:
            data = json.loads(row.data or "{}")
        except ValueError:
            data = {}
        yield row.sender_id, row.id, data if isinstance(data, dict) else {}


class _Batch:
    def __init__(self) -> None:
        self.summaries: List[Dict[str, Any]] = []
        self.facts: List[Dict[str, Any]] = []
        self.messages: List[Dict[str, Any]] = []

    def add(self, summary: Summary, facts: Set[Fact], messages: List[MessageRow]) -> None:
        self.summaries.append(summary.as_row())
        self.facts.extend({"kind": k, "value": v, "sender_id": summary.sender_id} for k, v in sorted(facts))
        self.messages.extend(message.as_row() for message in messages)

    def flush(self, conn: Connection) -> None:
        for table, rows in ((conversation_summary, self.summaries), (conversation_fact, self.facts),
                            (message_index, self.messages)):
            if rows:
                conn.execute(table.insert(), rows)
        self.__init__()


def rebuild_index(engine: Engine) -> RebuildReport:
    """Recompute the whole review index from ``events`` in one transaction.

    Args:
        engine: Engine of the tracker database.

    Returns:
        Counts of what was indexed.
    """
    create_schema(engine)
    conversations = event_count = message_count = 0
    with write_transaction(engine) as conn:
        if is_postgresql(conn):
            conn.exec_driver_sql(
                "LOCK TABLE events, conversation_summary, conversation_fact, message_index "
                "IN EXCLUSIVE MODE"
            )
        sqlite = is_sqlite(conn)
        if sqlite:
            drop_sqlite_fts(conn)  # re-filled in one pass below, far faster than per-row triggers
        for table in (message_index, conversation_fact, conversation_summary):
            conn.execute(table.delete())

        batch = _Batch()
        current: Optional[str] = None
        pending: List[Tuple[int, Mapping[str, Any]]] = []

        def close_conversation() -> None:
            nonlocal conversations, message_count
            summary = Summary(sender_id=current)
            result = fold(summary, pending)
            batch.add(summary, result.facts, result.messages)
            conversations += 1
            message_count += len(result.messages)
            if len(batch.summaries) >= BATCH_CONVERSATIONS:
                batch.flush(conn)

        for sender_id, event_id, data in _events_in_order(conn):
            event_count += 1
            if sender_id != current:
                if current is not None:
                    close_conversation()
                current, pending = sender_id, []
            pending.append((event_id, data))
        if current is not None:
            close_conversation()
        batch.flush(conn)
        if sqlite and create_sqlite_fts(conn):
            conn.exec_driver_sql("INSERT INTO message_fts(message_fts) VALUES ('rebuild')")
    if is_postgresql(engine):
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                "ANALYZE conversation_summary, conversation_fact, message_index"
            )
    elif is_sqlite(engine):
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
    report = RebuildReport(conversations, event_count, message_count)
    logger.info("Rebuilt the review index: %s", report)
    return report
