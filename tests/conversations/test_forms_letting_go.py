"""Forms that let go: "cancel", "talk to a person" and unrelated messages at every form.

Each conversation is typed as customers type (lowercase, typos, indirect) over
the REST channel, and checks what the customer reads next and what the
account store holds afterwards.
"""

from __future__ import annotations

import re
import uuid

import pytest

from actions.questions import QUESTIONS
from tests.conversations.conftest import codes_sent, said, support_requests

pytestmark = pytest.mark.slow

STOPPED = "OK, I've stopped there and haven't changed anything. Anything else I can help with?"
HANDED_OVER = re.compile(r"I've passed this to our support team with our conversation \(reference SR-\d+\)\.")


def test_nvm_at_the_invitation_email_leaves_the_form(new_customer, store):
    customer = new_customer()
    assert said(customer, "can u add someone to my acount") == [QUESTIONS["invite_email"][0]]
    assert said(customer, "nvm") == [STOPPED]
    assert list(store.members(customer.account_id)) == [customer.email]
    # the next message is a new topic, not an answer to the old question
    assert said(customer, "bob@example.com") != [QUESTIONS["invite_role"][0]]


def test_forget_it_at_the_role_question_invites_nobody(new_customer, store):
    customer = new_customer()
    said(customer, "i'd like to add my colleague")
    assert said(customer, "it's jane.doe@example.com") == [QUESTIONS["invite_role"][0]]
    assert said(customer, "actually forget it") == [STOPPED]
    assert "jane.doe@example.com" not in store.members(customer.account_id)


def test_asking_for_a_human_at_the_currency_question_hands_over(new_customer, store):
    customer = new_customer()
    assert said(customer, "i need to change the currency on my account")[-1] == QUESTIONS["currency"][0]
    reply = said(customer, "ugh can i just talk to a real person")
    assert len(reply) == 1 and HANDED_OVER.match(reply[0])
    assert support_requests(store, customer.account_id) == ["customer_request"]
    assert store.account(customer.account_id).currency == "EUR"


def test_cancel_halfway_through_the_business_details(new_customer, store):
    customer = new_customer()
    said(customer, "we're a company now, can i switch to business?")
    assert said(customer, "Globex Corporation") == [QUESTIONS["registration_number"][0]]
    assert said(customer, "cancel") == [STOPPED]
    account = store.account(customer.account_id)
    assert (account.kind, account.company_name) == ("personal", None)


def test_thanks_at_the_closing_question_drops_it_and_a_later_yes_closes_nothing(new_customer, store):
    customer = new_customer()
    assert said(customer, "pls close my acount")[-1].endswith("Shall I close your account?")
    reply = said(customer, "ok thanks!")
    assert reply[0] == "(I've set closing your account aside: nothing was changed.)"
    assert not any("Shall I close" in line for line in reply)
    said(customer, "yes")
    assert store.account(customer.account_id).status == "active"
    assert codes_sent(store, customer.email) == 0


def test_an_off_topic_question_at_the_closing_question_drops_it(new_customer, store):
    customer = new_customer()
    said(customer, "i want to close my account")
    reply = said(customer, "btw how do i create an account for my sister?")
    assert reply[0].startswith("To create an account, click the \"Customer account\" button")
    assert reply[-1].startswith("(So I won't close your account for now")
    assert store.account(customer.account_id).status == "active"


def test_an_unrelated_message_at_the_disable_question_drops_it(new_customer, store):
    customer = new_customer(members={"dave@example.com": "member"})
    assert said(customer, "remove dave@example.com from our team") == [
        "Disable dave@example.com? They will lose access to the account immediately."]
    reply = said(customer, "what is two factor authentication")
    assert "one-time password" in reply[0]
    assert reply[-1].startswith("(So I won't disable that user for now")
    said(customer, "yes")
    assert store.members(customer.account_id)["dave@example.com"] == ("member", "active")


def test_stop_at_the_step_up_code_changes_nothing(new_customer, store):
    customer = new_customer()
    said(customer, "change currency to CHF please")
    assert "emailed a 6-digit code" in said(customer, "yes")[-1]
    assert said(customer, "stop") == [STOPPED]
    assert store.account(customer.account_id).currency == "EUR"
    # the code that was sent no longer does anything in this conversation
    assert "now CHF" not in " ".join(said(customer, store.latest_code(customer.email)))
    assert store.account(customer.account_id).currency == "EUR"


def test_a_person_asked_for_at_the_step_up_code(new_customer, store):
    customer = new_customer(members={"erin@example.com": "member"})
    said(customer, "disable erin@example.com")
    said(customer, "yes")
    reply = said(customer, "i never get these emails, put me through to an agent")
    assert len(reply) == 1 and HANDED_OVER.match(reply[0])
    assert store.members(customer.account_id)["erin@example.com"] == ("member", "active")


def test_no_thanks_at_the_undo_question_keeps_the_closure(demo_customer, store):
    customer = demo_customer("closing@demo.example")
    reply = said(customer, "close my account")
    assert reply[-1] == "Do you want to keep your account and cancel the closure?"
    assert said(customer, "hmm never mind") == [STOPPED]
    assert store.account(customer.account_id).status == "closing"


def test_a_forgotten_password_form_lets_go(assistant):
    sender = f"anon-{uuid.uuid4().hex}"
    asked = [r["text"] for r in assistant.say(sender, "forgot my pasword :(")]
    assert asked == [QUESTIONS["reset_email"][0]]
    assert [r["text"] for r in assistant.say(sender, "never mind, found it")] == [STOPPED]


def test_cancel_at_the_recovery_code_question(demo_customer, store):
    customer = demo_customer("tfa@demo.example")
    assert said(customer, "i lost my phone with the authenticator app")[-1] == QUESTIONS["recovery_code"][0]
    assert said(customer, "cancel that") == [STOPPED]
    assert store.account(customer.account_id).status == "active"


def test_a_plain_no_at_a_question_stops_the_form(new_customer, store):
    customer = new_customer()
    said(customer, "add a user")
    assert said(customer, "no") == [STOPPED]
    assert list(store.members(customer.account_id)) == [customer.email]


def test_another_request_at_a_question_leaves_the_form_and_is_handled(new_customer, store):
    customer = new_customer()
    said(customer, "add a user")
    assert said(customer, "actually can you change my currency to GBP first") == [
        "(I've left that for now; nothing was changed.)",
        "Change your account currency to GBP? Prices and invoices from now on will be in that currency."]
    assert list(store.members(customer.account_id)) == [customer.email]


def test_another_request_at_the_closing_question_leaves_it(new_customer, store):
    customer = new_customer()
    said(customer, "close my account")
    assert said(customer, "hmm wait, i want to add a user first") == [
        "(I've left that for now; nothing was changed.)", QUESTIONS["invite_email"][0]]
    said(customer, "tom@example.com")
    said(customer, "admin")
    assert "emailed a 6-digit code" in said(customer, "yes")[-1]  # an admin needs a step-up
    said(customer, store.latest_code(customer.email))
    said(customer, "yes")  # a second yes closes nothing
    assert store.account(customer.account_id).status == "active"
    assert store.members(customer.account_id)["tom@example.com"] == ("admin", "invited")


def test_cancel_at_the_end_of_a_longer_message(new_customer, store):
    customer = new_customer()
    said(customer, "change my account to business")
    said(customer, "Initech")
    assert said(customer, "i'll talk to my accountant first, cancel for now") == [STOPPED]
    assert store.account(customer.account_id).kind == "personal"
