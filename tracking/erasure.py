"""One customer's conversations in the tracker database: find them, export them, erase them.

Rules:

* A customer's conversations are those of their verified account (the
  ``customer`` facts the review index keeps from portal tokens), those whose
  messages carry one of their chat identities (``metadata.channel_user``:
  Slack, Telegram, widget), a conversation whose id is the chat user id
  itself, and any conversation id the account store knows (support requests).
* Export: every event (as Rasa stored it, already redacted of secrets), the
  summary, and the console's tags, notes, review status and activity.
* Erasure deletes the events, the review index (summary, facts, messages and
  the search index) and the console's rows (through ``related``) in one
  transaction. On SQLite it first switches on ``secure_delete`` (freed pages
  are zeroed), merges the FTS index (so no old segment keeps trigrams of the
  erased text) and truncates the write-ahead log afterwards; on PostgreSQL it
  vacuums the tables afterwards so no dead index entry is left behind.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Sequence, Set, Tuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from tracking.db import is_postgresql, is_sqlite, read_transaction, write_transaction
from tracking.retention import delete_conversations
from tracking.schema import (
    FACT_CUSTOMER,
    SQLITE_FTS_TABLE,
    conversation_fact,
    conversation_summary,
    events,
    has_sqlite_fts,
    message_index,
)

#: A chat identity: (channel, the channel's user id).
ChatIdentity = Tuple[str, str]


@dataclass(frozen=True)
class ErasedConversations:
    """What an erasure removed from the tracker database."""

    conversations: int
    events: int


def find_conversations(engine: Engine, *, account_ids: Iterable[int] = (),
                       chat_identities: Iterable[ChatIdentity] = (),
                       sender_ids: Iterable[str] = ()) -> List[str]:
    """The conversation ids (Rasa sender ids) that belong to the customer, sorted."""
    found: Set[str] = set()
    with read_transaction(engine) as conn:
        accounts = [str(a) for a in account_ids]
        if accounts:
            found |= set(conn.execute(
                sa.select(conversation_fact.c.sender_id)
                .where(conversation_fact.c.kind == FACT_CUSTOMER, conversation_fact.c.value.in_(accounts))
            ).scalars())
        candidates = {str(s) for s in sender_ids if s}
        for channel, user_id in chat_identities:
            candidates.add(user_id)
            found |= _conversations_with_chat_user(conn, channel, user_id)
        if candidates:
            found |= set(conn.execute(
                sa.select(events.c.sender_id).where(events.c.sender_id.in_(sorted(candidates))).distinct()
            ).scalars())
    return sorted(found)


def _conversations_with_chat_user(conn: Connection, channel: str, user_id: str) -> Set[str]:
    """Conversations whose user messages name ``(channel, user_id)`` in ``metadata.channel_user``."""
    found: Set[str] = set()
    needles = [f'"channel_user_id": {json.dumps(user_id)}', f'"channel_user_id":{json.dumps(user_id)}']
    rows = conn.execute(
        sa.select(events.c.sender_id, events.c.data)
        .where(events.c.type_name == "user", sa.or_(*[events.c.data.contains(n) for n in needles]))
    )
    for row in rows:
        user = (_load(row.data).get("metadata") or {}).get("channel_user") or {}
        if isinstance(user, dict) and user.get("channel") == channel and str(user.get("channel_user_id")) == user_id:
            found.add(row.sender_id)
    return found


def export_conversations(engine: Engine, sender_ids: Sequence[str],
                         related: Sequence[sa.Table] = ()) -> List[Dict[str, Any]]:
    """Every stored event and review record of the conversations, JSON-ready."""
    out: List[Dict[str, Any]] = []
    with read_transaction(engine) as conn:
        for sender in sender_ids:
            summary = conn.execute(
                sa.select(conversation_summary).where(conversation_summary.c.sender_id == sender)).mappings().first()
            stored = [_load(row.data) for row in conn.execute(
                sa.select(events.c.data).where(events.c.sender_id == sender).order_by(events.c.id))]
            review = {table.name: [dict(r) for r in conn.execute(
                sa.select(table).where(table.c.sender_id == sender)).mappings()] for table in related}
            out.append({"conversation_id": sender, "summary": dict(summary) if summary else None,
                        "events": stored, "review": review})
    return out


def erase_conversations(engine: Engine, sender_ids: Sequence[str],
                        related: Sequence[sa.Table] = ()) -> ErasedConversations:
    """Delete the conversations everywhere in one transaction, leaving no readable trace (see module docstring)."""
    ids = sorted(set(sender_ids))
    with write_transaction(engine) as conn:
        sqlite = is_sqlite(conn)
        if sqlite:
            conn.exec_driver_sql("PRAGMA secure_delete=ON")
        removed = delete_conversations(conn, ids, related)
        if sqlite and has_sqlite_fts(conn):
            conn.exec_driver_sql(f"INSERT INTO {SQLITE_FTS_TABLE}({SQLITE_FTS_TABLE}) VALUES ('optimize')")
    if is_sqlite(engine):
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    elif is_postgresql(engine) and ids:
        tables = [events, message_index, conversation_fact, conversation_summary, *related]
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.exec_driver_sql("VACUUM " + ", ".join(t.name for t in tables))
    return ErasedConversations(conversations=len(ids), events=removed)


def _load(data: Any) -> Dict[str, Any]:
    try:
        value = json.loads(data or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
