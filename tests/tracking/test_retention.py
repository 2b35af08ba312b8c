"""Conversation retention: old conversations leave the tracker store, the review index and the console's tables in
short batches, while customers keep chatting (SQLite and PostgreSQL).

The purge runs in its own process (as the scheduler does) while this process saves turns. Asserted: every old
conversation is gone with its index and console rows, the recent ones and the live ones stay, every save went
through, and no purge transaction did more than 50 ms of work (CPU) while holding the lock. The wall-clock waits of
the saves are printed (run with ``-s``): they depend on the machine's load."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any, Dict, List, Tuple

import pytest
import sqlalchemy as sa
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered

from console.models import metadata as console_metadata
from console.models import note, tag
from tracking.db import make_engine
from tracking.retention import BATCH_EVENTS, DAY_SECONDS, PurgeReport, cutoff_for
from tracking.schema import conversation_fact, conversation_summary, events, message_index
from tracking.settings import conversation_retention_days
from tracking.store import ReviewableSQLTrackerStore
from supportbot.settings import PROJECT_ROOT

NOW = 1_780_000_000.0  # the purge's "now" (unix time), injected
OLD = NOW - 200 * DAY_SECONDS  # older than the default 180 days
RECENT = NOW - 10 * DAY_SECONDS
OLD_CONVERSATIONS = 1_000
EVENTS_EACH = 100  # 100,000 old events in all
BIG_CONVERSATION_EVENTS = 1_200  # more than one batch: deleted in chunks
MAX_BLOCKED_SECONDS = 0.100
TURNS_PER_CONVERSATION = 10
TURN_GAP_SECONDS = 0.01
WARM_UP_TURNS = 10  # new database connections are slow at first: not measured


def _time_in_database(engine: sa.engine.Engine) -> List[Tuple[str, float]]:
    """Collects (statement, seconds) for each statement and commit of ``engine``. Lock waits show up here
    (in ``BEGIN IMMEDIATE`` on SQLite, in any statement on PostgreSQL); Python work between them does not."""
    spent: List[Tuple[str, float]] = []

    @sa.event.listens_for(engine, "before_cursor_execute")
    def _before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        conn.info["statement_started"] = time.perf_counter()

    @sa.event.listens_for(engine, "after_cursor_execute")
    def _after(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        spent.append((statement, time.perf_counter() - conn.info.pop("statement_started")))

    commit = engine.dialect.do_commit

    def timed_commit(dbapi_connection: Any) -> None:
        started = time.perf_counter()
        try:
            commit(dbapi_connection)
        finally:
            spent.append(("COMMIT", time.perf_counter() - started))

    engine.dialect.do_commit = timed_commit  # this engine's dialect only
    return spent


def _conversation_rows(sender: str, first_id: int, count: int, at: float) -> Dict[str, List[Dict[str, Any]]]:
    rows: Dict[str, List[Dict[str, Any]]] = {"events": [], "messages": []}
    for n in range(count):
        event_id = first_id + n
        text = f"old message {n} of {sender}" if n % 50 == 0 else None
        data = {"event": "user", "text": text, "timestamp": at + n} if text else {"event": "action", "name": "x"}
        rows["events"].append({"id": event_id, "sender_id": sender, "type_name": data["event"],
                               "timestamp": at + n, "data": json.dumps(data)})
        if text:
            rows["messages"].append({"event_id": event_id, "sender_id": sender, "timestamp": at + n, "role": "user",
                                     "text": text, "is_payload": False, "in_form": False})
    return rows


def _summary(sender: str, at: float, count: int, last_id: int) -> Dict[str, Any]:
    zero = {c: 0 for c in ("session_count", "user_message_count", "bot_message_count", "fallback_count",
                           "handoff_count", "support_request_count", "failed_action_count",
                           "operations_performed", "operations_refused")}
    return dict(zero, sender_id=sender, started_at=at, started_day="2026-01-01", last_event_at=at + count,
                last_event_id=last_id, event_count=count, channel="rest")


def _fill(engine: sa.engine.Engine) -> None:
    """1,000 old conversations of 100 events, one big old one, two recent ones; console rows on some."""
    plan = [(f"old-{i:04d}", EVENTS_EACH, OLD) for i in range(OLD_CONVERSATIONS)]
    plan += [("old-big", BIG_CONVERSATION_EVENTS, OLD), ("recent-1", 20, RECENT),
             ("started-long-ago-still-active", 20, OLD)]
    next_id = 1
    with engine.begin() as conn:
        lead = conn.execute(console_metadata.tables["console_lead"].insert().values(
            email="lead@example.com", password_hash="x", created_at=OLD, disabled=False)).inserted_primary_key[0]
        for sender, count, at in plan:
            rows = _conversation_rows(sender, next_id, count, at)
            conn.execute(events.insert(), rows["events"])
            if rows["messages"]:
                conn.execute(message_index.insert(), rows["messages"])
            summary = _summary(sender, at, count, next_id + count - 1)
            if sender == "started-long-ago-still-active":
                summary["last_event_at"] = RECENT
            conn.execute(conversation_summary.insert(), [summary])
            conn.execute(conversation_fact.insert(), [{"kind": "intent", "value": "greet", "sender_id": sender}])
            next_id += count
        for sender in ("old-0001", "recent-1"):
            conn.execute(tag.insert(), [{"sender_id": sender, "tag": "billing", "added_by": lead, "added_at": OLD}])
            conn.execute(note.insert(), [{"sender_id": sender, "lead_id": lead, "body": f"note on {sender}",
                                          "created_at": OLD}])
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.exec_driver_sql("SELECT setval(pg_get_serial_sequence('events', 'id'), (SELECT max(id) FROM events))")
            conn.exec_driver_sql("ANALYZE")


PURGE_PROGRAM = """
import json, sys
from console.models import CONVERSATION_TABLES
from tracking.db import make_engine
from tracking.retention import purge_conversations
engine = make_engine(sys.argv[1])
report = purge_conversations(engine, older_than=float(sys.argv[2]), related=CONVERSATION_TABLES)
print(json.dumps(report.__dict__))
"""


def _purge_in_another_process(url: str) -> subprocess.Popen:
    """The scheduler's retention job in its own process (as in a deployment); prints its report as JSON."""
    return subprocess.Popen([sys.executable, "-c", PURGE_PROGRAM, url, repr(cutoff_for(NOW, 180))],
                            cwd=PROJECT_ROOT, env=dict(os.environ, PYTHONPATH=str(PROJECT_ROOT)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _senders(engine: sa.engine.Engine, table: sa.Table) -> set:
    with engine.connect() as conn:
        return set(conn.execute(sa.select(table.c.sender_id).distinct()).scalars())


def test_the_retention_window_defaults_to_180_days_and_refuses_nonsense() -> None:
    assert conversation_retention_days({}) == 180
    assert conversation_retention_days({"CONVERSATION_RETENTION_DAYS": "30"}) == 30
    with pytest.raises(ValueError):
        conversation_retention_days({"CONVERSATION_RETENTION_DAYS": "0"})


def test_100000_old_events_are_purged_in_short_transactions_while_customers_keep_saving(tracker_url: str) -> None:
    store = ReviewableSQLTrackerStore(Domain.empty(), host=tracker_url)  # migrates the database
    purge_engine = make_engine(tracker_url)
    try:
        _fill(purge_engine)
        in_database = _time_in_database(store.engine)
        turn = 0

        async def chat(until: Any) -> Tuple[List[float], List[float]]:
            """Customers' turns until ``until()``: per save, time in the database and time waiting for SQLite's lock."""
            nonlocal turn
            spent: List[float] = []
            waits: List[float] = []
            tracker = None
            while not until():
                if tracker is None or turn % TURNS_PER_CONVERSATION == 0:  # customers' conversations are short
                    tracker = await store.get_or_create_tracker(f"live-{turn // TURNS_PER_CONVERSATION}")
                turn += 1
                tracker.update(UserUttered(f"hi again {turn}", intent={"name": "greet", "confidence": 0.9}))
                tracker.update(ActionExecuted("utter_greet"))
                tracker.update(BotUttered("Hello!"))
                in_database.clear()
                await store.save(tracker)
                spent.append(sum(seconds for _, seconds in in_database))
                waits.append(sum(seconds for statement, seconds in in_database if statement == "BEGIN IMMEDIATE"))
                await asyncio.sleep(TURN_GAP_SECONDS)  # customers type between turns (pacing, not waiting)
            return spent, waits

        asyncio.run(chat(lambda: turn >= WARM_UP_TURNS))  # new connections are slow at first: not measured
        purging = _purge_in_another_process(tracker_url)
        latencies, lock_waits = asyncio.run(chat(lambda: purging.poll() is not None))
        out, err = purging.communicate(timeout=600)
        assert purging.returncode == 0, err[-2000:]
        report = PurgeReport(**json.loads(out.strip().splitlines()[-1]))
        assert report.conversations == OLD_CONVERSATIONS + 1
        assert report.events == OLD_CONVERSATIONS * EVENTS_EACH + BIG_CONVERSATION_EVENTS
        assert report.transactions >= report.events // BATCH_EVENTS
        print(f"\n{len(latencies)} saves during the purge: time in the database max {max(latencies) * 1000:.1f} ms, "
              f"median {sorted(latencies)[len(latencies) // 2] * 1000:.1f} ms; "
              f"longest wait for SQLite's write lock {max(lock_waits) * 1000:.1f} ms; longest purge transaction "
              f"{report.longest_transaction_seconds * 1000:.1f} ms ({report.longest_transaction_cpu_seconds * 1000:.1f} ms "
              f"of CPU)")
        assert len(latencies) >= 5, "the saves did not overlap the purge"
        # What the purge controls, independent of the machine's load: the work it does while holding
        # the lock. The wall-clock waits above are printed, not asserted: on a loaded shared machine
        # (load 10-15 on 2 cores) the scheduler alone stalls a process for 100-500 ms.
        assert report.longest_transaction_cpu_seconds < MAX_BLOCKED_SECONDS / 2, report

        live = {f"live-{n}" for n in range((turn - 1) // TURNS_PER_CONVERSATION + 1)}
        kept = {"recent-1", "started-long-ago-still-active"} | live
        for table in (events, conversation_summary, conversation_fact):
            assert _senders(purge_engine, table) == kept, table.name
        assert _senders(purge_engine, message_index) == kept
        assert _senders(purge_engine, tag) == {"recent-1"}
        assert _senders(purge_engine, note) == {"recent-1"}
        if purge_engine.dialect.name == "sqlite":
            with purge_engine.connect() as conn:
                hits = conn.exec_driver_sql(
                    "SELECT count(*) FROM message_fts WHERE message_fts MATCH '\"of old-\"'").scalar()
            assert hits == 0
    finally:
        purge_engine.dispose()
        store.engine.dispose()
