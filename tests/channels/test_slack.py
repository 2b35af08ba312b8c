"""Slack end to end: signed Events API and interactivity payloads in, Web API calls out."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Dict, List

import pytest

from accounts import channel_links
from accounts.db import make_session_factory
from accounts.deps import Deps
from accounts.results import Refused
from actions import messages
from tests.channels.conftest import (
    SLACK_BOT_TOKEN,
    SLACK_BOT_USER,
    SLACK_SIGNING_SECRET,
    ChannelAssistant,
    slack_signature_headers,
    unique,
)
from tests.channels.fakes import Call
from tests.conftest import wait_for

pytestmark = pytest.mark.slow

TEAM = "TPORTAL"


def message_event(text: str, user: str, channel: str, event_id: str = "") -> Dict[str, Any]:
    """An ``event_callback`` for a direct message, as the Events API delivers it."""
    ts = f"{time.time():.6f}"
    return {
        "token": "legacy-verification-token",
        "team_id": TEAM,
        "api_app_id": "APORTAL",
        "event": {
            "client_msg_id": str(uuid.uuid4()), "type": "message", "text": text,
            "user": user, "ts": ts, "team": TEAM, "channel": channel, "event_ts": ts,
            "channel_type": "im",
            "blocks": [{"type": "rich_text", "block_id": "b1", "elements": [
                {"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}]}],
        },
        "type": "event_callback",
        "event_id": event_id or unique("Ev"),
        "event_time": int(time.time()),
        "authorizations": [{"enterprise_id": None, "team_id": TEAM, "user_id": SLACK_BOT_USER,
                            "is_bot": True, "is_enterprise_install": False}],
        "is_ext_shared_channel": False,
        "event_context": "4-eyJldCI6Im1lc3NhZ2UifQ",
    }


def buttons_of(call: Call) -> Dict[str, Dict[str, Any]]:
    """The Block Kit buttons of a posted message, by their value."""
    actions = [block for block in call.params.get("blocks", []) if block["type"] == "actions"]
    return {element["value"]: element for block in actions for element in block["elements"]
            if element["type"] == "button" and "value" in element}


def button_click(user: str, channel: str, message: Call, value: str) -> Dict[str, Any]:
    """The ``block_actions`` payload Slack sends when ``user`` clicks the button with ``value``."""
    button = buttons_of(message)[value]
    message_ts = f"{time.time():.6f}"
    return {
        "type": "block_actions",
        "user": {"id": user, "username": "ana", "name": "ana", "team_id": TEAM},
        "api_app_id": "APORTAL",
        "token": "legacy-verification-token",
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel,
                      "is_ephemeral": False},
        "trigger_id": f"{int(time.time())}.{uuid.uuid4().int % 10**12}.{uuid.uuid4().hex}",
        "team": {"id": TEAM, "domain": "portal"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel, "name": "directmessage"},
        "message": {"type": "message", "subtype": "bot_message", "text": message.params["text"],
                    "ts": message_ts, "bot_id": "BPORTAL", "blocks": message.params["blocks"]},
        "state": {"values": {}},
        "response_url": f"https://hooks.slack.com/actions/{TEAM}/1/{uuid.uuid4().hex}",
        "actions": [{"action_id": button["action_id"], "block_id": "choices",
                     "text": button["text"], "value": value, "type": "button",
                     "action_ts": f"{time.time():.6f}"}],
    }


def texts(calls: List[Call]) -> List[str]:
    return [call.params.get("text", "") for call in calls]


def test_a_direct_message_is_answered_through_the_configured_web_api(channels: ChannelAssistant):
    user, dm = unique("U"), unique("D")
    response = channels.slack_event(message_event("what is two-factor authentication?", user, dm))
    assert response.status_code == 200

    [reply] = channels.slack.wait_for(channels.slack.messages_to(dm))
    assert "one-time password" in reply.params["text"]
    assert reply.headers["Authorization"] == f"Bearer {SLACK_BOT_TOKEN}"
    [user_event] = channels.stored_user_events(user, 1)
    assert user_event["metadata"]["channel_user"] == {"channel": "slack",
                                                      "channel_user_id": f"{TEAM}:{user}"}
    assert "verified_identity" not in user_event["metadata"]


def test_buttons_are_block_kit_buttons_and_a_click_comes_back(channels: ChannelAssistant):
    user, dm = unique("U"), unique("D")
    channels.slack_event(message_event("switch it", user, dm))
    [suggestions] = channels.slack.wait_for(channels.slack.messages_to(dm))
    assert suggestions.params["text"] == messages.CLARIFY_SUGGESTIONS
    section, actions = suggestions.params["blocks"]
    assert section["text"]["text"] == messages.CLARIFY_SUGGESTIONS
    assert {element["type"] for element in actions["elements"]} == {"button"}
    assert buttons_of(suggestions)["/deny"]["text"]["text"] == "Something else"

    response = channels.slack_click(button_click(user, dm, suggestions, "/deny"))
    assert response.status_code == 200
    _, gave_up = channels.slack.wait_for(channels.slack.messages_to(dm), count=2)
    assert gave_up.params["text"] == messages.CLARIFY_GAVE_UP
    assert "/human_handoff" in buttons_of(gave_up)


@pytest.mark.parametrize("forgery", ["wrong secret", "stale timestamp", "changed body"])
def test_requests_not_signed_by_slack_are_refused_and_never_answered(
    channels: ChannelAssistant, forgery: str
):
    user, dm = unique("U"), unique("D")
    event = message_event("what is two-factor authentication?", user, dm)
    if forgery == "wrong secret":
        response = channels.slack_event(event, secret="not-" + SLACK_SIGNING_SECRET)
    elif forgery == "stale timestamp":
        response = channels.slack_event(event, timestamp=int(time.time()) - 6 * 60)
    else:
        signed = json.dumps(event).encode()
        event["event"]["text"] = "which account types do you have?"
        response = channels.post_slack(json.dumps(event).encode(), "application/json",
                                       headers=slack_signature_headers(signed, SLACK_SIGNING_SECRET))
    assert response.status_code == 401

    channels.slack_event(message_event("which account types do you have?", user, dm))
    replies = channels.slack.wait_for(channels.slack.messages_to(dm))
    assert len(channels.slack.calls_where(channels.slack.messages_to(dm))) == 1
    assert "personal and business" in replies[0].params["text"]


def test_a_retried_event_is_answered_only_once(channels: ChannelAssistant):
    user, dm = unique("U"), unique("D")
    event = message_event("which account types do you have?", user, dm)
    assert channels.slack_event(event).status_code == 200
    channels.slack.wait_for(channels.slack.messages_to(dm))

    for number, reason in ((1, "http_timeout"), (2, "http_error")):
        retry = channels.slack_event(event, headers={"X-Slack-Retry-Num": str(number),
                                                     "X-Slack-Retry-Reason": reason})
        assert retry.status_code == 200
        assert retry.headers.get("X-Slack-No-Retry") == "1"

    channels.slack_event(message_event("what is two-factor authentication?", user, dm))
    replies = texts(channels.slack.wait_for(channels.slack.messages_to(dm), count=2))
    assert len(channels.slack.calls_where(channels.slack.messages_to(dm))) == 2
    assert "personal and business" in replies[0] and "one-time password" in replies[1]
    assert len(channels.stored_user_events(user, 2)) == 2


def test_a_retry_of_an_event_that_never_arrived_is_answered(channels: ChannelAssistant):
    user, dm = unique("U"), unique("D")
    event = message_event("what is two-factor authentication?", user, dm)
    response = channels.slack_event(event, headers={"X-Slack-Retry-Num": "1",
                                                    "X-Slack-Retry-Reason": "http_error"})
    assert response.status_code == 200
    [reply] = channels.slack.wait_for(channels.slack.messages_to(dm))
    assert "one-time password" in reply.params["text"]


def test_slack_can_verify_the_request_url(channels: ChannelAssistant):
    check = {"token": "legacy-verification-token", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
             "type": "url_verification"}
    response = channels.slack_event(check)
    assert response.status_code == 200
    assert response.json() == {"challenge": check["challenge"]}


def test_an_overlong_message_gets_a_polite_refusal(channels: ChannelAssistant):
    user, dm = unique("U"), unique("D")
    channels.slack_event(message_event("help " * 500, user, dm))
    [reply] = channels.slack.wait_for(channels.slack.messages_to(dm))
    assert "too long" in reply.params["text"] and "2000 characters" in reply.params["text"]
    assert not [e for e in channels.tracker_events(user) if e["event"] == "user"]


def channel_mention(text: str, user: str, channel: str, team: str = TEAM) -> Dict[str, Any]:
    """An ``app_mention`` in a shared channel (``<@bot> text``), as the Events API delivers it."""
    event = message_event(f"<@{SLACK_BOT_USER}> {text}", user, channel)
    event["team_id"] = team
    event["event"].update(type="app_mention", team=team)
    del event["event"]["channel_type"]
    return event


def link_slack_user(channels: ChannelAssistant, chat_user_id: str, email: str) -> None:
    """Link a Slack identity to ``email``'s account through the domain, as the link form does."""
    accounts_db = f"sqlite:///{channels.running.log_path.parent / 'accounts.db'}"
    deps = Deps(session_factory=make_session_factory(accounts_db), codes=lambda: "246813")
    key = uuid.uuid4().hex
    channel_links.request_link(deps, channel="slack", channel_user_id=chat_user_id, email=email,
                               idempotency_key=f"request-{key}")
    linked = channel_links.confirm_link(deps, channel="slack", channel_user_id=chat_user_id,
                                        code="246813", idempotency_key=f"confirm-{key}")
    assert not isinstance(linked, Refused), linked


def test_a_linked_slack_user_gets_account_details_only_in_a_direct_message(
    channels: ChannelAssistant
):
    user, dm, shared = unique("U"), unique("D"), unique("C")
    link_slack_user(channels, f"{TEAM}:{user}", "clean@demo.example")

    channels.slack_event(message_event("i'd like to close my account pls", user, dm))
    checked = channels.slack.wait_for(channels.slack.messages_to(dm))[0]
    assert "I've checked your account" in checked.params["text"]

    channels.slack_event(channel_mention("close my account", user, shared))
    replies = texts(channels.slack.wait_for(channels.slack.messages_to(shared)))
    assert replies == [messages.DIRECT_MESSAGE_ONLY]
    # (the reply is posted during the turn; the tracker is stored when it ends)
    said = lambda: [e for e in channels.tracker_events(user) if e["event"] == "user"]  # noqa: E731
    assert wait_for(lambda: len(said()) == 2)
    assert said()[-1]["metadata"]["channel_user"] == {
        "channel": "slack", "channel_user_id": f"{TEAM}:{user}", "shared": True}


def test_a_slack_link_holds_for_its_workspace_only(channels: ChannelAssistant):
    user, dm = unique("U"), unique("D")
    link_slack_user(channels, f"TOTHERWORKSPACE:{user}", "clean@demo.example")

    # The same user id in our workspace is somebody else: anonymous, the FAQ answer.
    channels.slack_event(message_event("close my account", user, dm))
    [reply] = channels.slack.wait_for(channels.slack.messages_to(dm))
    assert "I've checked your account" not in reply.params["text"]
    said = lambda: [e for e in channels.tracker_events(user) if e["event"] == "user"]  # noqa: E731
    assert wait_for(lambda: len(said()) == 1)
    assert said()[0]["metadata"]["channel_user"]["channel_user_id"] == f"{TEAM}:{user}"
