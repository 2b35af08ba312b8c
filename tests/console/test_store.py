"""The tracker store: Rasa's events plus the review index, written in one place.

These tests drive ``ReviewableSQLTrackerStore`` the way Rasa does (real
``DialogueStateTracker`` objects and events, ``await store.save(tracker)``) on
a fresh SQLite file each; the HTTP tests cover both backends with real chats.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Dict, List

import pytest
import sqlalchemy as sa
from rasa.core.brokers.broker import EventBroker
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, SlotSet, UserUttered

from console import queries
from console.app import prepare_database
from tracking import schema
from tracking.store import ReviewableSQLTrackerStore

DOMAIN = Domain.empty()
SECRET = "4242 9999"


def user(text: str, intent: str, confidence: float) -> UserUttered:
    return UserUttered(text, intent={"name": intent, "confidence": confidence}, parse_data={
        "intent": {"name": intent, "confidence": confidence}, "entities": [], "text": text,
        "intent_ranking": [{"name": intent, "confidence": confidence}]}, input_channel="rest")


class Masking(ReviewableSQLTrackerStore):
    """A store whose redaction hook masks a known secret, as the identity issue's will."""

    def redact_events(self, events: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        return [json.loads(json.dumps(e).replace(SECRET, "[redacted]")) for e in events]


class DroppingStore(ReviewableSQLTrackerStore):
    def redact_events(self, events: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        return events[:-1]


class RecordingBroker(EventBroker):
    """Stands in for RabbitMQ/Kafka: keeps what it is given."""

    def __init__(self) -> None:
        self.published: List[Dict[str, Any]] = []

    def publish(self, event: Dict[str, Any]) -> None:
        self.published.append(event)

    def is_ready(self) -> bool:
        return True


@pytest.fixture
def db_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'tracker.db'}"


def rows(store: ReviewableSQLTrackerStore, sql: str) -> List[tuple]:
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(sql))]


def test_our_events_table_is_rasas_events_table():
    ours = {c.name: (type(c.type), c.nullable, c.primary_key) for c in schema.events.columns}
    rasas = {c.name: (type(c.type), c.nullable, c.primary_key) for c in SQLTrackerStore.SQLEvent.__table__.columns}
    assert ours == rasas


def test_the_url_comes_from_tracker_db_url(monkeypatch, db_url):
    monkeypatch.setenv("TRACKER_DB_URL", db_url)
    store = ReviewableSQLTrackerStore(DOMAIN)
    assert store.url == db_url
    assert {"events", "conversation_summary", "message_index"} <= set(sa.inspect(store.engine).get_table_names())


def test_secrets_are_redacted_before_events_the_index_or_the_broker_see_them(db_url):
    broker = RecordingBroker()
    store = Masking(DOMAIN, host=db_url, event_broker=broker)

    async def converse() -> None:
        tracker = await store.get_or_create_tracker("c1")
        tracker.update(user(f"my code is {SECRET}", "lost_tfa_app", 0.9))
        tracker.update(ActionExecuted("utter_lost_tfa_app", policy="RulePolicy", confidence=1.0))
        tracker.update(BotUttered(f"You wrote {SECRET}"))
        await store.save(tracker)

    asyncio.run(converse())
    stored = " ".join(r[0] for r in rows(store, "SELECT data FROM events"))
    indexed = " ".join(r[0] for r in rows(store, "SELECT text FROM message_index"))
    summary = rows(store, "SELECT first_user_text FROM conversation_summary")
    assert "[redacted]" in stored and SECRET not in stored
    assert "my code is [redacted]" in indexed and SECRET not in indexed
    assert summary == [("my code is [redacted]",)]
    assert broker.published and SECRET not in json.dumps(broker.published)
    with store.engine.connect() as conn:  # the search index holds only what was stored
        assert conn.execute(queries.message_search(conn, "4242")).all() == []
        assert conn.execute(queries.message_search(conn, "my code")).all() == [("c1",)]


def test_a_redaction_that_drops_events_stores_nothing(db_url):
    store = DroppingStore(DOMAIN, host=db_url)
    tracker = store.init_tracker("c2")
    tracker.update(user("hello", "greet", 0.99))
    with pytest.raises(ValueError, match="one event for each event"):
        asyncio.run(store.save(tracker))
    assert rows(store, "SELECT count(*) FROM events") == [(0,)]


def test_the_summary_follows_the_conventions_across_saves(db_url):
    store = ReviewableSQLTrackerStore(DOMAIN, host=db_url)

    async def converse() -> None:
        tracker = await store.get_or_create_tracker("c3")
        tracker.update(UserUttered("close it", parse_data={
            "intent": {"name": "close_account", "confidence": 0.95}, "entities": [], "text": "close it",
        }, input_channel="socketio", metadata={"verified_identity": {"account_id": 7, "email": "o@x.example"}}))
        tracker.update(ActionExecuted("action_check_closure", policy="RulePolicy", confidence=1.0))
        await store.save(tracker)  # the action's result arrives with the next save
        tracker.update(SlotSet("last_operation", {"operation": "close_account", "outcome": "refused",
                                                  "reason": "unpaid_invoices"}))
        tracker.update(ActionExecuted("action_listen"))
        await store.save(tracker)

    asyncio.run(converse())
    prepare_database(store.engine)  # the console's own tables, as the console creates them
    with store.engine.connect() as conn:
        page = queries.list_conversations(conn, queries.Filters(customer="7", outcome="refused"))
    assert [r.sender_id for r in page.rows] == ["c3"]
    summary = page.rows[0].summary
    assert (summary["channel"], summary["operations_refused"], summary["failed_action_count"]) == ("socketio", 1, 0)
    assert page.rows[0].operations == [("close_account", "refused")]


def test_a_failed_index_update_keeps_the_events_and_the_next_save_repairs_it(db_url):
    store = ReviewableSQLTrackerStore(DOMAIN, host=db_url)
    tracker = store.init_tracker("c4")
    tracker.update(user("first", "greet", 0.9))
    with store.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE conversation_summary RENAME TO summary_away")
    asyncio.run(store.save(tracker))
    assert rows(store, "SELECT count(*) FROM events") == [(1,)]
    with store.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE summary_away RENAME TO conversation_summary")
    tracker.update(user("second", "thank", 0.9))
    asyncio.run(store.save(tracker))
    assert rows(store, "SELECT event_count, user_message_count, first_user_text FROM conversation_summary") == [
        (2, 2, "first")]


def test_conversations_stored_before_the_index_existed_are_indexed_when_they_continue(db_url):
    stock = SQLTrackerStore(DOMAIN, host=db_url)  # what the project ran before this issue
    tracker = stock.init_tracker("c5")
    tracker.update(user("an old question", "account_types", 0.8))
    asyncio.run(stock.save(tracker))
    stock.engine.dispose()

    store = ReviewableSQLTrackerStore(DOMAIN, host=db_url)
    tracker = asyncio.run(store.retrieve("c5"))
    tracker.update(user("a new one", "close_account", 0.7))
    asyncio.run(store.save(tracker))
    assert rows(store, "SELECT user_message_count, first_user_text, min_confidence FROM conversation_summary") == [
        (2, "an old question", 0.7)]
    assert rows(store, "SELECT count(*) FROM events WHERE sender_id = 'c5'") == [(2,)]


@pytest.mark.parametrize("q", ["ACCOUNT", "close", "50%", "c_ose", "x"])
def test_both_search_plans_find_the_same_conversations(db_url, q):
    store = ReviewableSQLTrackerStore(DOMAIN, host=db_url)
    texts = {"a": "How do I close my account?", "b": "my account costs 50% more", "c": "nothing here",
             "d": "Close it", "e": "xylophone"}
    for sender, text in texts.items():
        tracker = store.init_tracker(sender)
        tracker.update(user(text, "close_account", 0.9))
        asyncio.run(store.save(tracker))
    prepare_database(store.engine)
    found = {}
    with store.engine.connect() as conn:
        for probe in (False, True):
            where = queries.conditions(conn, queries.Filters(q=q), probe_search=probe)
            found[probe] = set(conn.execute(sa.select(queries.S.c.sender_id).select_from(
                queries.S.outerjoin(queries.review, queries.review.c.sender_id == queries.S.c.sender_id))
                .where(*where)).scalars())
    expected = {s for s, t in texts.items() if q.lower() in t.lower()}
    assert found[False] == found[True] == expected
