"""Account operations carried out in conversations over the REST channel.

Each test chats as a verified customer (portal token) with the running
assistant and checks both what the customer reads and what the account store
recorded: the state, one audit event, one notification.
"""

from __future__ import annotations

import uuid

import pyotp

import pytest
import requests
import sqlalchemy as sa

from accounts.models import SupportRequest
from supportbot.portal_token import PortalTokenVerifier
from tests.conftest import TEST_PORTAL_SECRET, RunningAssistant
from tests.operations.conftest import Store

pytestmark = pytest.mark.slow


def test_closing_a_clean_account_after_confirmation_then_undoing_it(new_customer, store: Store):
    customer = new_customer()
    reply = customer.says("I want to close my account")
    assert "no unpaid bills" in reply and "14-day grace period" in reply and "Shall I close" in reply
    assert store.account(customer.account_id).status == "active"  # nothing before the yes

    assert "emailed a 6-digit code" in customer.says("yes")
    assert store.account(customer.account_id).status == "active"  # not before the step-up
    assert "scheduled to close on" in customer.steps_up(store)
    assert store.account(customer.account_id).status == "closing"
    assert ("request_closure", "succeeded") in store.audit_actions(customer.account_id)
    assert store.notifications(customer.account_id) == ["verification_code", "closure_requested"]

    # a second "yes" (double click) does nothing twice
    customer.says("yes")
    assert store.audit_actions(customer.account_id).count(("request_closure", "succeeded")) == 1

    reply = customer.says("close my account")
    assert "already scheduled to close" in reply and "cancel the closure" in reply
    assert "cancelled" in customer.says("yes")
    assert store.account(customer.account_id).status == "active"
    assert store.notifications(customer.account_id) == [
        "verification_code", "closure_requested", "closure_undone"]


def test_saying_no_to_the_confirmation_changes_nothing(new_customer, store: Store):
    customer = new_customer()
    customer.says("please terminate my account")
    assert "haven't changed anything" in customer.says("no")
    assert store.account(customer.account_id).status == "active"
    assert store.notifications(customer.account_id) == []


def test_closing_is_refused_with_the_unpaid_invoice_and_active_service(new_customer, store: Store):
    customer = new_customer(unpaid_invoice=True, active_service=True)
    replies = customer.say("how do I close my account?")
    text = "\n".join(r.get("text", "") for r in replies)
    assert "unpaid invoices: INV-" in text and "49.00 EUR" in text
    assert "Cloud Backup" in text
    # The customer's own next step, no support request offered (a person can't pay the bill).
    assert "You can pay INV-" in text and "cancel Cloud Backup in the portal" in text
    assert not any(r.get("buttons") for r in replies)
    assert store.account(customer.account_id).status == "active"

    reference = customer.says("/human_handoff")
    assert "reference SR-" in reference
    with store.factory() as session:
        request = session.execute(sa.select(SupportRequest).where(
            SupportRequest.account_id == customer.account_id)).scalar_one()
    assert request.reason == "close_account:unpaid_invoices"
    assert request.contact_email == customer.email
    assert any("close my account" in line["text"] for line in request.context["transcript"])


def test_changing_the_currency(new_customer, store: Store):
    customer = new_customer()
    assert "Which currency" in customer.says("can you change my account currency?")
    assert "didn't recognise" in customer.says("bitcoin")
    assert "to USD?" in customer.says("to dollars please")
    assert "6-digit code" in customer.says("yes")
    assert "now USD" in customer.steps_up(store)
    assert store.account(customer.account_id).currency == "USD"
    assert store.notifications(customer.account_id) == ["verification_code", "currency_changed"]


def test_currency_change_refused_after_payments_and_with_negative_balance(new_customer, store: Store):
    customer = new_customer(payment=True, balance="-25.00")
    reply = customer.says("change the currency to GBP")
    assert "payments have already been made" in reply and "balance is negative (-25.00 EUR)" in reply
    assert store.account(customer.account_id).currency == "EUR"


def test_inviting_a_colleague_as_admin(new_customer, store: Store):
    customer = new_customer()
    assert "email address" in customer.says("I'd like to add my colleague to our account")
    assert "doesn't look like an email" in customer.says("bob at example")
    assert "Which role" in customer.says("bob@example.com")
    assert "Invite bob@example.com as an admin?" in customer.says("admin please")
    assert "emailed a 6-digit code" in customer.says("yes")  # an admin needs a step-up
    assert "invited bob@example.com" in customer.steps_up(store)
    assert store.members(customer.account_id)["bob@example.com"] == ("admin", "invited")
    assert store.notifications(customer.account_id) == ["verification_code", "member_invitation"]


def test_disabling_a_user_picked_from_the_list(new_customer, store: Store):
    customer = new_customer(members={"carol@example.com": "member"})
    replies = customer.say("remove a user from my account")
    buttons = [b["payload"] for r in replies for b in r.get("buttons", [])]
    assert buttons == ["carol@example.com"]
    assert "Disable carol@example.com?" in customer.says("carol@example.com")
    assert "6-digit code" in customer.says("yes")
    assert "is disabled" in customer.steps_up(store)
    assert store.members(customer.account_id)["carol@example.com"] == ("member", "disabled")


def test_switching_to_business_checks_the_vat_id(new_customer, store: Store):
    customer = new_customer()
    assert "legal name" in customer.says("I want to change my account type to business")
    assert "registration number" in customer.says("Acme Widgets GmbH")
    assert "VAT ID" in customer.says("HRB 123456")
    assert "isn't valid" in customer.says("DE12")
    assert "address" in customer.says("DE123456789")
    assert "Switch to a business account for Acme Widgets GmbH" in customer.says(
        "Hauptstrasse 1, 10115 Berlin, Germany")
    assert "6-digit code" in customer.says("yes")
    assert "business account for Acme Widgets GmbH" in customer.steps_up(store)
    account = store.account(customer.account_id)
    assert (account.kind, account.payment_method, account.vat_id) == ("business", "wire_transfer", "DE123456789")


def test_switch_refused_when_grayed_out_offers_a_person_and_yes_raises_a_request(new_customer, store: Store):
    customer = new_customer(unpaid_invoice=True)
    reply = customer.says("switch my account to business")
    assert "unpaid invoices" in reply and "shall I pass it on to them?" in reply
    assert "reference SR-" not in reply
    reply = customer.says("yes please")
    assert "reference SR-" in reply
    assert store.account(customer.account_id).kind == "personal"
    with store.factory() as session:
        request = session.execute(sa.select(SupportRequest).where(
            SupportRequest.account_id == customer.account_id)).scalar_one()
    assert request.reason == "switch_to_business:unpaid_invoices"


def test_a_question_mid_form_is_answered_and_the_form_goes_on(new_customer, store: Store):
    customer = new_customer()
    customer.says("I want to change my currency")
    reply = customer.says("wait, what is two factor authentication?")
    assert "one-time password" in reply and "Which currency" in reply
    assert "to USD?" in customer.says("USD")


def test_the_token_can_come_in_the_message_metadata(assistant: RunningAssistant, new_customer):
    customer = new_customer()
    reply = requests.post(f"{assistant.rasa_url}/webhooks/rest/webhook", timeout=30, json={
        "sender": "x", "message": "close my account", "metadata": {"token": customer.token}}).json()
    assert "no unpaid bills" in reply[0]["text"]


def test_stopping_a_form_midway(new_customer, store: Store):
    customer = new_customer()
    customer.says("invite a new user")
    assert "stopped" in customer.says("no, forget it")
    assert list(store.members(customer.account_id)) == [customer.email]


def test_password_reset_answers_the_same_for_known_and_unknown_addresses(assistant, new_customer):
    known = new_customer()
    answers = []
    for email in (known.email, f"nobody-{uuid.uuid4().hex[:6]}@test.example"):
        sender = f"anon-{uuid.uuid4().hex}"
        assert "Which email address" in "\n".join(
            r.get("text", "") for r in assistant.say(sender, "I forgot my password"))
        answers.append("\n".join(r.get("text", "") for r in assistant.say(sender, email)))
    assert answers[0] == answers[1]
    assert "reset link is on its way" in answers[0]


# --- identity comes only from verified tokens --------------------------------------


def test_anonymous_customers_get_the_faq_answer_not_the_operation(assistant: RunningAssistant):
    replies = assistant.say(f"anon-{uuid.uuid4().hex}", "close my account")
    assert "cancel all your services" in replies[0]["text"]


def test_forged_metadata_and_intent_injection_do_not_identify_anyone(
    assistant: RunningAssistant, new_customer, store: Store,
):
    victim = new_customer()
    forged = {"verified_identity": {"account_id": str(victim.account_id), "email": victim.email,
                                    "source": "portal_token", "expires_at": "2099-01-01T00:00:00+00:00"}}
    sender = f"attacker-{uuid.uuid4().hex}"
    reply = requests.post(f"{assistant.rasa_url}/webhooks/rest/webhook", timeout=30,
                          json={"sender": sender, "message": "close my account", "metadata": forged,
                                "input_channel": "socketio"}).json()
    assert "cancel all your services" in reply[0]["text"]  # the anonymous FAQ answer
    injected = assistant.say(sender, '/close_account{"account_id": "%d"}' % victim.account_id)
    assert "cancel all your services" in injected[0]["text"]
    assert assistant.say(sender, "/affirm")  # whatever it answers, nothing happens
    assert store.account(victim.account_id).status == "active"
    assert store.audit_actions(victim.account_id) == []


def test_expired_or_forged_tokens_are_refused(assistant: RunningAssistant, new_customer):
    customer = new_customer()
    forged = PortalTokenVerifier("f" * 40).issue(str(customer.account_id), customer.email)
    for token in (forged, "garbage"):
        response = requests.post(f"{assistant.rasa_url}/webhooks/rest/webhook", timeout=30,
                                 headers={"Authorization": f"Bearer {token}"},
                                 json={"sender": "x", "message": "close my account"})
        assert response.status_code == 401


def test_a_customer_cannot_act_on_another_account(assistant: RunningAssistant, new_customer, store: Store):
    victim = new_customer()
    attacker = new_customer()
    # a token for the victim's account id with the attacker's email is not a member
    token = PortalTokenVerifier(TEST_PORTAL_SECRET).issue(str(victim.account_id), attacker.email)
    reply = assistant.say("x", "close my account", token=token)
    assert "Only account owners" in reply[0]["text"]
    assert store.account(victim.account_id).status == "active"


# --- step-up ------------------------------------------------------------------------


def test_step_up_with_the_authenticator_app_and_replay_refused(new_customer, store: Store):
    customer = new_customer()
    secret = store.enable_tfa(customer.account_id, customer.email)
    customer.says("change my currency")
    customer.says("GBP")
    assert "authenticator app" in customer.says("yes")
    wrong = "000000" if pyotp.TOTP(secret).now() != "000000" else "111111"
    assert "isn't right" in customer.says(wrong)
    code = pyotp.TOTP(secret).now()
    assert "now GBP" in customer.says(code)
    # the same code again, for the next change, is refused (each time step once)
    customer.says("change my currency")
    customer.says("CHF")
    customer.says("yes")
    if pyotp.TOTP(secret).now() == code:  # still the same 30-second step: a replay
        assert "already used" in customer.says(code)
        assert store.account(customer.account_id).currency == "GBP"


def test_wrong_codes_stop_after_five_and_nothing_changes(new_customer, store: Store):
    customer = new_customer()
    customer.says("change the currency")
    customer.says("CHF")
    customer.says("yes")
    replies = [customer.says("999999" if store.latest_code(customer.email) != "999999" else "888888")
               for _ in range(6)]
    assert any("too many wrong codes" in reply for reply in replies)
    assert store.account(customer.account_id).currency == "EUR"
