"""A currency change blocked by payments offers a person; nothing is filed without a yes (real account store)."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from rasa_sdk.executor import CollectingDispatcher

from accounts.models import SupportRequest
from actions.currency import ActionCheckCurrencyChange
from tests.actions.test_operation_actions import slot, store, tracker  # noqa: F401 - store is a fixture


def requests_of(store, account_id: int) -> list:
    with store.factory() as session:
        return list(session.execute(sa.select(SupportRequest).where(SupportRequest.account_id == account_id))
                    .scalars())


def test_payments_offer_a_person_but_file_nothing_without_consent(store):
    account_id, email = store.create_customer(payment=True, balance="-5.00")
    dispatcher = CollectingDispatcher()
    events = asyncio.run(ActionCheckCurrencyChange().run(
        dispatcher, tracker(account_id, email, intent="change_currency"), {}))
    [message] = dispatcher.messages
    assert "payments have already been made" in message["text"]
    assert message["text"].endswith("Only our support team can do that for you: shall I pass it on to them?")
    assert [b["payload"] for b in message["buttons"]] == ["/human_handoff", "/deny"]
    assert requests_of(store, account_id) == []
    assert slot(events, "support_offer")["blocking"] == ["payments_exist", "negative_balance"]
    assert slot(events, "operation_check") == "blocked"


def test_a_negative_balance_alone_is_the_customers_to_settle(store):
    account_id, email = store.create_customer(balance="-5.00")
    dispatcher = CollectingDispatcher()
    events = asyncio.run(ActionCheckCurrencyChange().run(
        dispatcher, tracker(account_id, email, intent="change_currency"), {}))
    [message] = dispatcher.messages
    assert message["text"] == ("I can't change the currency right now because the balance is negative "
                               "(-5.00 EUR). You can settle the balance in the portal's billing section, "
                               "then ask me again.")
    assert not message.get("buttons")
    assert requests_of(store, account_id) == []
    assert slot(events, "support_offer")["reason"] == "negative_balance"
