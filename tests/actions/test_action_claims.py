"""The identity claims Rasa passes to the action server are signed; altered or unsigned claims identify nobody."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any, Dict, List

import pytest
from rasa_sdk import Tracker

from actions.identity import chat_identity, verified_customer
from supportbot.action_claims import SIGNATURE_KEY, sign_action_call, verified_user_event
from tests.conftest import TEST_ACTION_CLAIMS_KEY

KEY = TEST_ACTION_CLAIMS_KEY.encode()
NOW = dt.datetime(2026, 12, 2, 7, 0, tzinfo=dt.timezone.utc)
SENDER = "rest-3f9a"


def user_event(metadata: Dict[str, Any], channel: str = "rest") -> Dict[str, Any]:
    return {"event": "user", "text": "close my account", "input_channel": channel, "message_id": "m7",
            "parse_data": {"intent": {"name": "close_account"}, "entities": []}, "metadata": metadata}


def identity(account_id: str = "42", email: str = "ann@example.com") -> Dict[str, Any]:
    return {"verified_identity": {"account_id": account_id, "email": email, "source": "portal_token",
                                  "expires_at": "2099-01-01T00:00:00+00:00", "channel": "rest"}}


def signed_events(metadata: Dict[str, Any], sender: str = SENDER, key: bytes = KEY,
                  now: dt.datetime = NOW, channel: str = "rest") -> List[Dict[str, Any]]:
    events = [{"event": "session_started"}, user_event(metadata, channel)]
    sign_action_call({"sender_id": sender, "tracker": {"sender_id": sender, "events": events}}, key, now)
    return events


def tracker(events: List[Dict[str, Any]], sender: str = SENDER) -> Tracker:
    return Tracker(sender, {}, {}, events, False, None, {}, "action_listen")


@pytest.fixture(autouse=True)
def action_server_key(monkeypatch):
    monkeypatch.setenv("ACTION_CLAIMS_KEY", TEST_ACTION_CLAIMS_KEY)


def test_claims_signed_by_rasa_identify_the_customer():
    customer = verified_customer(tracker(signed_events(identity())), now=NOW)
    assert (customer.account_id, customer.email) == (42, "ann@example.com")


@pytest.mark.parametrize("alter", [
    lambda m: m["verified_identity"].update(account_id="43"),
    lambda m: m["verified_identity"].update(email="mallory@evil.example"),
    lambda m: m.pop(SIGNATURE_KEY),
    lambda m: m[SIGNATURE_KEY].update(signed_at=m[SIGNATURE_KEY]["signed_at"] + 1),
    lambda m: m[SIGNATURE_KEY].update(hmac="0" * 64),
    lambda m: m.update(channel_user={"channel": "slack", "channel_user_id": "U1"}),
], ids=["other account", "other email", "unsigned", "other time", "forged mac", "added claim"])
def test_an_action_call_with_altered_claims_identifies_nobody(alter):
    events = signed_events(identity())
    alter(events[-1]["metadata"])
    assert verified_customer(tracker(events), now=NOW) is None


def test_signed_claims_do_not_travel_to_another_conversation_or_key_or_time():
    assert verified_customer(tracker(signed_events(identity()), sender="rest-other"), now=NOW) is None
    assert verified_customer(tracker(signed_events(identity(), key=b"another-key-" + b"x" * 32)),
                             now=NOW) is None
    stale = signed_events(identity(), now=NOW - dt.timedelta(minutes=6))
    assert verified_customer(tracker(stale), now=NOW) is None
    assert verified_customer(tracker(signed_events(identity(), now=NOW - dt.timedelta(minutes=4))),
                             now=NOW) is not None


def test_a_chat_platform_user_counts_only_when_signed():
    slack = {"channel_user": {"channel": "slack", "channel_user_id": "U123"}}
    events = signed_events(slack, channel="slack")
    sign_time = events[-1]["metadata"][SIGNATURE_KEY]["signed_at"]
    assert verified_user_event(SENDER, events, KEY, dt.datetime.fromtimestamp(sign_time, dt.timezone.utc))
    unsigned = [{"event": "session_started"}, user_event(slack, "slack")]
    assert chat_identity(tracker(unsigned)) is None
    widget = [{"event": "session_started"}, user_event({}, "socketio")]
    assert chat_identity(tracker(widget)) is None  # a socket.io sender id, but not from Rasa


def test_without_the_key_the_action_server_identifies_nobody(monkeypatch):
    events = signed_events(identity())
    monkeypatch.delenv("ACTION_CLAIMS_KEY")
    assert verified_customer(tracker(events), now=NOW) is None


def test_rasa_signs_the_call_it_sends_without_changing_the_stored_conversation(monkeypatch):
    from rasa.core.actions.action import RemoteAction
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker
    from rasa.utils.endpoints import EndpointConfig

    from supportbot import action_claims

    monkeypatch.setattr(action_claims, "_installed", False)
    monkeypatch.setattr(RemoteAction, "_action_call_format", RemoteAction._action_call_format)
    action_claims.install()
    stored = DialogueStateTracker.from_events(SENDER, [UserUttered(
        "close my account", {"name": "close_account"}, input_channel="rest", metadata=identity(),
        message_id="m7")])
    before = copy.deepcopy(stored.latest_message.metadata)

    body = RemoteAction("action_check_closure", EndpointConfig("http://127.0.0.1:1/webhook")) \
        ._action_call_format(stored, Domain.empty())

    assert SIGNATURE_KEY in body["tracker"]["events"][-1]["metadata"]
    assert verified_user_event(SENDER, body["tracker"]["events"], KEY) is not None
    assert stored.latest_message.metadata == before  # nothing stored changed
