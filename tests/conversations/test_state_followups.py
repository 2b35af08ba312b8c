"""Consent before support requests, follow-ups on the assistant's answers, answers that fit.

Issue #13 groups 3, 6 and 7, and #15 item 4, as customers write them: on REST
(portal token or anonymous) and on the website widget's Socket.IO channel.
"""

from __future__ import annotations

import queue
import re
import uuid
from typing import Any, Dict, List

import pytest
import requests
import socketio

from actions import messages
from actions.closing import CLOSING_HOW_TO  # noqa: F401 - the how-to answer is in test_state_closing
from actions.followups import BUSINESS_GRAYED_OUT, WHY_REASON, WHY_TOPIC
from actions.wording import day
from tests.conversations.state_chat import (  # noqa: F401 - fixtures
    NOW,
    Chat,
    buttons,
    response_text,
    response_variants,
    store,
)

pytestmark = pytest.mark.slow

PERSON_OFFER = "Only our support team can do that for you: shall I pass it on to them?"
OUT_OF_SCOPE_WITH_OFFER = (messages.OUT_OF_SCOPE + " If you need something else, I can put you in "
                                                   "touch with our support team.")
DUE = day((NOW + __import__("datetime").timedelta(days=10)).date())


def term(pattern_start: str) -> str:
    """The short answer of messages.TERMS whose pattern starts with ``pattern_start``."""
    return next(answer for pattern, answer in messages.TERMS if pattern.startswith(pattern_start))


def handed_over_verified(reference: str, email: str) -> str:
    return (f"I've passed this to our support team with our conversation (reference {reference}). "
            f"They'll reply to {email}, usually within one working day.")


def handed_over_anonymous(reference: str) -> str:
    return (f"I've noted your request (reference {reference}). As you're not signed in, I can't see "
            "your account, so please contact our support team through the Contact support form in the "
            "portal's Help section and quote "
            "that reference.")


def added_to(reference: str) -> str:
    return f"I've added that to {reference}, so the team sees it with your request. You don't need to open another one."


def reference_of(text: str) -> str:
    match = re.search(r"SR-\d{6}", text)
    assert match, text
    return match.group(0)


# --- Consent before a support request (group 3, #15 item 4) ---------------------------------

def test_emoji_and_gibberish_never_file_a_request_and_the_second_miss_offers_a_person(assistant, store):
    chat = Chat(assistant)
    before = store.request_count()
    assert chat.says("👍") == [messages.CLARIFY_FIRST_MISS]
    [second] = chat.replies("🤔🤔🤔")
    assert second["text"] == messages.CLARIFY_GAVE_UP
    assert buttons(second) == ["/human_handoff", "/deny"]
    [third] = chat.replies("???")
    assert third["text"] == messages.CLARIFY_GAVE_UP
    assert store.request_count() == before


def test_yes_to_the_offer_after_misunderstandings_files_one_request(assistant, store):
    chat = Chat(assistant)
    chat.says("blorp")
    chat.says("xkcd qwop")
    [text] = chat.says("yes")
    reference = reference_of(text)
    assert text == handed_over_anonymous(reference)
    assert len(store.requests_of_conversation(chat.conversation_id)) == 1
    assert chat.says("sorry what was my ref number again??") == [
        f"Your reference is {reference}. Our support team usually replies within one working day."]


def test_a_real_human_now_then_more_details_go_to_the_same_request(assistant, store):
    account_id, email = store.account_with()
    chat = Chat(assistant, account_id, email)
    [text] = chat.says("get me a real human NOW")
    reference = reference_of(text)
    assert text == handed_over_verified(reference, email)
    assert chat.says("can u tell them its about a double charge on my card") == [added_to(reference)]
    assert chat.says("talk to a person please") == [added_to(reference)]
    [request] = store.support_requests(account_id)
    assert store.request_messages(request.id) == [
        ("customer", "can u tell them its about a double charge on my card"),
        ("customer", "talk to a person please")]
    assert chat.says("how long is this gonna take") == [
        f"Our support team usually replies within one working day by email to {email}. "
        f"Your reference is {reference}."]


def test_the_contact_support_button_disappears_once_filed(assistant, store):
    chat = Chat(assistant)
    [first] = chat.replies("can i order a pizza through you")
    assert first["text"] == OUT_OF_SCOPE_WITH_OFFER and buttons(first) == ["/human_handoff"]
    reference = reference_of(chat.says("/human_handoff")[0])
    [second] = chat.replies("what's the weather like in rome")
    assert second["text"] == added_to(reference)
    assert buttons(second) == []
    assert len(store.requests_of_conversation(chat.conversation_id)) == 1


def test_reference_question_without_a_request_offers_one_and_files_nothing(assistant, store):
    account_id, email = store.account_with()
    chat = Chat(assistant, account_id, email)
    [reply] = chat.replies("whats my ticket number")
    assert reply["text"] == messages.NO_REQUEST_YET
    assert buttons(reply) == ["/human_handoff", "/deny"]
    assert store.support_requests(account_id) == []


def test_one_active_service_how_to_cancel_it(assistant, store):
    account_id, email = store.account_with(services=["Mail Pro"])
    chat = Chat(assistant, account_id, email)
    chat.says("i need my account closed")
    assert chat.says("ok so how can i cancel that service") == [
        "Open Mail Pro in the portal and cancel it. When it's cancelled, ask me again."]


def test_unpaid_invoice_refusal_gives_the_customers_own_step_and_offers_no_person(assistant, store):
    account_id, email = store.account_with(invoices=[("INV-7", "49.00")])
    [number] = store.invoice_numbers(account_id)
    chat = Chat(assistant, account_id, email)
    [refusal] = chat.replies("i'd like to close my account")
    assert refusal["text"] == (
        f"I can't close your account right now because there are unpaid invoices: {number} "
        f"(49.00 EUR, due {DUE}). You can pay {number} in the portal's billing section, then ask me again.")
    assert buttons(refusal) == []
    assert store.support_requests(account_id) == []


def test_payments_on_a_currency_change_offer_a_person_and_yes_files_it(assistant, store):
    account_id, email = store.account_with(payments=1)
    chat = Chat(assistant, account_id, email)
    [refusal] = chat.replies("can i change my currency to dollars")
    assert refusal["text"] == ("I can't change the currency right now because payments have already been "
                               f"made on the account. {PERSON_OFFER}")
    assert buttons(refusal) == ["/human_handoff", "/deny"]
    assert store.support_requests(account_id) == []
    [text] = chat.says("yes")
    assert text == handed_over_verified(reference_of(text), email)
    [request] = store.support_requests(account_id)
    assert request.reason == "change_currency:payments_exist"


def test_a_negative_balance_is_the_customers_to_settle(assistant, store):
    account_id, email = store.account_with(currency="USD", balance="-25.00")
    chat = Chat(assistant, account_id, email)
    [refusal] = chat.replies("change currency to eur")
    assert refusal["text"] == ("I can't change the currency right now because the balance is negative "
                               "(-25.00 USD). You can settle the balance in the portal's billing section, "
                               "then ask me again.")
    assert buttons(refusal) == []
    assert chat.says("how do i settle it?") == [
        "Your balance is -25.00 USD: pay 25.00 USD in the portal's billing section to settle it."]


def test_grayed_out_business_switch_offers_a_person_and_why_explains(assistant, store):
    account_id, email = store.account_with(invoices=[("INV-9", "12.50")])
    chat = Chat(assistant, account_id, email)
    [refusal] = chat.replies("i want to switch to a business account")
    assert refusal["text"].endswith(PERSON_OFFER)
    assert buttons(refusal) == ["/human_handoff", "/deny"]
    assert chat.says("why??") == [BUSINESS_GRAYED_OUT]
    assert chat.says("no thanks") == ["Okay. Is there anything else I can help you with?"]
    assert store.support_requests(account_id) == []


# --- Follow-ups on the assistant's own answers (group 6) ------------------------------------

def test_after_an_unpaid_invoice_which_where_how_much_and_why(assistant, store):
    account_id, email = store.account_with(invoices=[("INV-3", "49.00")])
    [number] = store.invoice_numbers(account_id)
    chat = Chat(assistant, account_id, email)
    chat.says("close my account please")
    assert chat.says("wait which invoice is that") == [
        f"The unpaid invoice is {number} (49.00 EUR, due {DUE}). You can pay it in the portal's billing section."]
    assert chat.says("ok and where do i pay it") == [
        f"You can pay {number} (49.00 EUR, due {DUE}) in the portal's billing section."]
    assert chat.says("how much do i owe in total?") == [
        f"You owe 49.00 EUR: invoice {number} of 49.00 EUR is unpaid. You can settle it in the portal's billing section."]
    assert chat.says("why tho") == [WHY_REASON["unpaid_invoices"]]


def test_after_active_services_which_ones_and_how_to_cancel(assistant, store):
    account_id, email = store.account_with(services=["Cloud VPS S", "Backup 100 GB"])
    chat = Chat(assistant, account_id, email)
    assert chat.says("i want to shut down my account") == [
        "I can't close your account right now because these services are still active: Cloud VPS S, "
        "Backup 100 GB. You can cancel Cloud VPS S and Backup 100 GB in the portal, then ask me again."]
    assert chat.says("hm which services are still running?") == [
        "These services are still active: Cloud VPS S, Backup 100 GB."]
    assert chat.says("how do i cancel those") == [
        "Open each service in the portal and cancel it: Cloud VPS S and Backup 100 GB. "
        "When they're cancelled, ask me again."]


def test_short_answers_about_words_in_the_answers(assistant, store):
    chat = Chat(assistant)
    assert chat.says("whats a primary email??") == [term("primary")]
    assert chat.says("what roles can a user have") == [term(r"roles?")]
    assert chat.says("ok and could i switch someone's role afterwards?") == ["Yes, any time: Profile → User Management, then click the user."]


def test_why_after_the_tfa_answer(assistant, store):
    chat = Chat(assistant)
    assert chat.says("what is 2fa") == [response_text("utter_what_is_tfa")]
    assert chat.says("why would i want that") == [WHY_TOPIC["what_is_tfa"]]


def test_lost_app_without_recovery_codes_offers_a_person(assistant, store):
    chat = Chat(assistant)
    [route] = chat.replies("lost my phone with the authenticator on it and now i cant log in")
    assert route["text"] == response_text("utter_lost_tfa_app")
    assert route["text"].startswith("If you've lost the app that generates your one-time passwords and "
                                    "can't sign in, start with what you have.")
    assert "sign in to the portal chat" not in route["text"]
    [offer] = chat.replies("and if i don't have those recovery codes?")
    assert offer["text"] == messages.NO_RECOVERY_CODES
    assert buttons(offer) == ["/human_handoff", "/deny"]
    [text] = chat.says("yes")
    assert text == handed_over_anonymous(reference_of(text))


# --- Answers that fit the asker and the channel (group 7) -----------------------------------

def test_faq_answers_on_rest_carry_no_slack_or_telegram_sentence(assistant, store):
    chat = Chat(assistant)
    [answer] = chat.says("can i add a second user to my account")
    assert answer == response_text("utter_add_user")
    assert "verify me" not in answer and "Slack" not in answer


def test_a_signed_in_customer_is_not_told_if_that_address_belongs_to_an_account(assistant, store):
    account_id, email = store.account_with()
    chat = Chat(assistant, account_id, email)
    assert chat.says("i forgot my password, can you reset it") == [
        f"I've sent a password reset link to {email}. It works once and expires in 30 minutes."]


def test_help_gets_the_welcome_menu(assistant, store):
    chat = Chat(assistant)
    [menu] = chat.replies("help")
    assert menu["text"] == messages.HELP_MENU
    assert buttons(menu) == [b["payload"] for b in messages.HELP_BUTTONS]


def test_an_over_long_message_gets_a_chat_reply(assistant, store):
    chat = Chat(assistant)
    long_message = "hi, so here's my whole story. " * 74
    assert len(long_message) > 2000
    response = requests.post(f"{assistant.rasa_url}/webhooks/rest/webhook",
                             json={"sender": chat.sender, "message": long_message}, timeout=30)
    assert response.status_code == 200
    assert response.json() == [{"recipient_id": chat.conversation_id, "text": (
        f"Sorry, that message is too long for me ({len(long_message)} characters; I can read up to 2000). "
        "Could you send your main question first, in a shorter message?")}]


# --- The website widget (Socket.IO) ------------------------------------------------------------

class Widget:
    """A rasa-webchat-like Socket.IO client; ``says`` returns the replies to one message."""

    def __init__(self, assistant) -> None:
        self.sio = socketio.Client(reconnection=False)
        self.replies: "queue.Queue[Dict[str, Any]]" = queue.Queue()
        self.sio.on("bot_uttered", self.replies.put)
        confirmations: "queue.Queue[Any]" = queue.Queue()
        self.sio.on("session_confirm", confirmations.put)
        self.sio.connect(assistant.rasa_url, headers={"Origin": assistant.web_url},
                         transports=["polling"], wait_timeout=10)
        self.sio.emit("session_request", {"session_id": uuid.uuid4().hex})
        self.session_id = confirmations.get(timeout=20)["session_id"]

    def says(self, text: str, count: int = 1) -> List[Dict[str, Any]]:
        """Send a message; return the next ``count`` replies (a reply to one message comes in order)."""
        self.sio.emit("user_uttered", {"message": text, "customData": {}, "session_id": self.session_id})
        return [self.replies.get(timeout=30) for _ in range(count)]

    def close(self) -> None:
        if self.sio.connected:
            self.sio.eio.disconnect(abort=True)


@pytest.fixture
def widget(assistant):
    client = Widget(assistant)
    yield client
    client.close()


def quick_replies(reply: Dict[str, Any]) -> List[str]:
    return [choice["payload"] for choice in reply.get("quick_replies") or []]


def test_widget_faq_answer_names_verify_me_on_this_channel(widget):
    [answer] = widget.says("is it possible to have two users on one acount?")
    assert answer["text"] == response_text("utter_add_user", "socketio")
    assert answer["text"].endswith('Here, say "verify me" first.')


def test_widget_lost_app_route_starts_with_verify_me_here(widget):
    [answer] = widget.says("i lost the app that makes my login codes")
    assert answer["text"] == response_text("utter_lost_tfa_app", "socketio")
    assert 'Say "verify me" here to start.' in answer["text"]
    assert quick_replies(answer) == ["/affirm", "/deny"]


def test_widget_help_and_misunderstandings_offer_but_never_file(widget, store):
    before = store.request_count()
    [menu] = widget.says("help!!")
    assert menu["text"] == messages.HELP_MENU
    assert quick_replies(menu) == [b["payload"] for b in messages.HELP_BUTTONS]
    [first] = widget.says("👍")
    assert first["text"] == messages.CLARIFY_FIRST_MISS
    [second] = widget.says("🙃🙃")
    assert second["text"] == messages.CLARIFY_GAVE_UP
    assert quick_replies(second) == ["/human_handoff", "/deny"]
    assert store.request_count() == before
