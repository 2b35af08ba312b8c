"""Forms that listen: questions answered and the same question asked again, corrections, resends.

A question is never taken as a value; a correction at the confirmation edits
that field and the form confirms again; "resend it" sends a new code (counted
by the send limit, not as a wrong code).
"""

from __future__ import annotations

import pytest

from actions.questions import FIELD_HELP, QUESTIONS
from actions.step_up import CODE_FROM_EMAIL
from tests.conversations.conftest import codes_sent, said

pytestmark = pytest.mark.slow

ROLES = FIELD_HELP["invite_role"][0][1]


def test_a_role_question_at_the_role_question_is_answered_and_asked_again(new_customer, store):
    customer = new_customer()
    said(customer, "can you invite my bookkeeper")
    said(customer, "anna@books.example")
    assert said(customer, "hmm whats the difference between admin and member again?") == [
        ROLES, QUESTIONS["invite_role"][0]]
    assert said(customer, "member is fine") == [
        "Invite anna@books.example as a member? They'll get an email with a link to join your account."]


def test_a_role_question_at_the_email_question_is_not_taken_as_an_address(new_customer):
    customer = new_customer()
    said(customer, "add a new user pls")
    assert said(customer, "wait what can an admin do compared to a member?") == [
        ROLES, QUESTIONS["invite_email"][0]]
    assert said(customer, "ok it's tom@example.com") == [QUESTIONS["invite_role"][0]]


def test_what_a_recovery_code_is(demo_customer, store):
    customer = demo_customer("tfa@demo.example")
    said(customer, "i cant get into my authenticator app anymore")
    reply = said(customer, "what's a recovery code? i dont think i have one")
    assert reply == [FIELD_HELP["recovery_code"][0][1], QUESTIONS["recovery_code"][0]]


def test_what_a_registration_number_is(new_customer, store):
    customer = new_customer()
    said(customer, "switch me to a business account")
    said(customer, "Initech LLC")
    assert said(customer, "what do you mean by registration number?") == [
        FIELD_HELP["registration_number"][0][1], QUESTIONS["registration_number"][0]]
    assert said(customer, "HRB 44556") == [QUESTIONS["vat_id"][0]]


def test_whats_my_current_currency_is_answered_from_the_account(new_customer):
    customer = new_customer(currency="GBP")
    said(customer, "id like another currency")
    reply = said(customer, "what's my current currency?")
    assert reply[0].startswith("Your account uses GBP now.")
    assert reply[1] == QUESTIONS["currency"][0]
    assert said(customer, "euros then") == [
        "Change your account currency to EUR? Prices and invoices from now on will be in that currency."]


def test_an_faq_question_in_the_middle_of_the_business_details(new_customer):
    customer = new_customer()
    said(customer, "change my account type to business")
    said(customer, "Hooli Inc")
    said(customer, "12345678")
    reply = said(customer, "wait what is 2fa exactly")
    assert "one-time password" in reply[0] and reply[-1] == QUESTIONS["vat_id"][0]


def test_a_question_about_closing_at_the_closing_question_is_answered_and_asked_again(new_customer, store):
    customer = new_customer()
    said(customer, "close my account")
    reply = said(customer, "how long do i have to change my mind?")
    assert reply[0] == ("For 14 days after you confirm, the account is only scheduled to close and you "
                        "can cancel the closure any time; after that it's closed for good.")
    assert reply[-1].endswith("Shall I close your account?")
    assert "emailed a 6-digit code" in said(customer, "ok yes")[-1]


def test_the_company_name_corrected_at_the_confirmation(new_customer, store):
    customer = new_customer()
    said(customer, "switch to business")
    said(customer, "Acme Rockets Ltd")
    said(customer, "HRB 123456")
    said(customer, "DE123456789")
    assert said(customer, "Hauptstrasse 1, 10115 Berlin, Germany")[0].startswith(
        "Switch to a business account for Acme Rockets Ltd")
    reply = said(customer, "oh no the name is actually Acme Rockets GmbH, not Ltd")
    assert reply == ["Switch to a business account for Acme Rockets GmbH (registration HRB 123456, VAT ID "
                     "DE123456789, Hauptstrasse 1, 10115 Berlin, Germany)? The payment method becomes "
                     "wire transfer."]
    said(customer, "yes")
    assert "business account for Acme Rockets GmbH" in said(customer, store.latest_code(customer.email))[0]
    assert store.account(customer.account_id).company_name == "Acme Rockets GmbH"


def test_a_role_corrected_at_the_confirmation(new_customer, store):
    customer = new_customer()
    said(customer, "invite sam@example.com")
    said(customer, "member")
    assert said(customer, "oh wait, make them admin instead") == [
        "Invite sam@example.com as an admin? They'll get an email with a link to join your account."]
    assert "emailed a 6-digit code" in said(customer, "yep")[-1]  # an admin needs a step-up
    said(customer, store.latest_code(customer.email))
    assert store.members(customer.account_id)["sam@example.com"] == ("admin", "invited")


def test_an_invalid_correction_says_why_and_asks_for_that_detail(new_customer, store):
    customer = new_customer()
    said(customer, "switch to business")
    for detail in ("Acme Rockets Ltd", "HRB 123456", "DE123456789", "Hauptstrasse 1, 10115 Berlin"):
        said(customer, detail)
    reply = said(customer, "sorry the vat id should be DE12")
    assert reply[0].startswith("That VAT ID isn't valid")
    assert reply[-1] == QUESTIONS["vat_id"][0]


def test_the_currency_changed_at_the_confirmation(new_customer, store):
    customer = new_customer()
    said(customer, "change currency to dollars")
    assert said(customer, "hmm actually pounds would be better") == [
        "Change your account currency to GBP? Prices and invoices from now on will be in that currency."]


def test_resending_the_code_sends_a_new_one_and_is_not_a_wrong_code(new_customer, store):
    customer = new_customer(members={"zoe@example.com": "member"})
    said(customer, "remove zoe@example.com")
    said(customer, "yes")
    reply = said(customer, "i didn't get any email, can you resend it?")
    assert reply == ["I've emailed you a new 6-digit code; the one before no longer works. It can take a "
                     "minute to arrive.", CODE_FROM_EMAIL]
    assert codes_sent(store, customer.email) == 2
    second = store.latest_code(customer.email)
    assert said(customer, f"ok got it, its {second}")[0].startswith("Done: zoe@example.com is disabled")
    assert store.members(customer.account_id)["zoe@example.com"] == ("member", "disabled")


def test_a_wrong_code_does_not_read_as_if_a_new_code_was_sent(new_customer, store):
    customer = new_customer()
    said(customer, "change the currency to CHF")
    said(customer, "yes")
    right = store.latest_code(customer.email)
    wrong = "000000" if right != "000000" else "111111"
    assert said(customer, wrong) == ["That code isn't right, sorry.", CODE_FROM_EMAIL]
    assert codes_sent(store, customer.email) == 1
    assert said(customer, right)[0].startswith("Done: your account currency is now CHF")


def test_a_new_emailed_code_for_the_lost_app(demo_customer, store):
    customer = demo_customer("tfa@demo.example")
    said(customer, "lost my authenticator app")
    said(customer, "DEMO-RECOVERY-05")
    before = codes_sent(store, customer.email)
    reply = said(customer, "havent received the email yet, send another one?")
    assert reply[0] == f"I've emailed a new code to {customer.email}; the one before no longer works."
    assert reply[-1] == QUESTIONS["email_code"][0]
    assert codes_sent(store, customer.email) == before + 1
    said(customer, "cancel")


def test_words_at_the_code_question_are_not_counted_as_wrong_codes(new_customer, store):
    customer = new_customer()
    said(customer, "change the currency to CHF")
    said(customer, "yes")
    for _ in range(5):  # five wrong codes would stop the step-up
        assert said(customer, "yes") == ["That doesn't look like a 6-digit code.", CODE_FROM_EMAIL]
    assert said(customer, store.latest_code(customer.email))[0].startswith("Done: your account currency is now CHF")


def test_a_customer_who_needs_a_moment_is_asked_again_without_an_error(new_customer):
    customer = new_customer()
    said(customer, "convert account to business")
    said(customer, "Umbrella Corp")
    assert said(customer, "I have to look it up, hold on") == [
        "No rush, take your time.", QUESTIONS["registration_number"][0]]
    assert said(customer, "HRB 5555") == [QUESTIONS["vat_id"][0]]


def test_a_question_about_closing_at_the_code_question(new_customer):
    customer = new_customer()
    said(customer, "close account")
    said(customer, "yes")
    assert said(customer, "what happens with my invoices") == [
        "Nothing is deleted during the 14-day grace period. When it ends, the account is closed for "
        "good and all its users lose access.", CODE_FROM_EMAIL]


def test_whether_disabling_is_permanent_is_answered_at_its_confirmation(new_customer, store):
    customer = new_customer(members={"temp@example.com": "member"})
    said(customer, "kick temp@example.com off our account")
    assert said(customer, "is this permanent?") == [
        "It isn't permanent: you can invite them again later; disabling only removes their access.",
        "Disable temp@example.com? They will lose access to the account immediately."]


def test_a_question_about_existing_invoices_at_the_currency_confirmation(new_customer):
    customer = new_customer()
    said(customer, "pls change currency to usd")
    assert said(customer, "hold on is this going to change my existing invoices?") == [
        "Only prices and invoices from now on are in the new currency; invoices already issued keep theirs.",
        "Change your account currency to USD? Prices and invoices from now on will be in that currency."]
