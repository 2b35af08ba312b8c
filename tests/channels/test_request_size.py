"""Oversized request bodies are refused before they are read or parsed, and the servers stay up."""

from __future__ import annotations

import json

import pytest
import requests

from tests.channels.conftest import ChannelAssistant

pytestmark = pytest.mark.slow

RASA_LIMIT = 64 * 1024
ACTION_LIMIT = 16 * 1024 * 1024


def rest_message(text: str) -> bytes:
    return json.dumps({"sender": "size-test", "message": text}).encode()


def test_rasa_refuses_a_body_over_64_kb_and_keeps_answering(channels: ChannelAssistant):
    url = f"{channels.rasa_url}/webhooks/rest/webhook"
    oversized = rest_message("a" * RASA_LIMIT)
    assert len(oversized) > RASA_LIMIT
    refused = requests.post(url, data=oversized, headers={"Content-Type": "application/json"},
                            timeout=30)
    assert refused.status_code == 413

    # a body just under the limit is read (and refused by the channel's own message limit)
    under = rest_message("a" * (RASA_LIMIT - 100))
    assert len(under) < RASA_LIMIT
    assert "2000 characters" in requests.post(url, data=under, timeout=30).json()["error"]
    answer = requests.post(url, json={"sender": "size-test", "message": "which account types are there?"},
                           timeout=30)
    assert answer.status_code == 200 and "personal and business" in answer.text


def test_the_action_server_refuses_a_body_over_its_limit_and_keeps_answering(
    channels: ChannelAssistant
):
    url = f"{channels.running.action_url}/webhook"
    refused = requests.post(url, data=b"{" + b" " * ACTION_LIMIT + b"}",
                            headers={"Content-Type": "application/json"}, timeout=60)
    assert refused.status_code == 413
    assert requests.get(f"{channels.running.action_url}/health", timeout=10).status_code == 200
