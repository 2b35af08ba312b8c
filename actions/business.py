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
from actions.step_up import StepUpFormValidation

REGISTRATION_NUMBER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ./-]{2,40}$")


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
    """Checks each company detail as it is given."""

    def name(self) -> Text:
        return "validate_business_form"

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
        )
