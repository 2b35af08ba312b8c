"""The tracker store's conversation cache: same trackers as Rasa's store, also with two processes.

Each test drives ``ReviewableSQLTrackerStore`` as Rasa does (retrieve, update,
save) and compares what it returns with Rasa's stock ``SQLTrackerStore``
reading the same database. "Two processes" are two store instances on one
database (SQLite file, and PostgreSQL in a database of its own, created through
``PERF_TEST_PG_ADMIN_URL``, default ``postgresql://postgres@127.0.0.1:5432/postgres``;
``PERF_SKIP_PG=1`` skips those variants).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from typing import Iterator, List

import pytest
import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted,
    BotUttered,
    Event,
    SessionStarted,
    SlotSet,
    UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker

from tracking.cache import ConversationCache, Fingerprint, deserialise_events
from tracking.store import ReviewableSQLTrackerStore

DOMAIN = Domain.from_dict({
    "intents": ["greet", "lost_tfa_app"],
    "slots": {
        "step_up_code": {"type": "text", "influence_conversation": False, "mappings": [{"type": "custom"}]},
        "topic": {"type": "text", "influence_conversation": False, "mappings": [{"type": "custom"}]},
    },
    "responses": {"utter_greet": [{"text": "Hi"}]},
})
PG_ADMIN = os.environ.get("PERF_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def user(text: str, intent: str = "greet") -> UserUttered:
    return UserUttered(text, intent={"name": intent, "confidence": 0.9}, parse_data={
        "intent": {"name": intent, "confidence": 0.9}, "entities": [], "text": text}, input_channel="rest")


def turn(tracker: DialogueStateTracker, text: str) -> None:
    tracker.update(user(text))
    tracker.update(ActionExecuted("utter_greet", policy="RulePolicy", confidence=1.0))
    tracker.update(BotUttered(f"answer to {text}"))
    tracker.update(ActionExecuted("action_listen"))


def start_session(tracker: DialogueStateTracker) -> None:
    tracker.update(ActionExecuted("action_session_start"))
    tracker.update(SessionStarted())
    tracker.update(ActionExecuted("action_listen"))


def dumped(tracker: DialogueStateTracker) -> List[dict]:
    return [event.as_dict() for event in tracker.events]


def run(coroutine):
    return asyncio.run(coroutine)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'tracker.db'}"
        return
    if os.environ.get("PERF_SKIP_PG") == "1":
        pytest.skip("PERF_SKIP_PG=1")
    name = f"perf_cache_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT", future=True)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(
                f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
        admin.dispose()


def stock_view(url: str, sender: str) -> List[dict]:
    """What Rasa's own SQLTrackerStore returns for ``sender`` from the same database."""
    stock = SQLTrackerStore(DOMAIN, host=url)
    try:
        tracker = run(stock.retrieve(sender))
        return dumped(tracker) if tracker is not None else []
    finally:
        stock.engine.dispose()


def test_a_cached_conversation_is_what_rasas_store_reads_including_redaction_and_new_sessions(db_url):
    store = ReviewableSQLTrackerStore(DOMAIN, host=db_url)
    tracker = run(store.get_or_create_tracker("c1"))
    start_session(tracker)
    turn(tracker, "hello")
    tracker.update(user("123456", "lost_tfa_app"))
    tracker.update(SlotSet("step_up_code", "123456"))
    run(store.save(tracker))
    for text in ("again", "and again"):
        tracker = run(store.retrieve("c1"))
        turn(tracker, text)
        run(store.save(tracker))
    assert store.cache.hits >= 2  # the later turns came from memory
    cached = run(store.retrieve("c1"))
    assert dumped(cached) == stock_view(db_url, "c1")
    assert "123456" not in repr(dumped(cached))  # the code typed is not kept in memory either
    assert cached.get_slot("step_up_code") == "[redacted]"

    time.sleep(0.01)
    start_session(cached)  # a new session: only its events are returned from now on
    turn(cached, "new session")
    run(store.save(cached))
    again = run(store.retrieve("c1"))
    assert dumped(again) == stock_view(db_url, "c1")
    assert [e["event"] for e in dumped(again)][:2] == ["session_started", "action"]


def test_two_processes_writing_alternately_see_each_others_turns(db_url):
    first = ReviewableSQLTrackerStore(DOMAIN, host=db_url)
    second = ReviewableSQLTrackerStore(DOMAIN, host=db_url)
    tracker = run(first.get_or_create_tracker("c2"))
    start_session(tracker)
    run(first.save(tracker))
    for index in range(6):  # as a load balancer without stickiness sends the messages
        store = (first, second)[index % 2]
        tracker = run(store.retrieve("c2"))
        turn(tracker, f"message {index}")
        run(store.save(tracker))
    expected = stock_view(db_url, "c2")
    texts = [e["text"] for e in expected if e["event"] == "user"]
    assert texts == [f"message {i}" for i in range(6)]
    for store in (first, second):
        assert dumped(run(store.retrieve("c2"))) == expected
    assert first.cache.hits + second.cache.hits >= 2


def test_an_unsaved_turn_and_changes_to_a_returned_tracker_do_not_leak_into_the_next_read(db_url):
    store = ReviewableSQLTrackerStore(DOMAIN, host=db_url)
    tracker = run(store.get_or_create_tracker("c3"))
    turn(tracker, "kept")
    run(store.save(tracker))
    stored = stock_view(db_url, "c3")

    failed = run(store.retrieve("c3"))
    failed.model_id = "another-model"  # Rasa stamps events it updates with the model id
    turn(failed, "lost: the action server failed before the save")
    for event in failed.events:
        event.metadata = {**event.metadata, "stamped": True}
    assert dumped(run(store.retrieve("c3"))) == stored


def test_conversations_deleted_or_rewritten_by_another_process_are_read_again(db_url):
    store = ReviewableSQLTrackerStore(DOMAIN, host=db_url)
    tracker = run(store.get_or_create_tracker("c4"))
    turn(tracker, "to be deleted")
    run(store.save(tracker))
    assert run(store.retrieve("c4")) is not None
    with store.engine.begin() as conn:  # e.g. a retention job in another process
        conn.execute(sa.text("DELETE FROM events WHERE sender_id = 'c4'"))
    assert run(store.retrieve("c4")) is None

    other = ReviewableSQLTrackerStore(DOMAIN, host=db_url)
    tracker = run(other.get_or_create_tracker("c4"))
    turn(tracker, "written elsewhere")
    run(other.save(tracker))
    assert dumped(run(store.retrieve("c4"))) == stock_view(db_url, "c4")


def test_the_cache_holds_at_most_its_event_budget_and_can_be_turned_off(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'tracker.db'}"
    monkeypatch.setenv("TRACKER_CACHE_EVENTS", "20")
    store = ReviewableSQLTrackerStore(DOMAIN, host=url)
    for index in range(10):
        tracker = run(store.get_or_create_tracker(f"s{index}"))
        turn(tracker, "hello")
        run(store.save(tracker))
        assert store.cache.size <= 20
    assert 0 < len(store.cache) < 10
    assert dumped(run(store.retrieve("s0"))) == stock_view(url, "s0")  # evicted ones come from the database

    monkeypatch.setenv("TRACKER_CACHE_EVENTS", "0")
    off = ReviewableSQLTrackerStore(DOMAIN, host=url)
    tracker = run(off.retrieve("s1"))
    turn(tracker, "more")
    run(off.save(tracker))
    assert len(off.cache) == 0 and off.cache.hits == 0
    assert dumped(run(off.retrieve("s1"))) == stock_view(url, "s1")


def test_the_fast_deserialiser_gives_rasas_events():
    records = [e.as_dict() for e in (
        user("hi"), ActionExecuted("utter_greet"), BotUttered("Hi", {"buttons": []}), SlotSet("topic", "x"),
        SessionStarted(), ActionExecuted("action_listen"))] + [{"no": "event key"}]
    assert deserialise_events(records) == [Event.from_parameters(r) for r in records if "event" in r]
    with pytest.raises(ValueError, match="Unknown event name"):
        deserialise_events([{"event": "not_an_event"}])


def test_an_entry_is_dropped_when_the_database_changed_under_a_save():
    cache = ConversationCache(100)
    cache.put("s", Fingerprint(3, 3), deserialise_events([ActionExecuted("action_listen").as_dict()] * 3))
    new = [ActionExecuted("utter_greet").as_dict()]
    cache.extend("s", Fingerprint(5, 4), 3, new, [6])  # another process stored row 5 meanwhile
    assert cache.events("s", Fingerprint(6, 5)) is None and len(cache) == 0
