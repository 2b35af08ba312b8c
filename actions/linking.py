"""Verifying a Slack, Telegram or widget user with a code sent to the account's email.

``action_check_link`` decides whether this chat can be linked (a channel whose
user ids the platform vouches for, and no identity yet). ``link_form`` asks
for the account's primary email (the answer is the same whether or not it
belongs to an account) and then for the code; accounts/channel_links.py sends
and checks it and stores the link, which expires after 90 days and can be
listed and revoked. The code never reaches the tracker store.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from accounts import channel_links
from accounts.results import Reason, Refused
from actions.account_store import call_domain
from actions.form_listening import ListeningFormValidation
from actions.identity import chat_identity, identify
from actions.members import extract_email
from actions.operation_flow import (
    ALLOWED,
    BLOCKED,
    OPERATION_CHECK,
    form_left,
    idempotency_key,
    operation_outcome,
)
from actions.step_up import code_in_text

OPERATION = "link_account"
LINK_EMAIL, LINK_CODE, LINKED_AS = "link_email", "link_code", "linked_as"
VERIFIED, FAILED = "verified", "failed"


class ActionCheckLink(Action):
    """Can this chat be linked to an account?"""

    def name(self) -> Text:
        return "action_check_link"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        customer = await identify(tracker)
        if customer is not None:
            dispatcher.utter_message(text=f"You're already verified as {customer.email}.")
            return [SlotSet(OPERATION_CHECK, BLOCKED)]
        if chat_identity(tracker) is None:
            dispatcher.utter_message(text="I can't verify you on this channel. Please open the "
                                          "chat from the portal while signed in.")
            return [SlotSet(OPERATION_CHECK, BLOCKED)]
        return [SlotSet(OPERATION_CHECK, ALLOWED)]


class ValidateLinkForm(ListeningFormValidation):
    """Sends the code for the address given, then checks the code."""

    own_intents = ["link_account"]

    def name(self) -> Text:
        return "validate_link_form"

    def value_in(self, slot: str, text: str, first_message: bool = False) -> Optional[str]:
        if slot == LINK_EMAIL:
            return extract_email(text)
        if slot == LINK_CODE:
            return code_in_text(text)
        return super().value_in(slot, text, first_message)

    async def resend_code(self, slot: str, dispatcher: CollectingDispatcher,
                          tracker: Tracker) -> Dict[Text, Any]:
        """Request the code again for the address given (the same answer whatever it is)."""
        identity, email = chat_identity(tracker), tracker.get_slot(LINK_EMAIL)
        if identity is None or not email:
            return {slot: None}
        await call_domain(channel_links.request_link, channel=identity[0],
                          channel_user_id=identity[1], email=email,
                          idempotency_key=idempotency_key(tracker, "link_request"))
        dispatcher.utter_message(text="I've asked for a new code; if the address belongs to an "
                                      "account it arrives within a minute, and the one before no "
                                      "longer works.")
        return {slot: None}

    async def validate_link_email(self, value: Any, dispatcher: CollectingDispatcher,
                                  tracker: Tracker, domain: DomainDict) -> Dict[Text, Any]:
        if value is None:  # not given yet (e.g. when the form starts)
            return {LINK_EMAIL: None}
        email = extract_email(str(value))
        identity = chat_identity(tracker)
        if email is None or identity is None:
            dispatcher.utter_message(text="That doesn't look like an email address. Which address "
                                          "is your account registered with?")
            return {LINK_EMAIL: None}
        result = await call_domain(channel_links.request_link, channel=identity[0],
                                   channel_user_id=identity[1], email=email,
                                   idempotency_key=idempotency_key(tracker, "link_request"))
        if isinstance(result, Refused):
            dispatcher.utter_message(text="That doesn't look like an email address I can use. "
                                          "Which address is your account registered with?")
            return {LINK_EMAIL: None}
        return {LINK_EMAIL: email}

    async def validate_link_code(self, value: Any, dispatcher: CollectingDispatcher,
                                 tracker: Tracker, domain: DomainDict) -> Dict[Text, Any]:
        if value is None:  # not given yet
            return {LINK_CODE: None}
        identity = chat_identity(tracker)
        if identity is None:
            return {LINK_CODE: FAILED}
        if code_in_text(str(value)) is None:  # words, not a code: not a wrong code either
            dispatcher.utter_message(text="That doesn't look like a 6-digit code.")
            return {LINK_CODE: None}
        result = await call_domain(channel_links.confirm_link, channel=identity[0],
                                   channel_user_id=identity[1],
                                   code=code_in_text(str(value)),
                                   idempotency_key=idempotency_key(tracker, "link_confirm"))
        if not isinstance(result, Refused):
            return {LINK_CODE: VERIFIED, LINKED_AS: result.member_email}
        if result.reason == Reason.CODE_INVALID:
            dispatcher.utter_message(text="That code isn't right. Please check it and try again.")
            return {LINK_CODE: None}
        return {LINK_CODE: FAILED, LINKED_AS: None}


class ActionFinishLink(Action):
    """Tells the customer whether they are verified now."""

    def name(self) -> Text:
        return "action_finish_link"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        linked_as = tracker.get_slot(LINKED_AS)
        reset = [SlotSet(LINK_CODE, None), SlotSet(LINK_EMAIL, None), SlotSet(OPERATION_CHECK, None)]
        left = await form_left(dispatcher, tracker, OPERATION, "verify you")
        if left is not None:
            return [*reset, *left]
        if tracker.get_slot(LINK_CODE) == VERIFIED and linked_as:
            dispatcher.utter_message(
                text=f"Thanks, you're verified as {linked_as} in this chat for the next 90 days "
                     "(you can ask support to remove it any time). What can I do for you?")
            return [*reset, operation_outcome(OPERATION, "performed")]
        dispatcher.utter_message(text="I couldn't verify you with that code. If the address is "
                                      "your account's primary one, ask me to verify you again for "
                                      "a new code, or wait a little if you tried several times.")
        return [*reset, SlotSet(LINKED_AS, None), operation_outcome(OPERATION, "refused", "code")]
