"""Honest event labels: a form interruption is neutral, a real action failure stands out.

Conversations are written the way Rasa 3.6 writes them (real events through
``ReviewableSQLTrackerStore.save``) on SQLite and PostgreSQL:

* an interruption: the customer asks a question at the password form's prompt,
  the form declines the message (``action_execution_rejected``), the FAQ answer
  follows and the form asks again;
* a failure: the action server answered HTTP 500, so Rasa kept
  ``action_human_handoff``'s ``action`` event and none of its events.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Iterator, List

import pytest
import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted,
    ActionExecutionRejected,
    ActiveLoop,
    BotUttered,
    Event,
    SlotSet,
    UserUttered,
)

from console import queries, views
from console.app import prepare_database
from tests.console.conftest import _pg_database
from tracking.migrate import VERSION_TABLE
from tracking.rebuild import rebuild_index
from tracking.store import ReviewableSQLTrackerStore

DOMAIN = Domain.empty()
T0 = datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc).timestamp()
DAY = datetime(2026, 11, 30).date()


def user(text: str, intent: str, confidence: float = 0.93) -> UserUttered:
    return UserUttered(text, intent={"name": intent, "confidence": confidence}, parse_data={
        "intent": {"name": intent, "confidence": confidence}, "entities": [], "text": text,
        "intent_ranking": [{"name": intent, "confidence": confidence}]}, input_channel="rest")


def interrupted_form() -> List[Event]:
    return [
        user("i forgot my pasword and cant log in", "forgot_password"),
        ActionExecuted("password_reset_form", policy="RulePolicy", confidence=1.0),
        ActiveLoop("password_reset_form"),
        SlotSet("requested_slot", "reset_email"),
        BotUttered("What is the e-mail address of your account?"),
        ActionExecuted("action_listen"),
        user("wait what is 2fa actually??", "what_is_tfa"),
        ActionExecutionRejected("password_reset_form", policy="RulePolicy", confidence=1.0),
        ActionExecuted("utter_what_is_tfa", policy="RulePolicy", confidence=1.0),
        BotUttered("Two-factor authentication asks for a code from your phone."),
        ActionExecuted("password_reset_form", policy="RulePolicy", confidence=1.0),
        BotUttered("What is the e-mail address of your account?"),
        ActionExecuted("action_listen"),
    ]


def failed_handoff() -> List[Event]:
    return [
        user("can i talk to a human pls", "human_handoff"),
        ActionExecuted("action_human_handoff", policy="RulePolicy", confidence=1.0),
        ActionExecuted("action_listen"),  # the action server answered 500: no event of the action
    ]


def save(store: ReviewableSQLTrackerStore, sender_id: str, events: List[Event]) -> None:
    tracker = store.init_tracker(sender_id)
    for offset, event in enumerate(events):
        event.timestamp = T0 + offset
        tracker.update(event)
    asyncio.run(store.save(tracker))


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path) -> Iterator[ReviewableSQLTrackerStore]:
    pg = None
    if request.param == "postgresql":
        pg = _pg_database()
        url = next(pg)
    else:
        url = f"sqlite:///{tmp_path / 'tracker.db'}"
    store = ReviewableSQLTrackerStore(DOMAIN, host=url)
    try:
        save(store, "interrupted", interrupted_form())
        save(store, "broken", failed_handoff())
        prepare_database(store.engine)
        yield store
    finally:
        store.engine.dispose()
        if pg is not None:
            next(pg, None)


def failed_filter(store: ReviewableSQLTrackerStore) -> List[str]:
    with store.engine.connect() as conn:
        page = queries.list_conversations(conn, queries.Filters(failed=True))
    return [row.sender_id for row in page.rows]


def summary_of(store: ReviewableSQLTrackerStore, sender_id: str) -> dict:
    with store.engine.connect() as conn:
        page = queries.list_conversations(conn, queries.Filters(q=None))
    return next(row.summary for row in page.rows if row.sender_id == sender_id)


def transcript_html(store: ReviewableSQLTrackerStore, sender_id: str) -> str:
    with store.engine.connect() as conn:
        transcript = queries.load_transcript(conn, sender_id, low_confidence=0.5)
    return "".join(str(views._item(item)) for item in transcript.items)


def test_an_interruption_is_counted_as_such_and_only_the_real_failure_as_failed(store):
    assert failed_filter(store) == ["broken"]
    interrupted, broken = summary_of(store, "interrupted"), summary_of(store, "broken")
    assert (interrupted["failed_action_count"], interrupted["form_interruption_count"]) == (0, 1)
    assert (broken["failed_action_count"], broken["form_interruption_count"]) == (1, 0)
    badges = str(views.conversation_badges(interrupted, []))
    assert "form interrupted ×1" in badges and "failed" not in badges
    with store.engine.connect() as conn:
        assert queries.dashboard(conn, DAY, DAY).with_failure == 1


def test_the_transcript_shows_the_interruption_neutral_and_the_failure_as_a_failure(store):
    with store.engine.connect() as conn:
        items = queries.load_transcript(conn, "interrupted", low_confidence=0.5).items
    marks = [(item.kind, mark.kind, mark.label) for item in items for mark in item.marks]
    assert ("interrupted", "interrupted", "Form interrupted: password_reset_form did not take this message; "
            "the assistant answered it instead") in marks
    assert not [m for m in marks if m[1] == "failed"]
    page = transcript_html(store, "interrupted")
    assert "⚠" not in page and "ev--flagged" not in page and "form interrupted" in page

    broken = transcript_html(store, "broken")
    assert "⚠ Failed: the action left no result (action server error, timeout or unreachable)" in broken


def test_rebuilding_an_old_index_relabels_the_interruption(store):
    # An index written before this change (revision 0002): no interruption column, the rejection
    # counted as a failure.
    with store.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE conversation_summary DROP COLUMN form_interruption_count")
        conn.exec_driver_sql("UPDATE conversation_summary SET failed_action_count = 1")
        conn.exec_driver_sql(f"UPDATE {VERSION_TABLE} SET version_num = '0002_verified_by'")
    prepare_database(store.engine)  # migrates: adds the missing column, keeps the old counts
    assert sorted(failed_filter(store)) == ["broken", "interrupted"]

    report = rebuild_index(store.engine)
    assert report.conversations == 2
    assert failed_filter(store) == ["broken"]
    assert summary_of(store, "interrupted")["form_interruption_count"] == 1


def test_a_failure_right_before_a_rejection_is_still_a_failure(store):
    events = failed_handoff()[:2] + [
        ActionExecutionRejected("password_reset_form", policy="RulePolicy", confidence=1.0),
        ActionExecuted("action_listen"),
    ]
    save(store, "broken-then-interrupted", events)
    summary = summary_of(store, "broken-then-interrupted")
    assert (summary["failed_action_count"], summary["form_interruption_count"]) == (1, 1)
    assert "⚠ Failed: the action left no result" in transcript_html(store, "broken-then-interrupted")
