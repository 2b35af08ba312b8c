"""Changing the account currency in a conversation.

Payments already made on the account block a currency change, and only staff
can resolve that: the assistant then raises a support request and hands the
customer over at once (as for the grayed-out business switch). A negative
balance alone is the customer's to settle, so it is only explained, with the
offer of a person.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from accounts import currency
from accounts.results import Refused, Result
from actions.account_store import call_domain
from actions.identity import Customer, identify
from actions.operation_flow import CheckAction, SubmitAction, run_check
from actions.form_listening import is_question
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


# The names above, longest first so "us dollars" wins over "dollars".
CURRENCY_NAME_IN_TEXT = re.compile(
    r"(?<![a-z])(" + "|".join(re.escape(name) for name in sorted(CURRENCY_NAMES, key=len, reverse=True))
    + r")(?![a-z])")


def _mentions(text: str) -> List[tuple]:
    """(position, code) of every currency named in ``text``."""
    lowered = text.lower()
    found = [(match.start(), match.end(), CURRENCY_NAMES[match.group(0)])
             for match in CURRENCY_NAME_IN_TEXT.finditer(lowered)]
    for match in re.finditer(r"\b[a-zA-Z]{3}\b", text):
        if match.group(0).upper() in currency.SUPPORTED_CURRENCIES and (
                match.group(0).isupper() or match.group(0).lower() not in COMMON_WORDS):
            found.append((match.start(), match.end(), match.group(0).upper()))
    # "us dollars" also contains "dollars": keep the longest name at each place
    found.sort(key=lambda m: (m[0], -(m[1] - m[0])))
    kept = [m for i, m in enumerate(found) if not any(o[0] <= m[0] and m[1] <= o[1] and o != m
                                                        for o in found[:i])]
    return [(start, code) for start, _end, code in kept]


#: Three-letter words that are also currency codes only when written in capitals.
COMMON_WORDS = {"all", "top", "try", "mad", "cup", "bob"}
TARGET = re.compile(r"\b(?:to|into|in(?=\s+(?:us|euros?|dollars?|pounds?|francs?|[A-Z]{3}\b)))\s+",
                    re.IGNORECASE)


def parse_currency(text: str) -> Optional[str]:
    """The ISO 4217 code a customer means ("usd", "from euros to dollars", "£"), or None.

    The currency after "to"/"into" wins, else the last one named.
    """
    mentions = _mentions(text or "")
    if not mentions:
        return None
    targets = [m.end() for m in TARGET.finditer(text)]
    after_to = [code for start, code in mentions if start in targets]
    return after_to[-1] if after_to else mentions[-1][1]


def currency_asked_for(text: str) -> Optional[str]:
    """What a first message asks to switch to: a code, the words after "to", or None."""
    code = parse_currency(text)
    if code is not None:
        return code
    match = re.search(r"\b(?:to|into)\s+([a-z]{3,20})\s*(?:please|pls|now|instead)?\W*$", text or "",
                      re.IGNORECASE)
    return match.group(1) if match and match.group(1).lower() not in ("business", "it", "that") else None


class ActionCheckCurrencyChange(CheckAction):
    """Can this customer change the currency now?"""

    operation = "change_currency"
    doing = "change the currency"

    def name(self) -> Text:
        return "action_check_currency_change"

    async def check(self, customer: Customer) -> Optional[Refused]:
        return await run_check(currency.check_currency_change, customer)


class ValidateCurrencyForm(StepUpFormValidation):
    """Accepts a supported currency different from the current one, also from the first message."""

    prefillable = ["currency"]
    own_intents = ["change_currency"]

    def name(self) -> Text:
        return "validate_currency_form"

    def value_in(self, slot: str, text: str, first_message: bool = False) -> Optional[str]:
        if slot == "currency":
            return currency_asked_for(text) if first_message else parse_currency(text)
        return super().value_in(slot, text, first_message)

    async def correction(self, text: str, dispatcher: CollectingDispatcher,
                         tracker: Tracker) -> Optional[Dict[Text, Any]]:
        """Another currency at the confirmation ("actually make it pounds")."""
        code = parse_currency(text)
        if code and code != tracker.get_slot("currency") and not is_question(text):
            return await self.validate_currency(code, dispatcher, tracker, {})
        return None

    async def validate_currency(self, value: Any, dispatcher: CollectingDispatcher,
                                tracker: Tracker, domain: DomainDict) -> Dict[Text, Any]:
        code = parse_currency(str(value or ""))
        if code is None:
            dispatcher.utter_message(
                text=f"Sorry, I didn't recognise \"{str(value)[:40]}\" as a currency. We support "
                     + ", ".join(currency.SUPPORTED_CURRENCIES) + ".")
            return {"currency": None}
        customer = await identify(tracker)
        current = await call_domain(currency.check_currency_change, customer.actor) if customer else None
        if isinstance(current, str) and current == code:
            dispatcher.utter_message(text=f"Your account already uses {code}.")
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
                                 require_step_up=True, step_up_conversation=tracker.sender_id)
