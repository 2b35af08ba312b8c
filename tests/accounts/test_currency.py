"""Tests of accounts.currency.change_currency."""

from __future__ import annotations

import pytest

from accounts import currency
from accounts.models import Account
from accounts.results import CurrencyChanged, Reason


@pytest.mark.parametrize("role", ["owner", "admin"])
def test_owner_or_admin_changes_currency(world, role):
    acc = world.account(members=[("admin@example.com", "admin", "active")])
    email = "owner@example.com" if role == "owner" else "admin@example.com"

    result = currency.change_currency(world.deps, world.actor(acc, email), currency=" usd ", idempotency_key="k")

    assert result == CurrencyChanged(account_id=acc, old_currency="EUR", new_currency="USD")
    assert world.get(Account, acc).currency == "USD"
    [audit] = world.audits()
    assert audit.details == {"old_currency": "EUR", "new_currency": "USD"}
    [note] = world.outbox()
    assert (note.kind, note.recipient_email, note.payload["new_currency"]) == (
        "currency_changed", "owner@example.com", "USD",
    )


def test_unsupported_currency_lists_supported_ones(world):
    acc = world.account()
    before = world.snapshot()
    result = currency.change_currency(world.deps, world.actor(acc), currency="XYZ", idempotency_key="k")
    world.assert_refused(before, result, "unsupported_currency")
    assert result.details["supported_currencies"] == list(currency.SUPPORTED_CURRENCIES)
    assert {"EUR", "USD", "GBP", "CHF", "PLN", "CZK", "SEK", "NOK", "DKK", "CAD", "AUD", "JPY"} == set(
        currency.SUPPORTED_CURRENCIES
    )


def test_same_currency(world):
    acc = world.account(currency="GBP")
    before = world.snapshot()
    result = currency.change_currency(world.deps, world.actor(acc), currency="gbp", idempotency_key="k")
    world.assert_refused(before, result, "same_currency")


def test_any_past_payment_blocks(world):
    acc = world.account(payments=["10.00"])
    before = world.snapshot()
    result = currency.change_currency(world.deps, world.actor(acc), currency="USD", idempotency_key="k")
    world.assert_refused(before, result, "payments_exist")
    assert result.blocking == (Reason.PAYMENTS_EXIST,)
    assert result.details["payment_count"] == 1


def test_negative_balance_blocks(world):
    acc = world.account(balance="-0.01")
    before = world.snapshot()
    result = currency.change_currency(world.deps, world.actor(acc), currency="USD", idempotency_key="k")
    world.assert_refused(before, result, "negative_balance")
    assert result.to_dict()["details"]["balance"] == "-0.01"


def test_both_blocking_conditions_are_named(world):
    acc = world.account(balance="-5.00", payments=["1.00", "2.00"])
    before = world.snapshot()
    result = currency.change_currency(world.deps, world.actor(acc), currency="USD", idempotency_key="k")
    world.assert_refused(before, result, "payments_exist")
    assert result.blocking == (Reason.PAYMENTS_EXIST, Reason.NEGATIVE_BALANCE)
    assert result.details["payment_count"] == 2


def test_positive_balance_without_payments_is_allowed(world):
    acc = world.account(balance="3.00")
    assert currency.change_currency(world.deps, world.actor(acc), currency="CHF", idempotency_key="k").ok


@pytest.mark.parametrize(
    "email, members",
    [
        ("member@example.com", [("member@example.com", "member", "active")]),
        ("admin@example.com", [("admin@example.com", "admin", "disabled")]),
    ],
)
def test_members_and_disabled_admins_may_not(world, email, members):
    acc = world.account(members=members)
    before = world.snapshot()
    result = currency.change_currency(world.deps, world.actor(acc, email), currency="USD", idempotency_key="k")
    world.assert_refused(before, result, "not_permitted")
    assert result.details["required_roles"] == ["owner", "admin"]


@pytest.mark.parametrize("status", ["closing", "closed"])
def test_account_must_be_active(world, status):
    acc = world.account(status=status)
    before = world.snapshot()
    result = currency.change_currency(world.deps, world.actor(acc), currency="USD", idempotency_key="k")
    world.assert_refused(before, result, "account_not_active")


def test_idempotent_retry_and_key_reuse(world):
    acc = world.account()
    first = currency.change_currency(world.deps, world.actor(acc), currency="USD", idempotency_key="k")
    again = currency.change_currency(world.deps, world.actor(acc), currency="USD", idempotency_key="k")
    other = currency.change_currency(world.deps, world.actor(acc), currency="GBP", idempotency_key="k")

    assert again == first
    assert other.reason == Reason.IDEMPOTENCY_KEY_REUSED
    assert world.get(Account, acc).currency == "USD"
    assert len(world.audits(outcome="succeeded")) == 1 and len(world.outbox()) == 1


def test_all_or_nothing(world):
    acc = world.account()
    before = world.snapshot(exclude=())
    with pytest.raises(Exception):
        currency.change_currency(world.broken_deps(), world.actor(acc), currency="USD", idempotency_key="k")
    world.assert_nothing_written(before)
    assert world.get(Account, acc).currency == "EUR"
