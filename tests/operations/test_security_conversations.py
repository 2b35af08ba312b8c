"""Issue #12's account-takeover chain and step-up verdicts, as conversations over REST.

A TFA-enabled owner (signed in with a portal token, like ``tfa@demo.example``)
asks to invite ``intruder@evil.example`` as an owner: the invitation now waits
for a code from the authenticator app, a typed "verified" is a wrong code, and
only the app's code sends it.
"""

from __future__ import annotations

import pyotp
import pytest

from tests.operations.conftest import Store

pytestmark = pytest.mark.slow


def wrong_totp(secret: str) -> str:
    current = pyotp.TOTP(secret).now()
    return "000000" if current != "000000" else "111111"


def test_inviting_a_new_owner_needs_the_authenticator_app(new_customer, store: Store):
    customer = new_customer()
    secret = store.enable_tfa(customer.account_id, customer.email)

    customer.says("I want to add a new user")
    customer.says("intruder@evil.example")
    assert "Invite intruder@evil.example as an owner?" in customer.says("owner")
    asked = customer.says("yes")

    assert "authenticator app" in asked
    assert "intruder@evil.example" not in store.members(customer.account_id)
    assert "member_invitation" not in store.notifications(customer.account_id)
    assert "doesn't look like a 6-digit code" in customer.says("verified")
    assert "isn't right" in customer.says(wrong_totp(secret))
    assert "intruder@evil.example" not in store.members(customer.account_id)

    assert "invited intruder@evil.example" in customer.says(pyotp.TOTP(secret).now())
    assert store.members(customer.account_id)["intruder@evil.example"] == ("owner", "invited")
    assert store.notifications(customer.account_id).count("member_invitation") == 1


def test_a_plain_member_is_invited_without_a_code(new_customer, store: Store):
    customer = new_customer()
    store.enable_tfa(customer.account_id, customer.email)
    customer.says("can u add my coworker to the account")
    customer.says("her email is carla@example.com")
    assert "Invite carla@example.com as a member?" in customer.says("just a normal user")
    assert "invited carla@example.com" in customer.says("yes")
    assert store.members(customer.account_id)["carla@example.com"] == ("member", "invited")


def test_typing_verified_at_the_step_up_prompt_is_answered_as_a_wrong_code(new_customer, store: Store):
    customer = new_customer()
    customer.says("change my currency")
    customer.says("USD")
    assert "emailed a 6-digit code" in customer.says("yes")
    reply = customer.says("verified")
    assert "doesn't look like a 6-digit code" in reply and "can't" not in reply
    assert store.account(customer.account_id).currency == "EUR"
    assert "now USD" in customer.steps_up(store)
