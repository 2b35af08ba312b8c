"""Linking, listing and unlinking chats through the actions, with real Trackers and a real account store."""

from __future__ import annotations

import asyncio
from typing import Any, Dict, Optional

import pyotp
import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import SessionStarted, UserUttered
from rasa_sdk.executor import CollectingDispatcher

from accounts import channel_links
from accounts.db import make_session_factory, upgrade
from accounts.deps import Actor, Deps
from actions.account_store import account_deps, use_deps
from actions.linking import ActionFinishLink, ActionListLinks, ActionUnlinkChannel, ValidateLinkForm
from supportbot.action_claims import sign_action_call
from tests.conftest import TEST_ACTION_CLAIMS_KEY
from tests.operations.conftest import Store

TELEGRAM = ("telegram", "777001")


@pytest.fixture
def store(tmp_path, monkeypatch) -> Store:
    url = f"sqlite:///{tmp_path / 'accounts.db'}"
    upgrade(url)
    monkeypatch.setenv("ACTION_CLAIMS_KEY", TEST_ACTION_CLAIMS_KEY)  # the action server's key
    use_deps(Deps(session_factory=make_session_factory(url)))
    yield Store(url)
    use_deps(None)


def chat(text: str, identity=TELEGRAM, slots: Optional[Dict[str, Any]] = None) -> Tracker:
    """A message from a Telegram (or Slack) user the channel vouched for."""
    parse = {"intent": {"name": "list_links", "confidence": 0.99}, "entities": [], "text": text}
    user = UserUttered(text, parse_data=parse, input_channel=identity[0])
    user.update(metadata={"channel_user": {"channel": identity[0], "channel_user_id": identity[1]}},
                message_id=f"m-{text}")
    events = [SessionStarted(), user]
    sender = "tg-" + identity[1]
    sign_action_call({"tracker": {"sender_id": sender, "events": events}},
                     TEST_ACTION_CLAIMS_KEY.encode())  # as Rasa sends it to the action server
    return Tracker(sender, slots or {}, parse, events, False, None, {"name": "link_form"}, "action_listen")


def run(action, tracker: Tracker) -> tuple:
    dispatcher = CollectingDispatcher()
    events = asyncio.run(action.run(dispatcher, tracker, {}))
    return events, " ".join(m.get("text") or "" for m in dispatcher.messages)


def validate(slot: str, value: str, tracker: Tracker) -> tuple:
    dispatcher = CollectingDispatcher()
    method = getattr(ValidateLinkForm(), f"validate_{slot}")
    result = asyncio.run(method(value, dispatcher, tracker, {}))
    return result, " ".join(m.get("text") or "" for m in dispatcher.messages)


def link(store: Store, email: str, identity=TELEGRAM) -> None:
    channel_links.request_link(account_deps(), channel=identity[0], channel_user_id=identity[1], email=email,
                               idempotency_key=f"req-{identity[1]}")
    assert channel_links.confirm_link(account_deps(), channel=identity[0], channel_user_id=identity[1],
                                      code=store.latest_code(email), idempotency_key=f"conf-{identity[1]}").ok


def test_a_tfa_owner_links_a_chat_with_the_emailed_code_and_then_the_apps_code(store):
    account_id, email = store.create_customer()
    secret = store.enable_tfa(account_id, email)
    channel_links.request_link(account_deps(), channel="telegram", channel_user_id=TELEGRAM[1], email=email,
                               idempotency_key="req")

    result, _ = validate("link_code", store.latest_code(email), chat("code"))
    assert result == {"link_code": None, "link_stage": "app_code"}
    assert channel_links.find_linked_actor(account_deps(), *TELEGRAM) is None

    result, text = validate("link_app_code", "verified", chat("verified"))
    assert result == {"link_app_code": None} and "isn't right" in text

    result, _ = validate("link_app_code", pyotp.TOTP(secret).now(), chat("app"))
    assert result == {"link_app_code": None, "link_stage": "linked", "linked_as": email}
    assert channel_links.find_linked_actor(account_deps(), *TELEGRAM) == Actor(account_id, email)
    _, text = run(ActionFinishLink(), chat("done", slots={"link_stage": "linked", "linked_as": email}))
    assert f"verified as {email}" in text and "90 days" in text


def test_listing_and_unlinking_telegram_from_slack(store):
    account_id, email = store.create_customer()
    slack = ("slack", "T1:U9")
    link(store, email, TELEGRAM)
    link(store, email, slack)

    _, listed = run(ActionListLinks(), chat("which chats are linked?", slack))
    assert "Telegram" in listed and "Slack" in listed and email in listed

    events, text = run(ActionUnlinkChannel(), chat("pls unlink telegram", slack))
    assert "removed 1 Telegram link" in text
    assert channel_links.find_linked_actor(account_deps(), *TELEGRAM) is None
    assert channel_links.find_linked_actor(account_deps(), *slack) == Actor(account_id, email)


def test_strangers_cannot_list_or_unlink(store):
    account_id, email = store.create_customer()
    link(store, email, TELEGRAM)
    stranger = ("telegram", "999")
    _, listed = run(ActionListLinks(), chat("which chats are linked?", stranger))
    _, unlinked = run(ActionUnlinkChannel(), chat("unlink telegram", stranger))
    assert "once I know it's you" in listed and "once I know it's you" in unlinked
    assert channel_links.find_linked_actor(account_deps(), *TELEGRAM) == Actor(account_id, email)
