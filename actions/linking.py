"""Verifying a Slack, Telegram or widget user with a code sent to the account's email.

``action_check_link`` decides whether this chat can be linked (a channel whose
user ids the platform vouches for, and no identity yet). ``link_form`` asks
for the account's primary email (the answer is the same whether or not it
belongs to an account) and then for the code; accounts/channel_links.py sends
and checks it and stores the link, which expires after 90 days and can be
listed and revoked. The code never reaches the tracker store.
"""

from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from accounts import channel_links
from accounts.results import Reason, Refused
from actions.account_store import call_domain
from actions.identity import chat_identity, identify
from actions.members import extract_email
from actions.operation_flow import (
    ALLOWED,
    BLOCKED,
    OPERATION_CHECK,
    idempotency_key,
    operation_outcome,
)

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


class ValidateLinkForm(FormValidationAction):
    """Sends the code for the address given, then checks the code."""

    def name(self) -> Text:
        return "validate_link_form"

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
        result = await call_domain(channel_links.confirm_link, channel=identity[0],
                                   channel_user_id=identity[1],
                                   code="".join(str(value or "").split()),
                                   idempotency_key=idempotency_key(tracker, "link_confirm"))
        if not isinstance(result, Refused):
            return {LINK_CODE: VERIFIED, LINKED_AS: result.member_email}
        if result.reason == Reason.CODE_INVALID:
            dispatcher.utter_message(text="That code isn't right. Please check it and try again.")
            return {LINK_CODE: None}
        return {LINK_CODE: FAILED, LINKED_AS: None}


async def linked_outcome(tracker: Tracker) -> Dict[Text, Any]:
    """The ``last_operation`` of a link just made, naming the account and channel for the review console.

    Read back from the account store (the link itself), never from what the customer typed.
    """
    outcome = operation_outcome(OPERATION, "performed")
    customer = await identify(tracker)
    if customer is not None and customer.source == "channel_link":
        outcome["value"] = dict(outcome["value"], customer={"account_id": customer.account_id,
                                                            "channel": customer.channel})
    return outcome


class ActionFinishLink(Action):
    """Tells the customer whether they are verified now."""

    def name(self) -> Text:
        return "action_finish_link"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        linked_as = tracker.get_slot(LINKED_AS)
        reset = [SlotSet(LINK_CODE, None), SlotSet(LINK_EMAIL, None), SlotSet(OPERATION_CHECK, None)]
        if tracker.get_slot(LINK_CODE) == VERIFIED and linked_as:
            dispatcher.utter_message(
                text=f"Thanks, you're verified as {linked_as} in this chat for the next 90 days "
                     "(you can ask support to remove it any time). What can I do for you?")
            return [*reset, await linked_outcome(tracker)]
        dispatcher.utter_message(text="I couldn't verify you with that code. If the address is "
                                      "your account's primary one, ask me to verify you again for "
                                      "a new code, or wait a little if you tried several times.")
        return [*reset, SlotSet(LINKED_AS, None), operation_outcome(OPERATION, "refused", "code")]
