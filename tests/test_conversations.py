"""Conversations over the REST channel and the chat page, against the running assistant."""

from __future__ import annotations

import uuid
from typing import Dict, List

import pytest
import requests
import yaml

from supportbot.settings import PROJECT_ROOT
from tests.conftest import RunningAssistant

pytestmark = pytest.mark.slow


def new_sender() -> str:
    return f"test-{uuid.uuid4().hex}"


def texts(replies: List[Dict]) -> str:
    return "\n".join(reply.get("text", "") for reply in replies)


def payloads(replies: List[Dict]) -> List[str]:
    return [button["payload"] for reply in replies for button in reply.get("buttons", [])]


@pytest.mark.parametrize(
    "message, expected",
    [
        ("can I add a second user to my account?", ["Profile → User Management", "Invite User", "role"]),
        ("how do I remove my colleague from the account", ["disable", "Profile → User Management"]),
        ("which account types do you have", ["personal", "business", "wire transfer"]),
        ("how do i change my account type to business", ["Profile → Account", "Edit", "grayed out"]),
        ("how can I change the currency of my account", ["no payments", "negative"]),
        ("I want to close my account", ["cancel all your services", "unpaid bills"]),
        ("how do I create an account", ["Customer account", "Join", "confirm"]),
        ("I forgot my password", ["Forgot password?", "email address"]),
        ("what is two-factor authentication?", ["one-time password", "phone"]),
        ("I lost the app that generates my one time passwords", ["recovery codes", "primary email"]),
    ],
    ids=["add_user", "remove_user", "account_types", "change_account_type", "change_currency",
         "close_account", "create_account", "forgot_password", "what_is_tfa", "lost_tfa_app"],
)
def test_every_faq_topic_is_answered(assistant: RunningAssistant, message: str, expected: List[str]):
    answer = texts(assistant.say(new_sender(), message))
    for phrase in expected:
        assert phrase in answer, answer


def test_closing_offers_a_person_and_yes_gives_the_contact(assistant: RunningAssistant):
    sender = new_sender()
    first = assistant.say(sender, "how do I terminate my account?")
    assert "/affirm" in payloads(first)
    assert "support team" in texts(assistant.say(sender, "yes please"))


def response_variants(name: str) -> List[str]:
    domain = yaml.safe_load((PROJECT_ROOT / "domain.yml").read_text())
    return [variant["text"].strip() for variant in domain["responses"][name]]


def test_greeting_thanks_goodbye_and_bot_challenge(assistant: RunningAssistant):
    sender = new_sender()
    assert "support assistant" in texts(assistant.say(sender, "hello"))
    assert "virtual assistant" in texts(assistant.say(sender, "am I talking to a bot?"))
    assert texts(assistant.say(sender, "thanks a lot")) in response_variants("utter_youre_welcome")
    assert texts(assistant.say(sender, "bye")) in response_variants("utter_goodbye")


def test_out_of_scope_is_admitted_with_an_offer_of_a_person(assistant: RunningAssistant):
    replies = assistant.say(new_sender(), "where can I download my invoices?")
    assert "can't help with that" in texts(replies)
    assert "/human_handoff" in payloads(replies)


def test_unclear_messages_get_suggestions_then_an_admission_then_a_person(
    assistant: RunningAssistant,
):
    sender = new_sender()
    first = assistant.say(sender, "switch it")
    assert "Did you mean" in texts(first)
    assert "/deny" in payloads(first) and len(payloads(first)) >= 2

    second = assistant.say(sender, "both of them")
    assert "I'd rather not guess" in texts(second)
    assert "/human_handoff" in payloads(second)

    # A third miss offers the person again: nobody is handed over without a yes.
    third = assistant.say(sender, "switch it over")
    assert "I'd rather not guess" in texts(third)
    assert "/human_handoff" in payloads(third)
    assert "reference" not in texts(third)


def test_a_suggestion_button_answers_the_topic(assistant: RunningAssistant):
    sender = new_sender()
    first = assistant.say(sender, "switch it")
    topic_payload = payloads(first)[0]
    answer = texts(assistant.say(sender, topic_payload))
    assert answer and "Did you mean" not in answer


def test_something_else_then_no_ends_politely(assistant: RunningAssistant):
    sender = new_sender()
    assistant.say(sender, "switch it")
    assert "I'd rather not guess" in texts(assistant.say(sender, "/deny"))
    assert "anything else" in texts(assistant.say(sender, "no thanks")).lower()


def test_http_api_is_off_by_default(assistant: RunningAssistant):
    sender = new_sender()
    assistant.say(sender, "hello")
    assert requests.get(f"{assistant.rasa_url}/conversations/{sender}/tracker", timeout=5).status_code == 404
    assert requests.get(f"{assistant.rasa_url}/status", timeout=5).status_code == 404


def test_socketio_endpoint_is_served(assistant: RunningAssistant):
    response = requests.get(f"{assistant.rasa_url}/socket.io/?EIO=4&transport=polling", timeout=5)
    assert response.status_code == 200 and response.text.startswith("0{")


# --- the chat page ----------------------------------------------------------------


def test_chat_page_is_served_with_a_session_cookie(assistant: RunningAssistant):
    page = requests.get(f"{assistant.web_url}/", timeout=5)
    assert page.status_code == 200
    assert "<form id=\"composer\"" in page.text
    assert "chat_session" in page.cookies
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]


def test_chat_page_relays_messages_and_keeps_each_visitor_apart(assistant: RunningAssistant):
    alice, bob = requests.Session(), requests.Session()
    for visitor in (alice, bob):
        visitor.get(f"{assistant.web_url}/", timeout=5)
    first = alice.post(f"{assistant.web_url}/api/messages", json={"message": "switch it"}, timeout=30)
    assert first.status_code == 200
    assert "Did you mean" in first.json()["messages"][0]["text"]
    # Bob's first unclear message is his first failure, not Alice's second.
    other = bob.post(f"{assistant.web_url}/api/messages", json={"message": "switch it"}, timeout=30)
    assert "Did you mean" in other.json()["messages"][0]["text"]
    second = alice.post(f"{assistant.web_url}/api/messages", json={"message": "users and money"}, timeout=30)
    assert "I'd rather not guess" in second.json()["messages"][0]["text"]


@pytest.mark.parametrize(
    "body, status",
    [({"message": ""}, 400), ({"message": "x" * 2001}, 413), ({"text": "hi"}, 400)],
    ids=["empty", "too-long", "wrong-field"],
)
def test_chat_page_rejects_bad_messages_clearly(assistant: RunningAssistant, body, status):
    visitor = requests.Session()
    visitor.get(f"{assistant.web_url}/", timeout=5)
    response = visitor.post(f"{assistant.web_url}/api/messages", json=body, timeout=10)
    assert response.status_code == status
    assert response.json()["error"]


def test_chat_page_needs_its_session_cookie(assistant: RunningAssistant):
    response = requests.post(f"{assistant.web_url}/api/messages", json={"message": "hi"}, timeout=10)
    assert response.status_code == 401
