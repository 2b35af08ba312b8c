"""The REST channel on the wire: anonymous conversations are scoped to the caller's address."""

from __future__ import annotations

import uuid
from typing import List

import pytest

from actions import messages
from channels.rest import anonymous_sender_id
from tests.channels.conftest import ChannelAssistant, post_rest_from

pytestmark = pytest.mark.slow


def said(channels: ChannelAssistant, conversation: str) -> List[str]:
    return [event["text"] for event in channels.tracker_events(conversation)
            if event["event"] == "user"]


def test_nobody_at_another_address_can_write_into_an_anonymous_conversation(
    channels: ChannelAssistant
):
    sender = f"visitor-{uuid.uuid4().hex[:8]}"
    assert messages.CLARIFY_SUGGESTIONS in [
        reply.get("text") for reply in post_rest_from(channels.rasa_url, "127.0.0.1", sender, "switch it")]
    # Someone else who learnt the sender name answers the question the bot asked.
    intruder = post_rest_from(channels.rasa_url, "127.0.0.2", sender, "/deny")
    assert messages.CLARIFY_GAVE_UP not in [reply.get("text") for reply in intruder]

    visitor = anonymous_sender_id(sender, "127.0.0.1")
    assert said(channels, visitor) == ["switch it"]
    assert said(channels, anonymous_sender_id(sender, "127.0.0.2")) == ["/deny"]
    assert {reply["recipient_id"] for reply in intruder} == {anonymous_sender_id(sender, "127.0.0.2")}
    assert sender not in visitor  # the stored id (review console, exports) does not name the sender
