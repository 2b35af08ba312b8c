"""Channel tests: one assistant with every channel configured, fake Slack and Telegram APIs.

The assistant is started once for all channel tests, by the runner as
``make run`` does, with the Slack and Telegram channels pointed at fake API
servers on 127.0.0.1 and the widget's demo sign-in on. Its HTTP API is on
(loopback only) so tests can read what reached a conversation's tracker.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional
from urllib.parse import urlencode, urlsplit

import pytest
import requests

from supportbot.portal_token import PortalTokenVerifier, development_secret
from tests.channels.fakes import FakeSlackApi, FakeTelegramApi
from tests.conftest import (
    RunningAssistant,
    assistant_env,
    start_assistant,
    stop_process,
    wait_for,
)

SLACK_BOT_TOKEN = "xoxb-test-bot-token"
SLACK_SIGNING_SECRET = "test-slack-signing-secret"
SLACK_BOT_USER = "UPORTALBOT"
TELEGRAM_BOT_TOKEN = "123456:TEST-telegram-bot-token"
TELEGRAM_WEBHOOK_SECRET = "test_webhook_secret-42_" + "t" * 16
TELEGRAM_BOT_USERNAME = "portal_support_bot"
TELEGRAM_WEBHOOK_URL = "https://bot.portal.example/webhooks/telegram/webhook"
RASA_API_TOKEN = "test-api-token-" + "y" * 16


@dataclass
class ChannelAssistant:
    """The running assistant with every channel on, and the fakes it talks to."""

    running: RunningAssistant
    slack: FakeSlackApi
    telegram: FakeTelegramApi

    @property
    def rasa_url(self) -> str:
        return self.running.rasa_url

    @property
    def web_url(self) -> str:
        return self.running.web_url

    def log_text(self) -> str:
        """Everything the assistant's processes logged so far."""
        return self.running.log_path.read_text(errors="replace")

    def tracker_events(self, sender_id: str) -> List[Dict[str, Any]]:
        """The events of a conversation, from Rasa's HTTP API."""
        response = requests.get(f"{self.rasa_url}/conversations/{sender_id}/tracker",
                                params={"token": RASA_API_TOKEN}, timeout=30)
        response.raise_for_status()
        return response.json()["events"]

    def stored_user_events(self, sender_id: str, count: int) -> List[Dict[str, Any]]:
        """The conversation's user events once at least ``count`` are stored.

        Slack and Telegram get the reply during the turn, before Rasa saves it:
        reading the tracker right after the reply arrived would race the save.
        """
        found: List[Dict[str, Any]] = []

        def stored() -> bool:
            found[:] = [event for event in self.tracker_events(sender_id) if event["event"] == "user"]
            return len(found) >= count
        wait_for(stored)
        return found

    # --- Slack ----------------------------------------------------------------

    def post_slack(self, body: bytes, content_type: str, secret: str = SLACK_SIGNING_SECRET,
                   timestamp: Optional[int] = None,
                   headers: Optional[Dict[str, str]] = None) -> requests.Response:
        """POST ``body`` to the Slack webhook, signed as Slack signs (v0 HMAC-SHA256)."""
        all_headers = dict(slack_signature_headers(body, secret, timestamp),
                           **{"Content-Type": content_type}, **(headers or {}))
        return requests.post(f"{self.rasa_url}/webhooks/slack/webhook", data=body,
                             headers=all_headers, timeout=30)

    def slack_event(self, event: Dict[str, Any], **kwargs: Any) -> requests.Response:
        """Deliver an Events API ``event_callback`` wrapping ``event``."""
        return self.post_slack(json.dumps(event).encode(), "application/json", **kwargs)

    def slack_click(self, payload: Dict[str, Any], **kwargs: Any) -> requests.Response:
        """Deliver an interactivity payload (form-encoded ``payload=<json>``)."""
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return self.post_slack(body, "application/x-www-form-urlencoded", **kwargs)

    # --- Telegram -------------------------------------------------------------

    def telegram_update(self, update: Dict[str, Any],
                        secret: Optional[str] = TELEGRAM_WEBHOOK_SECRET) -> requests.Response:
        """POST an Update to the Telegram webhook, with the secret header unless ``secret`` is None."""
        headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {}
        return requests.post(f"{self.rasa_url}/webhooks/telegram/webhook", json=update,
                             headers=headers, timeout=30)


def slack_signature_headers(body: bytes, secret: str,
                            timestamp: Optional[int] = None) -> Dict[str, str]:
    """``X-Slack-Request-Timestamp`` and ``X-Slack-Signature`` for ``body``."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    base = f"v0:{timestamp}:".encode() + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(timestamp), "X-Slack-Signature": f"v0={digest}"}


def post_rest_from(rasa_url: str, address: str, sender: str, text: str) -> List[Dict[str, Any]]:
    """POST one anonymous message to the REST channel from the loopback ``address`` (127.x.y.z)."""
    url = urlsplit(rasa_url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30,
                                            source_address=(address, 0))
    try:
        connection.request("POST", "/webhooks/rest/webhook",
                           body=json.dumps({"sender": sender, "message": text}),
                           headers={"Content-Type": "application/json"})
        reply = connection.getresponse()
        assert reply.status == 200, reply.read()
        return json.loads(reply.read())
    finally:
        connection.close()


def unique(prefix: str) -> str:
    """A fresh id (Slack user, channel, event...) so tests never share a conversation."""
    return f"{prefix}{uuid.uuid4().hex[:10].upper()}"


@pytest.fixture(scope="session")
def fake_slack() -> Iterator[FakeSlackApi]:
    """The fake Slack Web API."""
    server = FakeSlackApi().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fake_telegram() -> Iterator[FakeTelegramApi]:
    """The fake Telegram Bot API."""
    server = FakeTelegramApi().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def channels_portal_secret() -> str:
    """The development portal secret of ``var/`` (as ``make run`` uses it): demo sign-in needs it."""
    secret = development_secret(create=True)
    assert secret
    return secret


@pytest.fixture(scope="session")
def channels(model_path: Path, tmp_path_factory, fake_slack: FakeSlackApi,
             fake_telegram: FakeTelegramApi, channels_portal_secret: str) -> Iterator[ChannelAssistant]:
    """The assistant with the widget, Slack and Telegram channels all configured, demo sign-in on."""
    tmp_dir = tmp_path_factory.mktemp("channels")
    env = dict(
        assistant_env(tmp_dir),
        PORTAL_TOKEN_SECRET=channels_portal_secret,
        SLACK_BOT_TOKEN=SLACK_BOT_TOKEN,
        SLACK_SIGNING_SECRET=SLACK_SIGNING_SECRET,
        SLACK_API_BASE_URL=fake_slack.api_base_url,
        TELEGRAM_BOT_TOKEN=TELEGRAM_BOT_TOKEN,
        TELEGRAM_WEBHOOK_SECRET=TELEGRAM_WEBHOOK_SECRET,
        TELEGRAM_BOT_USERNAME=TELEGRAM_BOT_USERNAME,
        TELEGRAM_API_BASE_URL=fake_telegram.url,
        TELEGRAM_WEBHOOK_URL=TELEGRAM_WEBHOOK_URL,
        WIDGET_DEMO_LOGIN="1",
        RASA_ENABLE_API="1",
        RASA_API_TOKEN=RASA_API_TOKEN,
    )
    process, running = start_assistant(tmp_dir, env)
    yield ChannelAssistant(running, fake_slack, fake_telegram)
    stop_process(process)


@pytest.fixture(scope="session")
def portal(channels_portal_secret: str) -> PortalTokenVerifier:
    """The portal's token issuer, with the channel test assistant's secret."""
    return PortalTokenVerifier(channels_portal_secret)
