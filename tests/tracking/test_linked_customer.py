"""A chat identity linked with an e-mailed code makes its conversation a verified customer's in the console,
naming the channel that linked it: filters, the transcript header and exports (the action, the store, the console)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, List

import sqlalchemy as sa
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, SlotSet, UserUttered
from rasa_sdk import Tracker
from rasa_sdk.events import SessionStarted
from rasa_sdk.events import UserUttered as SdkUserUttered
from rasa_sdk.executor import CollectingDispatcher

from accounts.db import make_session_factory, upgrade, write_session
from accounts.deps import Deps
from accounts.models import Account, ChannelLink, Member
from actions.account_store import use_deps
from actions.linking import LINKED, ActionFinishLink
from console import queries, views
from supportbot.action_claims import sign_action_call
from tests.conftest import TEST_ACTION_CLAIMS_KEY
from tracking.db import read_transaction
from tracking.store import ReviewableSQLTrackerStore

SLACK_USER = "U0LINKED1"
EMAIL = "linked.owner@example.com"


def _linked_account(url: str) -> int:
    upgrade(url)
    deps = Deps(session_factory=make_session_factory(url))
    now = datetime.now(timezone.utc)
    with write_session(deps.session_factory) as s:
        account = Account(primary_email=EMAIL, currency="EUR", created_at=now)
        s.add(account)
        s.flush()
        member = Member(account_id=account.id, email=EMAIL, role="owner", status="active", created_at=now)
        s.add(member)
        s.flush()
        s.add(ChannelLink(channel="slack", channel_user_id=SLACK_USER, account_id=account.id, member_id=member.id,
                          member_email=EMAIL, created_at=now, expires_at=now + timedelta(days=90)))
        account_id = account.id
    use_deps(deps)
    return account_id


def _finish_link_events() -> List[Dict[str, Any]]:
    user = SdkUserUttered("481516", parse_data={"intent": {"name": "nlu_fallback", "confidence": 0.3},
                                                "entities": [], "text": "481516"}, input_channel="slack")
    user.update(metadata={"channel_user": {"channel": "slack", "channel_user_id": SLACK_USER}}, message_id="m1")
    events = [SessionStarted(), user]
    sign_action_call({"tracker": {"sender_id": SLACK_USER, "events": events}},
                     TEST_ACTION_CLAIMS_KEY.encode())  # as Rasa sends it to the action server
    tracker = Tracker(SLACK_USER, {"link_stage": LINKED, "linked_as": EMAIL}, {}, events,
                      False, None, {}, "action_listen")
    return asyncio.run(ActionFinishLink().run(CollectingDispatcher(), tracker, {}))


def test_a_slack_conversation_verified_by_link_is_a_verified_customer_in_the_console(tmp_path: Path,
                                                                                    monkeypatch: Any) -> None:
    monkeypatch.setenv("ACTION_CLAIMS_KEY", TEST_ACTION_CLAIMS_KEY)  # the action server's key
    account_id = _linked_account(f"sqlite:///{tmp_path / 'accounts.db'}")
    try:
        events = _finish_link_events()
    finally:
        use_deps(None)
    [outcome] = [e for e in events if e.get("name") == "last_operation"]
    assert outcome["value"] == {"operation": "link_account", "outcome": "performed",
                                "customer": {"account_id": account_id, "channel": "slack"}}

    store = ReviewableSQLTrackerStore(Domain.empty(), host=f"sqlite:///{tmp_path / 'tracker.db'}")

    async def converse() -> None:
        tracker = await store.get_or_create_tracker(SLACK_USER)
        tracker.update(UserUttered("verify me pls", intent={"name": "link_account", "confidence": 0.9},
                                   metadata={"channel_user": {"channel": "slack", "channel_user_id": SLACK_USER}},
                                   input_channel="slack"))
        tracker.update(ActionExecuted("action_finish_link"))
        tracker.update(BotUttered(f"Thanks, you're verified as {EMAIL}"))
        tracker.update(SlotSet("last_operation", outcome["value"]))
        await store.save(tracker)
        anonymous = await store.get_or_create_tracker("U0ANON")
        anonymous.update(UserUttered("hello", intent={"name": "greet", "confidence": 0.9}, input_channel="slack"))
        await store.save(anonymous)

    asyncio.run(converse())
    with read_transaction(store.engine) as conn:
        page = queries.list_conversations(conn, queries.Filters(customer=str(account_id)))
        transcript = queries.load_transcript(conn, SLACK_USER, low_confidence=0.6)
        everyone = queries.list_conversations(conn, queries.Filters())
    store.engine.dispose()

    assert [row.summary["sender_id"] for row in page.rows] == [SLACK_USER]
    assert views.verified_customer(transcript.summary) == f"{account_id} (via slack link)"
    html = str(views.transcript_page(t=transcript, back="/conversations", csrf="x", email="lead@example.com",
                                     known_tags=[]))
    assert f"{account_id} (via slack link)" in html
    record = queries.export_record(page.rows[0], [])
    assert (record["customer_id"], record["verified_by"]) == (str(account_id), "slack link")
    anonymous = next(r for r in everyone.rows if r.summary["sender_id"] == "U0ANON")
    assert views.verified_customer(anonymous.summary) == "not verified"
