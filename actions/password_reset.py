"""Sending a password reset link in a conversation.

Anyone may ask. A verified customer's link goes to their own address; an
anonymous one is asked for the address they registered with, and gets the
same answer whether or not it belongs to an account (the domain decides, and
rate-limits per address).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from accounts import password_reset
from accounts.results import Refused
from actions.account_store import call_domain
from actions.form_listening import ListeningFormValidation
from actions.identity import identify
from actions.members import extract_email
from actions.operation_flow import (
    form_left,
    report_failure,
    idempotency_key,
    logger,
    operation_outcome,
)
from actions.wording import describe_refusal, describe_reset_sent, describe_success

OPERATION = "password_reset"


class ValidatePasswordResetForm(ListeningFormValidation):
    """Asks for the address only when the customer is not verified (or gave it already)."""

    prefillable = ["reset_email"]
    own_intents = ["forgot_password"]

    def name(self) -> Text:
        return "validate_password_reset_form"

    def value_in(self, slot: str, text: str, first_message: bool = False) -> Optional[str]:
        if slot == "reset_email":
            return extract_email(text)
        return super().value_in(slot, text, first_message)

    async def required_slots(self, domain_slots: List[Text], dispatcher: CollectingDispatcher,
                             tracker: Tracker, domain: DomainDict) -> List[Text]:
        return [] if await identify(tracker) else list(domain_slots)

    async def validate_reset_email(self, value: Any, dispatcher: CollectingDispatcher,
                                   tracker: Tracker, domain: DomainDict) -> Dict[Text, Any]:
        email = extract_email(str(value or ""))
        if email is None:
            dispatcher.utter_message(text="That doesn't look like an email address. Which address "
                                          "did you register with?")
        return {"reset_email": email}


class ActionSendPasswordReset(Action):
    """Requests the reset link and says what happens next."""

    def name(self) -> Text:
        return "action_send_password_reset"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        customer = await identify(tracker)
        email = customer.email if customer else tracker.get_slot("reset_email")
        reset = [SlotSet("reset_email", None)]
        left = await form_left(dispatcher, tracker, OPERATION, "send a reset link")
        if left is not None:
            return [*reset, *left]
        if not email:
            dispatcher.utter_message(response="utter_forgot_password")
            return reset
        try:
            result = await call_domain(password_reset.request_password_reset, email=email,
                                       idempotency_key=idempotency_key(tracker, OPERATION))
        except Exception:  # noqa: BLE001 - reported to the customer and logged
            logger.exception("password reset failed")
            return [*reset, *await report_failure(dispatcher, tracker, OPERATION)]
        if isinstance(result, Refused):
            dispatcher.utter_message(text=describe_refusal(result, "send a reset link"))
            return [*reset, operation_outcome(OPERATION, "refused", result.reason.value)]
        text = describe_reset_sent(result, email) if customer else describe_success(result)
        dispatcher.utter_message(text=text)
        return [*reset, operation_outcome(OPERATION, "performed")]
