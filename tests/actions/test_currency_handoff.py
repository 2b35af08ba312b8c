"""A currency change blocked by payments is handed to a person at once (rasa-sdk style, real account store)."""

from __future__ import annotations

import sqlalchemy as sa

from accounts.models import SupportRequest
from actions.currency import ActionCheckCurrencyChange
from tests.actions.test_operation_actions import run, slot, store, tracker  # noqa: F401 - store is a fixture


def requests_of(store, account_id: int) -> list:
    with store.factory() as session:
        return list(session.execute(sa.select(SupportRequest).where(SupportRequest.account_id == account_id))
                    .scalars())


def test_payments_raise_a_support_request_at_once(store):
    account_id, email = store.create_customer(payment=True, balance="-5.00")
    events, text = run(ActionCheckCurrencyChange(), tracker(account_id, email, intent="change_currency"))
    assert "payments have already been made" in text and "reference SR-" in text
    [request] = requests_of(store, account_id)
    assert request.reason == "change_currency:payments_exist"
    assert request.context["support_offer"]["blocking"] == ["payments_exist", "negative_balance"]
    assert slot(events, "handoff_request_id") == request.id
    assert slot(events, "operation_check") == "blocked"


def test_a_negative_balance_alone_is_the_customers_to_settle(store):
    account_id, email = store.create_customer(balance="-5.00")
    events, text = run(ActionCheckCurrencyChange(), tracker(account_id, email, intent="change_currency"))
    assert "balance is negative" in text and "reference SR-" not in text
    assert requests_of(store, account_id) == []
    assert slot(events, "support_offer")["reason"] == "negative_balance"
