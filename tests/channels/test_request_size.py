"""Oversized request bodies are refused before they are read or parsed, and the servers stay up."""

from __future__ import annotations

import json

import pytest
import requests

from tests.channels.conftest import ChannelAssistant

pytestmark = pytest.mark.slow

RASA_LIMIT = 64 * 1024
ACTION_LIMIT = 16 * 1024 * 1024


def padded_message(size: int) -> bytes:
    """A short, valid REST message padded (with a field the channel ignores) to ``size`` bytes."""
    body = {"sender": "size-test", "message": "which account types are there?", "padding": ""}
    body["padding"] = "x" * (size - len(json.dumps(body)))
    encoded = json.dumps(body).encode()
    assert len(encoded) == size
    return encoded


def test_rasa_refuses_a_body_over_64_kb_and_keeps_answering(channels: ChannelAssistant):
    url = f"{channels.rasa_url}/webhooks/rest/webhook"
    headers = {"Content-Type": "application/json"}
    refused = requests.post(url, data=padded_message(RASA_LIMIT + 1), headers=headers, timeout=30)
    assert refused.status_code == 413
    assert "Request body exceeds the size limit" in refused.text  # Sanic's, before any parsing

    answer = requests.post(url, data=padded_message(RASA_LIMIT), headers=headers, timeout=30)
    assert answer.status_code == 200 and "personal and business" in answer.text


def test_the_action_server_refuses_a_body_over_its_limit_and_keeps_answering(
    channels: ChannelAssistant
):
    url = f"{channels.running.action_url}/webhook"
    refused = requests.post(url, data=b"{" + b" " * ACTION_LIMIT + b"}",
                            headers={"Content-Type": "application/json"}, timeout=60)
    assert refused.status_code == 413
    assert requests.get(f"{channels.running.action_url}/health", timeout=10).status_code == 200
