"""The question before every operation: the consequence, then "Shall I?"."""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.closing import closing_consequence, undo_question
from actions.form_listening import ListeningFormValidation
from actions.operation_flow import CONFIRMED, YES_NO_BUTTONS
from actions.wording import ROLE_NAMES


def confirmation_question(form: str, tracker: Tracker) -> str:
    """The consequence of the operation that ``form`` collected, as a yes/no question."""
    slot = tracker.get_slot
    if form == "close_account_form":
        return closing_consequence()
    if form == "undo_closure_form":
        return undo_question()
    if form == "currency_form":
        return (f"Change your account currency to {slot('currency')}? Prices and invoices from "
                "now on will be in that currency.")
    if form == "invite_form":
        return (f"Invite {slot('invite_email')} as {ROLE_NAMES.get(slot('invite_role'), 'a member')}? "
                "They'll get an email with a link to join your account.")
    if form == "disable_user_form":
        return (f"Disable {slot('disable_email')}? They will lose access to the account "
                "immediately.")
    if form == "business_form":
        return (f"Switch to a business account for {slot('company_name')} (registration "
                f"{slot('registration_number')}, VAT ID {slot('vat_id')}, {slot('company_address')})? "
                "The payment method becomes wire transfer.")
    return "Shall I go ahead?"


class ActionAskConfirmed(Action):
    """Asks for explicit confirmation after stating what will happen."""

    def name(self) -> Text:
        return "action_ask_confirmed"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        form = (tracker.active_loop or {}).get("name", "")
        dispatcher.utter_message(text=confirmation_question(form, tracker), buttons=YES_NO_BUTTONS)
        return []


KEEP_THE_ACCOUNT = re.compile(
    r"\b(keep|undo|don'?t close|do not close|stay open|cancel (the|my|its)? ?(closure|closing))", re.IGNORECASE)


class ValidateUndoClosureForm(ListeningFormValidation):
    """The undo question: "keep it" / "cancel the closure" mean yes; "never mind" leaves it."""

    own_intents = ["close_account"]

    def name(self) -> Text:
        return "validate_undo_closure_form"

    async def read_confirmation(self, value: Any, text: str, intent: Optional[str],
                                dispatcher: CollectingDispatcher, tracker: Tracker,
                                form_slots: List[str]) -> Optional[Dict[Text, Any]]:
        if not isinstance(value, bool) and KEEP_THE_ACCOUNT.search(text):
            return {CONFIRMED: True}
        return await super().read_confirmation(value, text, intent, dispatcher, tracker, form_slots)
