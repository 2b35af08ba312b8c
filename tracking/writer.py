"""Write events and keep the review index in step, inside the caller's transaction.

:func:`record_events` is what the tracker store calls for every save: it
inserts the (already redacted) events into Rasa's ``events`` table, then folds
them into the conversation's summary, facts and message rows.

The index update runs in a SAVEPOINT: if it fails, the events are still
committed (they are the record; the index is derived) and the error is logged.
Every update folds all of the conversation's events after the summary's
``last_event_id``, so the next save repairs a missed update, and events stored
before the index existed are folded the first time their conversation moves.
``python -m tracking rebuild-index`` rebuilds everything from ``events``.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tracking.schema import conversation_fact, conversation_summary, events, message_index
from tracking.summary import Fact, MessageRow, Summary, fold

logger = logging.getLogger(__name__)


def event_row(sender_id: str, record: Mapping[str, Any]) -> Dict[str, Any]:
    """The ``events`` row Rasa's SQLTrackerStore writes for one event dict."""
    parse = record.get("parse_data") if isinstance(record.get("parse_data"), Mapping) else {}
    intent = parse.get("intent") if isinstance(parse.get("intent"), Mapping) else {}
    return {
        "sender_id": sender_id,
        "type_name": record.get("event"),
        "timestamp": record.get("timestamp"),
        "intent_name": intent.get("name"),
        "action_name": record.get("name"),
        "data": json.dumps(record),
    }


def record_events(conn: Connection, sender_id: str, records: Sequence[Mapping[str, Any]],
                  previous_max_id: Optional[int] = None) -> List[int]:
    """Insert events and update the review index, in the caller's transaction.

    Args:
        conn: Connection inside a write transaction.
        sender_id: The conversation.
        records: Event dicts (``Event.as_dict()``), already redacted, in order.
        previous_max_id: The conversation's highest event id before these
            inserts (0: none), read in this transaction, if the caller knows it;
            the index then skips looking for missed events when it is up to date.

    Returns:
        The ids of the inserted ``events`` rows.
    """
    ids: List[int] = []
    for record in records:
        result = conn.execute(events.insert(), event_row(sender_id, record))
        ids.append(int(result.inserted_primary_key[0]))
    if not ids:
        return ids
    try:
        with conn.begin_nested():
            update_index(conn, sender_id, list(zip(ids, records)), previous_max_id)
    except Exception:  # the events are the record: never lose them for the index
        logger.exception(
            "Review index not updated for a conversation; the next save or "
            "`python -m tracking rebuild-index` repairs it."
        )
    return ids


def load_summary(conn: Connection, sender_id: str, *, for_update: bool = False) -> Optional[Summary]:
    """The stored summary of ``sender_id``, or None."""
    stmt = sa.select(conversation_summary).where(conversation_summary.c.sender_id == sender_id)
    if for_update:
        stmt = stmt.with_for_update()
    row = conn.execute(stmt).mappings().first()
    return Summary.from_row(row) if row is not None else None


def update_index(conn: Connection, sender_id: str,
                 new_events: List[Tuple[int, Mapping[str, Any]]],
                 previous_max_id: Optional[int] = None) -> None:
    """Fold every event of ``sender_id`` not yet in its summary (see module docstring).

    ``previous_max_id``: see :func:`record_events`.
    """
    summary = load_summary(conn, sender_id, for_update=True)
    is_new = summary is None
    if summary is None:
        summary = Summary(sender_id=sender_id)
    first_new = new_events[0][0] if new_events else None
    missed_query = (
        sa.select(events.c.id, events.c.data)
        .where(events.c.sender_id == sender_id, events.c.id > (summary.last_event_id or 0))
        .order_by(events.c.id)
    )
    if first_new is not None:
        missed_query = missed_query.where(events.c.id < first_new)
    up_to_date = previous_max_id is not None and (summary.last_event_id or 0) == previous_max_id
    missed = [] if up_to_date else [(row.id, _load(row.data)) for row in conn.execute(missed_query)]
    result = fold(summary, missed + list(new_events))
    if is_new:
        conn.execute(conversation_summary.insert(), summary.as_row())
    else:
        row = summary.as_row()
        del row["sender_id"]
        conn.execute(
            conversation_summary.update()
            .where(conversation_summary.c.sender_id == sender_id)
            .values(**row)
        )
    add_facts(conn, sender_id, result.facts)
    insert_messages(conn, result.messages)


def add_facts(conn: Connection, sender_id: str, facts: Set[Fact]) -> None:
    """Insert the facts of ``sender_id`` that are not stored yet."""
    if not facts:
        return
    existing = {
        (row.kind, row.value)
        for row in conn.execute(
            sa.select(conversation_fact.c.kind, conversation_fact.c.value)
            .where(conversation_fact.c.sender_id == sender_id)
        )
    }
    missing = sorted(facts - existing)
    if missing:
        conn.execute(
            conversation_fact.insert(),
            [{"kind": kind, "value": value, "sender_id": sender_id} for kind, value in missing],
        )


def insert_messages(conn: Connection, messages: Iterable[MessageRow]) -> None:
    """Insert message rows (one statement, many parameter sets)."""
    rows = [message.as_row() for message in messages]
    if rows:
        conn.execute(message_index.insert(), rows)


def _load(data: Optional[str]) -> Dict[str, Any]:
    try:
        value = json.loads(data or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
