"""Changing the account currency in a conversation.

Payments already made on the account block a currency change, and only staff
can resolve that: the assistant then raises a support request and hands the
customer over at once (as for the grayed-out business switch). A negative
balance alone is the customer's to settle, so it is only explained, with the
offer of a person.
"""

from __future__ import annotations

import re
from typing import Any, Dict, Optional, Text

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from accounts import currency
from accounts.results import Refused, Result
from actions.account_store import call_domain
from actions.identity import Customer, identify
from actions.operation_flow import CheckAction, SubmitAction, run_check
from actions.step_up import StepUpFormValidation

# Names customers use for the supported currencies.
CURRENCY_NAMES = {
    "euro": "EUR", "euros": "EUR", "€": "EUR",
    "dollar": "USD", "dollars": "USD", "us dollar": "USD", "us dollars": "USD", "$": "USD",
    "pound": "GBP", "pounds": "GBP", "sterling": "GBP", "£": "GBP",
    "swiss franc": "CHF", "swiss francs": "CHF", "franc": "CHF", "francs": "CHF",
    "zloty": "PLN", "zlotys": "PLN", "koruna": "CZK", "czech crown": "CZK",
    "swedish krona": "SEK", "norwegian krone": "NOK", "danish krone": "DKK",
    "canadian dollar": "CAD", "canadian dollars": "CAD",
    "australian dollar": "AUD", "australian dollars": "AUD", "yen": "JPY",
}


def parse_currency(text: str) -> Optional[str]:
    """The ISO 4217 code a customer means ("usd", "to euros", "£"), or None."""
    lowered = text.strip().lower()
    for name in sorted(CURRENCY_NAMES, key=len, reverse=True):
        if re.search(rf"(?<![a-z]){re.escape(name)}(?![a-z])", lowered):
            return CURRENCY_NAMES[name]
    codes = [c for c in re.findall(r"\b[a-zA-Z]{3}\b", text) if c.upper() in currency.SUPPORTED_CURRENCIES]
    return codes[-1].upper() if codes else None


class ActionCheckCurrencyChange(CheckAction):
    """Can this customer change the currency now?"""

    operation = "change_currency"
    doing = "change the currency"

    def name(self) -> Text:
        return "action_check_currency_change"

    async def check(self, customer: Customer) -> Optional[Refused]:
        return await run_check(currency.check_currency_change, customer)


class ValidateCurrencyForm(StepUpFormValidation):
    """Accepts a supported currency different from the current one."""

    def name(self) -> Text:
        return "validate_currency_form"

    async def validate_currency(self, value: Any, dispatcher: CollectingDispatcher,
                                tracker: Tracker, domain: DomainDict) -> Dict[Text, Any]:
        code = parse_currency(str(value or ""))
        if code is None:
            dispatcher.utter_message(
                text="Sorry, I didn't recognise that currency. Please give its three-letter code, "
                     "one of: " + ", ".join(currency.SUPPORTED_CURRENCIES) + ".")
            return {"currency": None}
        customer = await identify(tracker)
        current = await call_domain(currency.check_currency_change, customer.actor) if customer else None
        if isinstance(current, str) and current == code:
            dispatcher.utter_message(text=f"Your account already uses {code}. Which currency "
                                          "would you like instead?")
            return {"currency": None}
        return {"currency": code}


class ActionChangeCurrency(SubmitAction):
    """Changes the currency after the customer confirmed."""

    operation = "change_currency"
    doing = "change the currency"
    form_slots = ["currency"]
    needs_step_up = True

    def name(self) -> Text:
        return "action_change_currency"

    async def perform(self, customer: Customer, tracker: Tracker, key: str) -> Result:
        return await call_domain(currency.change_currency, customer.actor,
                                 currency=tracker.get_slot("currency"), idempotency_key=key,
                                 require_step_up=True)
