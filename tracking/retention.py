"""Removing whole conversations: the retention purge and the rows an erasure deletes.

Rules:

* A conversation is its Rasa sender id: its ``events``, its review index rows
  (``conversation_summary``, ``conversation_fact``, ``message_index`` and,
  through its triggers, the SQLite FTS index) and the rows of any
  ``related`` table keyed by ``sender_id`` (the console's tags, notes, review
  status, activity and NLU labels: the caller passes them, this package does
  not know the console).
* :func:`purge_conversations` removes every conversation whose last event is
  older than the cut-off, in short write transactions of at most
  ``batch_events`` events each, so a concurrent save (a customer's turn)
  never waits long for the lock. A conversation that got a new event since
  it was listed is left alone (checked again inside the deleting transaction).
  A conversation bigger than one batch loses its events in chunks first; its
  summary goes last, so an interrupted purge resumes where it stopped. After
  each transaction the purge pauses twice as long as the transaction took, at
  least :data:`MIN_PAUSE_SECONDS` (and, on
  SQLite, checkpoints the write-ahead log itself), so waiting writers get the
  lock at once and never pay for a checkpoint of the purge's pages.
* :func:`delete_conversations` removes the given conversations in the caller's
  transaction (erasure: all or nothing).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable, Iterable, List, Sequence, Tuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from tracking.db import read_transaction, write_transaction
from tracking.schema import conversation_fact, conversation_summary, events, message_index

logger = logging.getLogger(__name__)

#: Events deleted per write transaction by default.
BATCH_EVENTS = 250
#: Conversations listed per read of the summary table.
LIST_CONVERSATIONS = 200
#: Shortest pause between two purge transactions (seconds): longer than the sleeps of
#: SQLite's busy handler until 100 ms (at most 25 ms each), so a waiting writer
#: wakes inside the pause and gets the lock.
MIN_PAUSE_SECONDS = 0.03
#: Seconds in a day.
DAY_SECONDS = 86_400


@dataclass(frozen=True)
class PurgeReport:
    """What a retention purge removed."""

    conversations: int
    events: int
    transactions: int
    longest_transaction_seconds: float = 0.0
    longest_transaction_cpu_seconds: float = 0.0


def delete_conversations(conn: Connection, sender_ids: Sequence[str],
                         related: Iterable[sa.Table] = ()) -> int:
    """Delete the conversations ``sender_ids`` everywhere, in the caller's transaction.

    Args:
        conn: Connection inside a write transaction.
        sender_ids: The conversations.
        related: Further tables with a ``sender_id`` column to clear (console tables).

    Returns:
        The number of events deleted.
    """
    if not sender_ids:
        return 0
    ids = list(sender_ids)
    removed = conn.execute(events.delete().where(events.c.sender_id.in_(ids))).rowcount
    conn.execute(message_index.delete().where(message_index.c.sender_id.in_(ids)))
    conn.execute(conversation_fact.delete().where(conversation_fact.c.sender_id.in_(ids)))
    for table in related:
        conn.execute(table.delete().where(table.c.sender_id.in_(ids)))
    conn.execute(conversation_summary.delete().where(conversation_summary.c.sender_id.in_(ids)))
    return removed


def cutoff_for(now: float, retention_days: int) -> float:
    """The unix time before which a conversation's last event makes it expire."""
    if retention_days <= 0:
        raise ValueError("retention_days must be positive")
    return now - retention_days * DAY_SECONDS


def purge_conversations(engine: Engine, *, older_than: float, batch_events: int = BATCH_EVENTS,
                        related: Sequence[sa.Table] = (),
                        pause: Callable[[float], None] = time.sleep) -> PurgeReport:
    """Remove every conversation whose last event is older than ``older_than``, in small batches.

    Args:
        engine: Engine of the tracker database.
        older_than: Unix time cut-off (see :func:`cutoff_for`).
        batch_events: Most events deleted in one write transaction.
        related: Console tables keyed by ``sender_id`` to clear too.
        pause: Waits the given seconds between transactions (throttling, injectable).

    Returns:
        The counts of what was removed.
    """
    if batch_events <= 0:
        raise ValueError("batch_events must be positive")
    conversations = removed = transactions = 0
    holds: List[Tuple[float, float]] = []
    while True:
        listed = _expired(engine, older_than)
        if not listed:
            break
        for batch in _batches(listed, batch_events):
            if len(batch) == 1 and batch[0][1] > batch_events:
                chunk_events, chunk_transactions = _delete_events_in_chunks(
                    engine, batch[0][0], older_than, batch_events, pause, holds)
                removed += chunk_events
                transactions += chunk_transactions
            with write_transaction(engine) as conn:
                started = _clocks()  # the lock is held from here (BEGIN IMMEDIATE)
                still = _still_expired(conn, [sender for sender, _ in batch], older_than)
                removed += delete_conversations(conn, still, related)
            _yield_to_writers(engine, started, pause, holds)
            transactions += 1
            conversations += len(still)
        if len(listed) < LIST_CONVERSATIONS:
            break
    if conversations:
        logger.info("retention: removed %d conversations (%d events) in %d transactions",
                    conversations, removed, transactions)
    return PurgeReport(conversations=conversations, events=removed, transactions=transactions,
                       longest_transaction_seconds=max((wall for wall, _ in holds), default=0.0),
                       longest_transaction_cpu_seconds=max((cpu for _, cpu in holds), default=0.0))


def _expired(engine: Engine, older_than: float) -> List[Tuple[str, int]]:
    with read_transaction(engine) as conn:
        rows = conn.execute(
            sa.select(conversation_summary.c.sender_id, conversation_summary.c.event_count)
            .where(conversation_summary.c.last_event_at < older_than)
            .order_by(conversation_summary.c.last_event_at)
            .limit(LIST_CONVERSATIONS)
        ).all()
    return [(row.sender_id, int(row.event_count or 0)) for row in rows]


def _batches(listed: List[Tuple[str, int]], batch_events: int) -> Iterable[List[Tuple[str, int]]]:
    """Group conversations so each group holds at most ``batch_events`` events (a bigger one alone)."""
    batch: List[Tuple[str, int]] = []
    size = 0
    for sender, count in listed:
        if batch and size + count > batch_events:
            yield batch
            batch, size = [], 0
        batch.append((sender, count))
        size += count
    if batch:
        yield batch


def _still_expired(conn: Connection, sender_ids: List[str], older_than: float) -> List[str]:
    """The conversations of ``sender_ids`` that are still expired, their summaries locked."""
    query = (
        sa.select(conversation_summary.c.sender_id)
        .where(conversation_summary.c.sender_id.in_(sender_ids),
               conversation_summary.c.last_event_at < older_than)
        .with_for_update()
    )
    return [row.sender_id for row in conn.execute(query)]


def _clocks() -> Tuple[float, float]:
    """(wall, this thread's CPU) time, to measure a transaction."""
    return time.monotonic(), time.thread_time()


def _yield_to_writers(engine: Engine, started: Tuple[float, float], pause: Callable[[float], None],
                      holds: List[Tuple[float, float]]) -> None:
    """Let waiting writers in: checkpoint the SQLite WAL here, then pause (twice the lock's hold, 30 ms at least)."""
    wall, cpu = _clocks()
    held = wall - started[0]
    holds.append((held, cpu - started[1]))
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
    pause(max(2 * held, MIN_PAUSE_SECONDS))


def _delete_events_in_chunks(engine: Engine, sender_id: str, older_than: float, chunk: int,
                             pause: Callable[[float], None], holds: List[Tuple[float, float]]) -> Tuple[int, int]:
    """Delete a big expired conversation's events and messages ``chunk`` at a time (summary kept).

    Returns:
        (events deleted, write transactions used).
    """
    removed = transactions = 0
    while True:
        with write_transaction(engine) as conn:
            started = _clocks()
            transactions += 1
            if not _still_expired(conn, [sender_id], older_than):
                return removed, transactions
            ids = [row.id for row in conn.execute(
                sa.select(events.c.id).where(events.c.sender_id == sender_id)
                .order_by(events.c.id).limit(chunk))]
            if not ids:
                return removed, transactions
            conn.execute(message_index.delete().where(message_index.c.event_id.in_(ids)))
            removed += conn.execute(events.delete().where(events.c.id.in_(ids))).rowcount
        _yield_to_writers(engine, started, pause, holds)
