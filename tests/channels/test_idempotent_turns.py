"""A message with an id runs once: a retry gets the first run's replies (channels/idempotency.py)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from typing import Any, Dict, List

import requests
from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from channels.idempotency import IdempotentTurns, LocalClaims, stored_replies
from channels.rest import anonymous_sender_id
from tests.conftest import RunningAssistant


def conversation(sender: str) -> List[Any]:
    return [
        ActionExecuted("action_listen"),
        UserUttered("how do i close my acount", message_id="m-1"),
        BotUttered("Closing works like this.", data={"buttons": [{"title": "Yes", "payload": "/affirm"}]}),
        BotUttered("Anything else?"),
        ActionExecuted("action_listen"),
        UserUttered("thx", message_id="m-2"),
        ActionExecuted("action_listen"),
    ]


def test_the_stored_replies_are_the_bot_messages_of_that_turn_only():
    events = conversation("c")
    assert stored_replies(events, "c", "m-1") == [
        {"recipient_id": "c", "text": "Closing works like this.",
         "buttons": [{"title": "Yes", "payload": "/affirm"}]},
        {"recipient_id": "c", "text": "Anything else?"},
    ]
    assert stored_replies(events, "c", "m-2") == []  # completed, without a reply
    assert stored_replies(events, "c", "m-3") is None  # never handled


class Conversations:
    """Trackers in memory, updated by the turn as Rasa's tracker store would be."""

    def __init__(self) -> None:
        self.trackers: Dict[str, DialogueStateTracker] = {}
        self.runs = 0

    async def lookup(self, sender_id: str) -> DialogueStateTracker:
        return self.trackers.get(sender_id)

    def turn(self, sender_id: str, message_id: str, text: str):
        async def run() -> List[Dict[str, Any]]:
            self.runs += 1
            await asyncio.sleep(0.05)  # the turn takes a while: a retry arrives meanwhile
            tracker = self.trackers.setdefault(sender_id, DialogueStateTracker(sender_id, []))
            tracker.update(UserUttered(text, message_id=message_id))
            tracker.update(BotUttered(f"answer to {text}"))
            tracker.update(ActionExecuted("action_listen"))
            return [{"recipient_id": sender_id, "text": f"answer to {text}"}]
        return run


def test_attempts_of_one_message_at_once_and_later_run_it_once_and_get_the_same_replies():
    turns, store = IdempotentTurns(LocalClaims()), Conversations()

    async def attempt() -> List[Dict[str, Any]]:
        return await turns.run("c", "m-1", store.lookup, store.turn("c", "m-1", "close my account"))

    async def run() -> List[List[Dict[str, Any]]]:
        at_once = await asyncio.gather(attempt(), attempt(), attempt())
        return [*at_once, await attempt()]

    replies = asyncio.run(run())
    assert store.runs == 1
    assert replies == [[{"recipient_id": "c", "text": "answer to close my account"}]] * 4
    other = asyncio.run(turns.run("c", "m-2", store.lookup, store.turn("c", "m-2", "and the currency?")))
    assert store.runs == 2 and other[0]["text"] == "answer to and the currency?"


def test_a_rest_message_sent_twice_with_its_id_is_answered_twice_and_stored_once(assistant: RunningAssistant):
    sender, message_id = f"idem-{uuid.uuid4().hex}", uuid.uuid4().hex
    url = f"{assistant.rasa_url}/webhooks/rest/webhook"
    body = {"sender": sender, "message": "how do i close my acount?", "message_id": message_id}

    first = requests.post(url, json=body, timeout=60)
    again = requests.post(url, json=body, timeout=60)
    other = requests.post(url, json=dict(body, message_id=uuid.uuid4().hex), timeout=60)

    assert first.status_code == again.status_code == other.status_code == 200
    assert first.json() and again.json() == first.json()
    assert other.json() == first.json()  # the same question under a new id is a new turn
    with sqlite3.connect(assistant.log_path.parent / "tracker.db") as db:
        texts = [json.loads(data)["text"] for (data,) in db.execute(
            "SELECT data FROM events WHERE sender_id = ? AND type_name = 'user' ORDER BY id",
            (anonymous_sender_id(sender, "127.0.0.1"),))]
    assert texts == ["how do i close my acount?"] * 2  # the retry is not stored again
