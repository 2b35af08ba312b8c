"""Telegram end to end: Bot API updates in (with the webhook secret), Bot API calls out."""

from __future__ import annotations

import itertools
import os
import random
import subprocess
import sys
import time
from typing import Any, Dict, List

import pytest

from actions import messages
from channels.telegram import PortalTelegramInput
from supportbot.runner import free_port
from supportbot.settings import PROJECT_ROOT
from tests.channels.conftest import (
    TELEGRAM_BOT_TOKEN,
    TELEGRAM_BOT_USERNAME,
    TELEGRAM_WEBHOOK_SECRET,
    TELEGRAM_WEBHOOK_URL,
    ChannelAssistant,
)
from tests.channels.fakes import Call
from tests.conftest import MODEL_PATH

pytestmark = pytest.mark.slow

_update_ids = itertools.count(random.randint(10**8, 9 * 10**8))


def new_chat_id() -> int:
    """A private chat (its id is the user's id) no other test uses."""
    return random.randint(10**9, 9 * 10**9)


def person(chat_id: int) -> Dict[str, Any]:
    return {"id": chat_id, "is_bot": False, "first_name": "Ana", "username": "ana_k",
            "language_code": "en"}


def text_update(chat_id: int, text: str, update_id: int = 0) -> Dict[str, Any]:
    """An Update with a text message in a private chat."""
    message: Dict[str, Any] = {
        "message_id": random.randint(1, 10**6), "from": person(chat_id),
        "chat": {"id": chat_id, "first_name": "Ana", "username": "ana_k", "type": "private"},
        "date": int(time.time()), "text": text,
    }
    if text.startswith("/"):
        message["entities"] = [{"offset": 0, "length": len(text.split()[0]), "type": "bot_command"}]
    return {"update_id": update_id or next(_update_ids), "message": message}


def button_press(chat_id: int, bot_message: Call, data: str) -> Dict[str, Any]:
    """The Update Telegram sends when the user presses the inline button with ``data``."""
    return {
        "update_id": next(_update_ids),
        "callback_query": {
            "id": str(random.randint(10**17, 10**18)),
            "from": person(chat_id),
            "message": {
                "message_id": random.randint(1, 10**6),
                "from": {"id": 123456, "is_bot": True, "first_name": "Support",
                         "username": TELEGRAM_BOT_USERNAME},
                "chat": {"id": chat_id, "first_name": "Ana", "type": "private"},
                "date": int(time.time()), "text": bot_message.params["text"],
                "reply_markup": bot_message.params["reply_markup"],
            },
            "chat_instance": str(random.randint(-10**18, -1)),
            "data": data,
        },
    }


def keyboard(call: Call) -> List[List[Dict[str, Any]]]:
    """The inline keyboard of a sent message, row by row."""
    return call.params["reply_markup"]["inline_keyboard"]


def test_the_webhook_is_registered_with_its_secret_at_start_up(channels: ChannelAssistant):
    [registration] = channels.telegram.wait_for(lambda call: call.method == "setWebhook")
    assert registration.params["url"] == TELEGRAM_WEBHOOK_URL
    assert registration.params["secret_token"] == TELEGRAM_WEBHOOK_SECRET
    assert registration.params["allowed_updates"] == ["message", "callback_query"]
    assert registration.headers["token"] == TELEGRAM_BOT_TOKEN


def test_a_private_message_is_answered(channels: ChannelAssistant):
    chat = new_chat_id()
    response = channels.telegram_update(text_update(chat, "what is two-factor authentication?"))
    assert response.status_code == 200
    [reply] = channels.telegram.wait_for(channels.telegram.messages_to(chat))
    assert "one-time password" in reply.params["text"]
    [user_event] = channels.stored_user_events(str(chat), 1)
    assert user_event["metadata"]["channel_user"] == {"channel": "telegram",
                                                      "channel_user_id": str(chat)}
    assert "verified_identity" not in user_event["metadata"]


@pytest.mark.parametrize("command", ["/start", f"/start@{TELEGRAM_BOT_USERNAME}"])
def test_start_greets_a_new_user(channels: ChannelAssistant, command: str):
    chat = new_chat_id()
    channels.telegram_update(text_update(chat, command))
    [reply] = channels.telegram.wait_for(channels.telegram.messages_to(chat))
    assert "support assistant" in reply.params["text"]


def test_buttons_are_an_inline_keyboard_and_a_press_comes_back(channels: ChannelAssistant):
    chat = new_chat_id()
    channels.telegram_update(text_update(chat, "switch it"))
    [suggestions] = channels.telegram.wait_for(channels.telegram.messages_to(chat))
    assert suggestions.params["text"] == messages.CLARIFY_SUGGESTIONS
    rows = keyboard(suggestions)
    assert all(len(row) == 1 for row in rows)
    assert rows[-1][0] == {"text": "Something else", "callback_data": "/deny"}

    press = button_press(chat, suggestions, "/deny")
    assert channels.telegram_update(press).status_code == 200
    channels.telegram.wait_for(lambda call: call.method == "answerCallbackQuery"
                               and call.params["callback_query_id"] == press["callback_query"]["id"])
    _, gave_up = channels.telegram.wait_for(channels.telegram.messages_to(chat), count=2)
    assert gave_up.params["text"] == messages.CLARIFY_GAVE_UP
    assert {"text": "Talk to support", "callback_data": "/human_handoff"} in \
        [button for row in keyboard(gave_up) for button in row]


@pytest.mark.parametrize("secret", [None, "not-the-secret"], ids=["missing header", "wrong secret"])
def test_updates_without_the_webhook_secret_are_refused_and_never_answered(
    channels: ChannelAssistant, secret: Any
):
    chat = new_chat_id()
    refused = channels.telegram_update(text_update(chat, "what is two-factor authentication?"),
                                       secret=secret)
    assert refused.status_code == 401

    channels.telegram_update(text_update(chat, "which account types do you have?"))
    [reply] = channels.telegram.wait_for(channels.telegram.messages_to(chat))
    assert len(channels.telegram.calls_where(channels.telegram.messages_to(chat))) == 1
    assert "personal and business" in reply.params["text"]


def test_a_redelivered_update_is_handled_once(channels: ChannelAssistant):
    chat = new_chat_id()
    update = text_update(chat, "which account types do you have?")
    assert channels.telegram_update(update).status_code == 200
    assert channels.telegram_update(update).status_code == 200

    channels.telegram_update(text_update(chat, "what is two-factor authentication?"))
    replies = channels.telegram.wait_for(channels.telegram.messages_to(chat), count=2)
    assert len(channels.telegram.calls_where(channels.telegram.messages_to(chat))) == 2
    assert "one-time password" in replies[1].params["text"]


def test_start_up_refuses_a_webhook_secret_under_32_characters(tmp_path):
    """Rasa itself, started as the runner starts it, stops with a message naming the setting."""
    env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT), RASA_TELEMETRY_ENABLED="false",
               ACTION_ENDPOINT_URL="http://127.0.0.1:1/webhook",
               TRACKER_DB_URL=f"sqlite:///{tmp_path / 'tracker.db'}",
               TELEGRAM_BOT_TOKEN=TELEGRAM_BOT_TOKEN, TELEGRAM_WEBHOOK_SECRET="short_secret-31" + "s" * 16)
    result = subprocess.run(
        [sys.executable, "-m", "supportbot.log_redaction", "rasa", "run", "--model", str(MODEL_PATH),
         "--interface", "127.0.0.1", "--port", str(free_port()),
         "--credentials", str(PROJECT_ROOT / "credentials.yml"),
         "--endpoints", str(PROJECT_ROOT / "endpoints.yml")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "TELEGRAM_WEBHOOK_SECRET is 31 characters long; it must be at least 32" in \
        result.stdout + result.stderr
    assert PortalTelegramInput(TELEGRAM_BOT_TOKEN, "s" * 32).webhook_secret == "s" * 32
