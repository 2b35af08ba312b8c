"""Switching to a business account in a conversation."""

from __future__ import annotations

import re
from typing import Any, Dict, Optional, Text

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from accounts import business
from accounts.results import Refused, Result
from actions.account_store import call_domain
from actions.identity import Customer
from actions.operation_flow import CheckAction, SubmitAction, run_check
from actions.form_listening import is_question
from actions.step_up import StepUpFormValidation

REGISTRATION_NUMBER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ./-]{2,40}$")

# How customers name each detail when they correct it at the confirmation.
DETAIL_WORDS = {  # the more specific words first: "company address" is not the name
    "company_address": r"(?:registered |company(?:'s)? )?address|street",
    "vat_id": r"vat(?: id| number| no\.?| nr\.?)?|tax id",
    "registration_number": r"(?:company )?reg(?:istration)?(?:\.)?(?: number| no\.?| nr\.?| #)?|company number|hrb",
    "company_name": r"(?:company(?:'s)? )?(?:legal )?name",
}
_VALUE = (r"\s*(?:is|should be|should read|'s|=|:|must be|to|needs to be)?\s*(?:actually|really|in fact)?"
          r"\s*(?P<value>[^,].*?)(?:\s*,?\s*(?:not|instead of|rather than)\b.*)?\s*[.!]*$")
_NOT_THAT = re.compile(r"(?:it'?s|its|should be|is)\s+(?P<value>.+?)\s*,?\s+not\s+(?P<old>.+?)\s*[.!]*$",
                       re.IGNORECASE)


def corrected_details(text: str, current: Dict[str, Any]) -> Dict[str, str]:
    """The company details a correction names ("the name is actually Acme Rockets GmbH, not Ltd")."""
    for slot, words in DETAIL_WORDS.items():
        match = re.search(rf"\b(?:{words})\b{_VALUE}", text, re.IGNORECASE)
        if match and match.group("value").strip():
            return {slot: match.group("value").strip()}
    match = _NOT_THAT.search(text)
    if match:  # no detail named: the one whose current value holds what is "not" right
        old = match.group("old").strip().lower()
        for slot in DETAIL_WORDS:
            if old and old in str(current.get(slot) or "").lower():
                return {slot: match.group("value").strip()}
    return {}


class ActionCheckBusinessSwitch(CheckAction):
    """Is the switch possible (the FAQ's "grayed out" cases are refusals)?"""

    operation = "switch_to_business"
    doing = "switch your account to business"

    def name(self) -> Text:
        return "action_check_business_switch"

    async def check(self, customer: Customer) -> Optional[Refused]:
        return await run_check(business.check_switch_to_business, customer)

    def explain_allowed(self, customer: Customer, dispatcher: CollectingDispatcher) -> None:
        dispatcher.utter_message(text="I can switch your account to business for you. I'll need "
                                      "four company details; the payment method becomes wire transfer.")


def _text(value: Any, limit: int) -> Optional[str]:
    text = " ".join(str(value or "").split())
    return text if 2 <= len(text) <= limit else None


class ValidateBusinessForm(StepUpFormValidation):
    """Checks each company detail as it is given, and takes corrections at the confirmation."""

    own_intents = ["change_account_type"]

    def name(self) -> Text:
        return "validate_business_form"

    async def correction(self, text: str, dispatcher: CollectingDispatcher,
                         tracker: Tracker) -> Optional[Dict[Text, Any]]:
        if is_question(text) and "?" in text:
            return None
        details = corrected_details(text, {slot: tracker.get_slot(slot) for slot in DETAIL_WORDS})
        changed: Dict[Text, Any] = {}
        for slot, value in details.items():
            changed.update(await getattr(self, f"validate_{slot}")(value, dispatcher, tracker, {}))
        return changed or None

    async def validate_company_name(self, value: Any, dispatcher: CollectingDispatcher,
                                    tracker: Tracker, domain: DomainDict) -> Dict[Text, Any]:
        name = _text(value, business.MAX_LENGTHS["company_name"])
        if name is None:
            dispatcher.utter_message(text="Please give the company's legal name.")
        return {"company_name": name}

    async def validate_registration_number(self, value: Any, dispatcher: CollectingDispatcher,
                                           tracker: Tracker, domain: DomainDict) -> Dict[Text, Any]:
        number = " ".join(str(value or "").split())
        if not REGISTRATION_NUMBER.match(number):
            dispatcher.utter_message(text="That doesn't look like a company registration number "
                                          "(letters, digits, spaces, dots, slashes or dashes).")
            return {"registration_number": None}
        return {"registration_number": number}

    async def validate_vat_id(self, value: Any, dispatcher: CollectingDispatcher,
                              tracker: Tracker, domain: DomainDict) -> Dict[Text, Any]:
        valid, hint = business.check_vat_id(str(value or ""))
        if not valid:
            dispatcher.utter_message(text=f"That VAT ID isn't valid ({hint}). Please check it, "
                                          "for example DE123456789.")
            return {"vat_id": None}
        return {"vat_id": business.normalize_vat_id(str(value))}

    async def validate_company_address(self, value: Any, dispatcher: CollectingDispatcher,
                                       tracker: Tracker, domain: DomainDict) -> Dict[Text, Any]:
        address = _text(value, business.MAX_LENGTHS["company_address"])
        if address is None or len(address) < 8:
            dispatcher.utter_message(text="Please give the full registered address of the company.")
            return {"company_address": None}
        return {"company_address": address}


class ActionSwitchToBusiness(SubmitAction):
    """Switches the account after the customer confirmed the details."""

    operation = "switch_to_business"
    doing = "switch your account to business"
    form_slots = ["company_name", "registration_number", "vat_id", "company_address"]
    needs_step_up = True

    def name(self) -> Text:
        return "action_switch_to_business"

    async def perform(self, customer: Customer, tracker: Tracker, key: str) -> Result:
        return await call_domain(
            business.switch_to_business, customer.actor,
            company_name=tracker.get_slot("company_name"),
            registration_number=tracker.get_slot("registration_number"),
            vat_id=tracker.get_slot("vat_id"),
            company_address=tracker.get_slot("company_address"),
            idempotency_key=key, channel=customer.channel, require_step_up=True,
            step_up_conversation=tracker.sender_id,
        )
