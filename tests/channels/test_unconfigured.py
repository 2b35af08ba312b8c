"""``make run`` without Slack or Telegram secrets: the assistant runs, those webhooks say why not."""

from __future__ import annotations

import pytest
import requests

from tests.conftest import RunningAssistant

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("channel, variable", [("slack", "SLACK_SIGNING_SECRET"),
                                               ("telegram", "TELEGRAM_WEBHOOK_SECRET")])
def test_a_channel_without_its_secrets_answers_503_and_names_them(
    assistant: RunningAssistant, channel: str, variable: str
):
    response = requests.post(f"{assistant.rasa_url}/webhooks/{channel}/webhook",
                             json={"update_id": 1}, timeout=30)
    assert response.status_code == 503
    assert "channel not configured" in response.json()["error"]
    assert variable in response.json()["error"]
    assert assistant.say("test-unconfigured", "which account types do you have?")
