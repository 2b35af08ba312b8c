"""Conversations that move between Rasa instances keep their state and every event.

Messages go straight to each instance's own port, alternating, so the only
thing the instances share is the PostgreSQL tracker store and the Redis lock
store.
"""

from __future__ import annotations

import json
import threading
import uuid
from types import SimpleNamespace
from typing import Dict, List, Tuple

import pytest
import requests

from channels.rest import anonymous_sender_id, verified_sender_id
from supportbot.cluster import Cluster
from tests.conftest import RunningAssistant
from tests.operations.conftest import Customer, Store
from tests.scale_out.conftest import stored_events
from tests.secret_scan import contains_secret

pytestmark = pytest.mark.slow


def turns(events: List[dict]) -> List[Tuple[str, List[str]]]:
    """(customer text, [assistant texts]) per stored turn, in order."""
    result: List[Tuple[str, List[str]]] = []
    for row in events:
        data = json.loads(row["data"])
        if row["type_name"] == "user":
            result.append((data.get("text"), []))
        elif row["type_name"] == "bot" and result:
            result[-1][1].append(data.get("text"))
    return result


def assert_stored_once_in_order(events: List[dict]) -> None:
    """No event stored twice; storage order is time order; every turn ends listening."""
    keys = [(row["type_name"], row["timestamp"], row["data"]) for row in events]
    assert len(keys) == len(set(keys)), "an event was stored twice"
    stamps = [row["timestamp"] for row in events]
    assert stamps == sorted(stamps), "events stored out of order"
    names = [(row["type_name"], json.loads(row["data"]).get("name")) for row in events]
    user_at = [i for i, (kind, _) in enumerate(names) if kind == "user"]
    for start, end in zip(user_at, user_at[1:] + [len(names)]):
        assert ("action", "action_listen") in names[start:end], \
            "a turn was interleaved with another one (no action_listen between two messages)"


def reply_texts(replies: List[Dict]) -> List[str]:
    return [reply["text"] for reply in replies if "text" in reply]


def test_a_form_alternating_between_two_instances_completes_with_every_event_stored_once(
    cluster: Cluster,
):
    store = Store(cluster.env["ACCOUNTS_DB_URL"])
    account_id, email = store.create_customer(currency="EUR")
    instances = [RunningAssistant(rasa_url=url, web_url="", action_url="", log_path=cluster.run_dir)
                 for url in cluster.rasa_urls]
    customer = Customer(instances[0], account_id, email, f"cl-{uuid.uuid4().hex}")
    sent: List[Tuple[str, List[str]]] = []

    def say_on(index: int, message: str) -> str:
        customer.assistant = instances[index]
        replies = customer.say(message)
        sent.append((message, reply_texts(replies)))
        return "\n".join(reply_texts(replies))

    assert "currency" in say_on(0, "I want to change my account currency").lower()
    say_on(1, "USD")
    assert "code" in say_on(0, "yes").lower()
    code = store.latest_code(email)
    assert "now USD" in say_on(1, code)
    assert store.account(account_id).currency == "USD"

    sender = verified_sender_id("rest", SimpleNamespace(account_id=str(account_id), email=email))
    events = stored_events(cluster, sender)
    assert_stored_once_in_order(events)
    stored = turns(events)
    # the step-up code is a secret: stored as [redacted], never as itself
    expected = [(text if text != code else "[redacted]", replies) for text, replies in sent]
    assert stored == expected
    assert not contains_secret(json.dumps([row["data"] for row in events]), code)


def test_simultaneous_messages_of_one_conversation_on_two_instances_are_serialised(
    cluster: Cluster,
):
    """The Redis lock store: two instances never handle one conversation at once."""
    questions = ["how do I close my account?", "what is two-factor authentication?"]
    senders = [f"lock-{uuid.uuid4().hex}" for _ in range(6)]
    answers: Dict[Tuple[str, int], List[str]] = {}
    barrier = threading.Barrier(2 * len(senders))

    def send(sender: str, index: int) -> None:
        barrier.wait()
        response = requests.post(f"{cluster.rasa_urls[index]}/webhooks/rest/webhook",
                                 json={"sender": sender, "message": questions[index]}, timeout=60)
        response.raise_for_status()
        answers[(sender, index)] = reply_texts(response.json())

    threads = [threading.Thread(target=send, args=(s, i)) for s in senders for i in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(answers) == 2 * len(senders)
    for sender in senders:
        events = stored_events(cluster, anonymous_sender_id(sender, "127.0.0.1"))
        assert_stored_once_in_order(events)
        stored = turns(events)
        assert sorted(text for text, _ in stored) == sorted(questions)
        for text, bot_texts in stored:
            assert bot_texts == answers[(sender, questions.index(text))]
