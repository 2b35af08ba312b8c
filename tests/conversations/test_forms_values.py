"""Values where customers put them: in sentences and in the first message; checks before codes.

The forms take an address, a role, a currency, a user, a code or a recovery
code out of whatever the customer wrote, skip the questions the first message
already answered, refuse what can be refused before any code is sent, and keep
the form when the code limit is reached.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pyotp
import pytest
import sqlalchemy as sa

from accounts import step_up
from accounts.db import write_session
from accounts.deps import Actor, Deps
from accounts.models import VerificationCode
from accounts.settings import Settings
from actions.questions import QUESTIONS
from actions.step_up import CODE_FROM_EMAIL
from tests.conversations.conftest import codes_sent, said
from tests.operations.conftest import Customer

pytestmark = pytest.mark.slow

DISABLE_QUESTION = "Which user should I disable? They lose access to the account at once."


# --- the first message already says it (#14 item 3) -------------------------------------


def test_invite_with_address_and_role_in_the_first_message(new_customer, store):
    customer = new_customer()
    assert said(customer, "invite colleague@example.com as an admin") == [
        "Invite colleague@example.com as an admin? They'll get an email with a link to join your account."]
    assert "emailed a 6-digit code" in said(customer, "yes pls")[-1]  # an admin needs a step-up
    assert "colleague@example.com" not in store.members(customer.account_id)
    said(customer, f"code is {store.latest_code(customer.email)}")
    assert store.members(customer.account_id)["colleague@example.com"] == ("admin", "invited")


def test_invite_with_only_the_address_asks_only_the_role(new_customer):
    customer = new_customer()
    assert said(customer, "could you add bob.smith@example.com to our account") == [QUESTIONS["invite_role"][0]]


def test_a_malformed_address_in_the_first_message_is_asked_again_once_with_the_reason(new_customer):
    customer = new_customer()
    assert said(customer, "invite bob@localhost as an admin") == [
        "\"bob@localhost\" doesn't look like an email address.", QUESTIONS["invite_email"][0]]
    assert said(customer, "oops bob@example.com") == [
        "Invite bob@example.com as an admin? They'll get an email with a link to join your account."]


def test_currency_named_in_the_first_message(new_customer, store):
    customer = new_customer()
    assert said(customer, "switch my currency to US dollars") == [
        "Change your account currency to USD? Prices and invoices from now on will be in that currency."]


def test_an_unknown_currency_in_the_first_message_is_asked_again_once_with_the_reason(new_customer):
    customer = new_customer()
    assert said(customer, "change the currency to bitcoin") == [
        "Sorry, I didn't recognise \"bitcoin\" as a currency. We support EUR, USD, GBP, CHF, PLN, CZK, "
        "SEK, NOK, DKK, CAD, AUD, JPY.",
        QUESTIONS["currency"][0]]


def test_the_user_to_remove_named_in_the_first_message(new_customer, store):
    customer = new_customer(members={"former.staff@example.com": "member"})
    assert said(customer, "remove former.staff@example.com") == [
        "Disable former.staff@example.com? They will lose access to the account immediately."]
    said(customer, "yes")
    assert said(customer, store.latest_code(customer.email))[0].startswith(
        "Done: former.staff@example.com is disabled")


def test_a_forgotten_password_with_the_address_in_the_first_message(assistant):
    replies = [r["text"] for r in assistant.say(
        f"anon-{uuid.uuid4().hex}", "forgot my password, my email is someone@nowhere.example")]
    assert len(replies) == 1 and replies[0].startswith("If that address belongs to an account, a password reset")


# --- values inside sentences -----------------------------------------------------------


def test_an_address_and_a_role_inside_sentences(new_customer):
    customer = new_customer()
    said(customer, "i need to give my assistant access")
    assert said(customer, "sure, it's maria.lopez@example.com thx") == [QUESTIONS["invite_role"][0]]
    assert said(customer, "make her an admin i guess") == [
        "Invite maria.lopez@example.com as an admin? They'll get an email with a link to join your account."]


def test_an_authenticator_code_inside_a_sentence(new_customer, store):
    customer = new_customer()
    secret = store.enable_tfa(customer.account_id, customer.email)
    said(customer, "change currency to gbp")
    assert said(customer, "yes") == ["To confirm it's you, please enter the 6-digit code from your "
                                     "authenticator app."]
    code = pyotp.TOTP(secret).now()
    reply = said(customer, f"my code is {code[:3]} {code[3:]}")
    assert reply[0].startswith("Done: your account currency is now GBP")


def test_recovery_code_and_emailed_code_inside_sentences(demo_customer, store):
    customer = demo_customer("tfa@demo.example")
    said(customer, "lost my 2fa app, new phone")
    assert said(customer, "ok found them: demo recovery 03") == [QUESTIONS["email_code"][0]]
    reply = said(customer, f"the email says {store.latest_code(customer.email)}")
    assert reply[0].startswith("Done: your old authenticator app no longer works")


def test_the_user_to_remove_inside_a_sentence(new_customer, store):
    customer = new_customer(members={"dave@example.com": "member"})
    said(customer, "i need to remove someone")
    assert said(customer, "the one to go is dave@example.com, he left") == [
        "Disable dave@example.com? They will lose access to the account immediately."]


# --- checks before codes ---------------------------------------------------------------


def _admin_of(store, assistant, members):
    account_id, _owner = store.create_customer(members=members)
    return Customer(assistant, account_id, "admin@example.com", f"conv-{uuid.uuid4().hex}")


def test_an_admin_is_offered_only_users_they_may_disable(assistant, store):
    admin = _admin_of(store, assistant, {"admin@example.com": "admin", "kim@example.com": "member"})
    replies = admin.say("remove a user")
    assert [b["payload"] for r in replies for b in r.get("buttons", [])] == ["kim@example.com"]


def test_an_admin_naming_the_owner_is_refused_before_any_code(assistant, store):
    admin = _admin_of(store, assistant, {"admin@example.com": "admin", "kim@example.com": "member"})
    owner = next(email for email, (role, _) in store.members(admin.account_id).items() if role == "owner")
    said(admin, "i have to take someone off the account")
    assert said(admin, f"{owner} please") == [
        "Admins can't disable an owner; an owner has to do that.", DISABLE_QUESTION]
    assert codes_sent(store, admin.email) == 0
    assert store.members(admin.account_id)[owner] == ("owner", "active")


def test_a_member_asking_to_remove_someone_is_refused_before_any_question(assistant, store):
    account_id, owner = store.create_customer(members={"mia@example.com": "member"})
    member = Customer(assistant, account_id, "mia@example.com", f"conv-{uuid.uuid4().hex}")
    reply = said(member, f"pls remove {owner} from the account")
    assert reply[0] == "Only account owners or admins can do that, and your sign-in doesn't have that role."
    assert DISABLE_QUESTION not in reply
    assert codes_sent(store, member.email) == 0
    assert store.members(account_id)[owner] == ("owner", "active")


def test_disabling_yourself_is_refused_before_any_code(new_customer, store):
    customer = new_customer(members={"kim@example.com": "member"})
    said(customer, "remove a user")
    assert said(customer, f"me, {customer.email}") == ["You can't disable your own access.", DISABLE_QUESTION]
    assert codes_sent(store, customer.email) == 0


# --- the code limit --------------------------------------------------------------------


def test_the_code_limit_is_per_operation(new_customer, store):
    customer = new_customer()
    said(customer, "close my account")
    said(customer, "yes")
    said(customer, "didnt get it, resend pls")
    said(customer, "still nothing, send another one")
    assert codes_sent(store, customer.email) == 3
    reply = said(customer, "resend it again")
    assert reply[0] == ("I can't send another code yet: too many were sent in the last few minutes. "
                        "Please try again in 10 minutes; the last code I sent still works.")
    assert said(customer, "forget it")[0].startswith("OK, I've stopped there")
    said(customer, "change my currency to CHF")
    assert "emailed a 6-digit code" in said(customer, "yes")[-1]
    assert codes_sent(store, customer.email) == 4


def test_a_limited_customer_keeps_the_business_details_and_goes_on_later(new_customer, store):
    customer = new_customer()
    deps = Deps(session_factory=store.factory, settings=Settings.from_env({}))
    for n in range(3):  # three codes for this operation were sent a moment ago, elsewhere
        assert step_up.start_step_up(deps, Actor(customer.account_id, customer.email), "switch_to_business",
                                     idempotency_key=f"earlier-{n}-{uuid.uuid4().hex}").ok
    said(customer, "switch to business")
    for detail in ("Acme Rockets GmbH", "HRB 123456", "DE123456789", "Hauptstrasse 1, 10115 Berlin"):
        said(customer, detail)
    reply = said(customer, "yes")
    assert reply == ["I can't send you a code right now: too many were sent in the last few minutes. "
                     "I've kept everything you told me; in 10 minutes say \"send the code\" and we'll go "
                     "on (or \"cancel\" to stop)."]
    # ten minutes later (the earlier codes are older than the limit's window)
    with write_session(store.factory) as session:
        for code in session.execute(sa.select(VerificationCode).where(
                VerificationCode.account_id == customer.account_id)).scalars():
            code.created_at -= dt.timedelta(minutes=11)
    assert said(customer, "ok send the code") == [
        "I've emailed you a 6-digit code now (it expires in 10 minutes).", CODE_FROM_EMAIL]
    assert said(customer, store.latest_code(customer.email))[0].startswith(
        "Done: your account is now a business account for Acme Rockets GmbH")
    assert store.account(customer.account_id).vat_id == "DE123456789"


def test_a_role_described_by_what_they_may_do(new_customer):
    customer = new_customer()
    said(customer, "need to add an employee")
    said(customer, "lisa@company.com")
    assert said(customer, "she should be able to manage users") == [
        "Invite lisa@company.com as an admin? They'll get an email with a link to join your account."]
