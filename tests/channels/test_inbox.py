"""The durable inbox of the Slack and Telegram webhooks (channels/inbox.py), on a real SQLite database."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Iterator, List

import pytest
from sqlalchemy.engine import make_url

from channels.inbox import (
    KEEP_SECONDS, LEASE_SECONDS, MAX_ATTEMPTS, Inbox, InboxEntry, InboxWorker, inbox_metadata,
)
from supportbot.cluster import drop_postgres_database, ensure_postgres_database
from tests.scale_out.conftest import PG_ADMIN_URL
from tracking.db import make_engine


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["sqlite", "postgresql"])
def inbox(request, tmp_path: Path, clock: Clock) -> Iterator[Inbox]:
    """An inbox in a fresh tracker database: a SQLite file, or a PostgreSQL database of its own."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'tracker.db'}"
    else:
        url = make_url(PG_ADMIN_URL).set(database=f"inbox_test_{uuid.uuid4().hex[:10]}").render_as_string(
            hide_password=False)
        ensure_postgres_database(url)
    engine = make_engine(url)
    inbox_metadata.create_all(engine)
    yield Inbox(engine, clock)
    engine.dispose()
    if request.param == "postgresql":
        drop_postgres_database(url)


def test_a_redelivered_event_is_stored_once(inbox: Inbox):
    assert inbox.put("slack", "Ev1", "D1", {"text": "close my account"})
    assert not inbox.put("slack", "Ev1", "D1", {"text": "close my account"})
    assert inbox.put("telegram", "Ev1", "42", {"update_id": 1})  # another channel's id space
    assert inbox.pending("slack") == inbox.pending("telegram") == 1


def test_an_event_taken_by_an_instance_that_died_is_run_by_a_survivor_after_the_lease(inbox: Inbox, clock: Clock):
    inbox.put("slack", "Ev1", "D1", {"text": "close my account"})
    [taken] = inbox.take("slack")  # the instance that took it is killed before finishing

    assert inbox.take("slack") == []  # still leased: nobody runs it twice meanwhile
    clock.now += LEASE_SECONDS + 1
    [again] = inbox.take("slack")  # a survivor takes it over
    assert (again.id, again.message, again.attempts) == (taken.id, {"text": "close my account"}, 2)
    inbox.finish(again)
    clock.now += LEASE_SECONDS + 1
    assert inbox.take("slack") == [] and inbox.pending("slack") == 0


def test_the_worker_runs_a_conversations_events_in_order_and_retries_a_failure(inbox: Inbox):
    worker = InboxWorker(inbox, "slack")
    ran: List[str] = []
    failures = {"Ev2": 1}

    async def handle(entry: InboxEntry) -> None:
        if failures.get(entry.event_key):
            failures[entry.event_key] -= 1
            raise RuntimeError("the action server is down")
        ran.append(entry.message["text"])

    async def run() -> None:
        worker._handler = handle  # drained by hand: no background task, no timing
        for key, text in (("Ev1", "hi"), ("Ev2", "close my account"), ("Ev3", "yes")):
            assert await worker.put(key, "D1", {"text": text})
        assert await worker.drain() == 3
        assert ran == ["hi"]  # "yes" waits for "close my account"
        assert await worker.drain() == 2  # the failed one and the one after it, at the next look

    asyncio.run(run())
    assert ran == ["hi", "close my account", "yes"]
    assert inbox.pending("slack") == 0


def test_an_event_failing_every_time_is_given_up_visibly(inbox: Inbox, caplog):
    worker = InboxWorker(inbox, "telegram")

    async def handle(entry: InboxEntry) -> None:
        raise RuntimeError("broken")

    async def run() -> None:
        worker._handler = handle
        await worker.put("7", "42", {"update_id": 7})
        for _ in range(MAX_ATTEMPTS):
            assert await worker.drain() == 1
        assert await worker.drain() == 0

    asyncio.run(run())
    assert inbox.pending("telegram") == 0
    assert any("given up" in record.getMessage() and record.levelname == "ERROR" for record in caplog.records)


def test_a_conversations_later_event_waits_while_an_earlier_one_is_in_another_instances_hands(
        inbox: Inbox, clock: Clock):
    inbox.put("slack", "Ev1", "D1", {"text": "close my account"})
    [first] = inbox.take("slack")  # instance A takes it (and dies)
    inbox.put("slack", "Ev2", "D1", {"text": "yes"})
    inbox.put("slack", "Ev3", "D2", {"text": "hi"})  # another conversation

    [other] = inbox.take("slack")
    assert other.event_key == "Ev3"  # "yes" must not overtake "close my account"
    inbox.finish(other)
    clock.now += LEASE_SECONDS + 1
    assert [e.event_key for e in inbox.take("slack")] == ["Ev1", "Ev2"]


def test_a_handled_event_is_forgotten_after_a_day_so_a_reused_id_is_a_new_event(inbox: Inbox, clock: Clock):
    inbox.put("telegram", "7", "42", {"update_id": 7})
    [entry] = inbox.take("telegram")
    inbox.finish(entry)
    assert not inbox.put("telegram", "7", "42", {"update_id": 7})  # a redelivery: recognised

    clock.now += KEEP_SECONDS - 1
    assert inbox.purge("telegram") == 0
    clock.now += 2
    assert inbox.purge("telegram") == 1
    assert inbox.put("telegram", "7", "43", {"update_id": 7})  # Telegram reused the id much later
