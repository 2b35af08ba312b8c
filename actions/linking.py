"""Verifying a Slack, Telegram or widget user with a code sent to the account's email.

``action_check_link`` decides whether this chat can be linked (a channel whose
user ids the platform vouches for, and no identity yet). ``link_form`` asks
for the account's primary email (the answer is the same whether or not it
belongs to an account) and then for the code; accounts/channel_links.py sends
and checks it and stores the link, which expires after 90 days (12 hours on
the website widget) and can be listed and revoked. When the account's member
has TFA on, a right e-mailed code is not enough: the form then asks for
``link_app_code``, a code from the authenticator app (``link_stage`` is
``app_code``, a slot only these actions set). The codes never reach the
tracker store.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from accounts import channel_links
from accounts.results import ChannelLinks, Reason, Refused
from actions.account_store import account_deps, call_domain
from actions.form_listening import ListeningFormValidation
from actions.identity import chat_identity, identify, in_shared_channel
from actions.messages import DIRECT_MESSAGE_ONLY
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
LINK_APP_CODE, LINK_STAGE = "link_app_code", "link_stage"
VERIFIED, FAILED = "verified", "failed"
#: ``link_stage`` values: the app's code is due; linked; given up.
APP_CODE, LINKED = "app_code", "linked"


def link_lifetime(channel: str) -> str:
    """How long a new link of ``channel`` lasts, in words ("12 hours", "90 days")."""
    ttl = channel_links.link_ttl(account_deps().settings, channel)
    hours = int(ttl.total_seconds() // 3600)
    return f"{hours} hours" if hours < 48 else f"{hours // 24} days"


class ActionAskLinkAppCode(Action):
    """Asks a member with TFA for the authenticator app's code after the e-mailed one."""

    def name(self) -> Text:
        return "action_ask_link_app_code"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        dispatcher.utter_message(text="Thanks, that code is right. Your account has two-factor "
                                      "authentication, so please also enter the 6-digit code from "
                                      "your authenticator app.")
        return []


class ActionCheckLink(Action):
    """Can this chat be linked to an account?"""

    def name(self) -> Text:
        return "action_check_link"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        if in_shared_channel(tracker):
            dispatcher.utter_message(text=DIRECT_MESSAGE_ONLY)
            return [SlotSet(OPERATION_CHECK, BLOCKED)]
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

    async def required_slots(self, domain_slots: List[Text], dispatcher: CollectingDispatcher,
                             tracker: Tracker, domain: DomainDict) -> List[Text]:
        stage = tracker.get_slot(LINK_STAGE)
        if stage == APP_CODE:
            return [LINK_EMAIL, LINK_APP_CODE]
        if stage in (LINKED, FAILED):
            return [LINK_EMAIL]
        return [slot for slot in domain_slots if slot != LINK_APP_CODE]

    def value_in(self, slot: str, text: str, first_message: bool = False) -> Optional[str]:
        if slot == LINK_EMAIL:
            return extract_email(text)
        if slot in (LINK_CODE, LINK_APP_CODE):
            return code_in_text(text)
        return super().value_in(slot, text, first_message)

    async def resend_code(self, slot: str, dispatcher: CollectingDispatcher,
                          tracker: Tracker) -> Dict[Text, Any]:
        """Request the e-mailed code again for the address given (the same answer whatever it is)."""
        if slot == LINK_APP_CODE:
            dispatcher.utter_message(text="I don't send this code: it comes from your "
                                          "authenticator app, and changes every 30 seconds.")
            return {slot: None}
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
            return {LINK_CODE: None, LINK_STAGE: LINKED, LINKED_AS: result.member_email}
        if result.reason == Reason.APP_CODE_REQUIRED:
            return {LINK_CODE: None, LINK_STAGE: APP_CODE}
        if result.reason == Reason.CODE_INVALID:
            dispatcher.utter_message(text="That code isn't right. Please check it and try again.")
            return {LINK_CODE: None}
        return {LINK_CODE: None, LINK_STAGE: FAILED, LINKED_AS: None}

    async def validate_link_app_code(self, value: Any, dispatcher: CollectingDispatcher,
                                     tracker: Tracker, domain: DomainDict) -> Dict[Text, Any]:
        if value is None:  # not given yet
            return {LINK_APP_CODE: None}
        identity = chat_identity(tracker)
        if identity is None:
            return {LINK_APP_CODE: None, LINK_STAGE: FAILED}
        result = await call_domain(channel_links.confirm_link_app_code, channel=identity[0],
                                   channel_user_id=identity[1],
                                   code=code_in_text(str(value)) or "".join(str(value).split()),
                                   idempotency_key=idempotency_key(tracker, "link_confirm_app"))
        if not isinstance(result, Refused):
            return {LINK_APP_CODE: None, LINK_STAGE: LINKED, LINKED_AS: result.member_email}
        if result.reason == Reason.CODE_INVALID:
            dispatcher.utter_message(text="That code from your authenticator app isn't right. "
                                          "Please check it and try again.")
            return {LINK_APP_CODE: None}
        if result.reason == Reason.CODE_USED:
            dispatcher.utter_message(text="That code was already used. Please wait for the next "
                                          "code in your app and enter that one.")
            return {LINK_APP_CODE: None}
        return {LINK_APP_CODE: None, LINK_STAGE: FAILED, LINKED_AS: None}


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
        reset = [SlotSet(LINK_CODE, None), SlotSet(LINK_EMAIL, None), SlotSet(OPERATION_CHECK, None),
                 SlotSet(LINK_APP_CODE, None), SlotSet(LINK_STAGE, None)]
        left = await form_left(dispatcher, tracker, OPERATION, "verify you")
        if left is not None:
            return [*reset, *left]
        identity = chat_identity(tracker)
        if tracker.get_slot(LINK_STAGE) == LINKED and linked_as and identity is not None:
            dispatcher.utter_message(
                text=f"Thanks, you're verified as {linked_as} in this chat for the next "
                     f"{link_lifetime(identity[0])} (ask me \"which chats are linked?\" to see or "
                     "remove links any time). What can I do for you?")
            return [*reset, await linked_outcome(tracker)]
        dispatcher.utter_message(text="I couldn't verify you with that code. If the address is "
                                      "your account's primary one, ask me to verify you again for "
                                      "a new code, or wait a little if you tried several times.")
        return [*reset, SlotSet(LINKED_AS, None), operation_outcome(OPERATION, "refused", "code")]


#: Words customers use for each channel ("unlink telegram", "the website chat").
CHANNEL_WORDS = {
    "slack": "slack", "telegram": "telegram", "tg": "telegram",
    "website": "socketio", "widget": "socketio", "web": "socketio", "browser": "socketio",
}
CHANNEL_TITLES = {"slack": "Slack", "telegram": "Telegram", "socketio": "the website chat"}


def named_channel(text: str, *, this_chat: Optional[str]) -> Optional[str]:
    """The channel a message names ("unlink telegram" -> telegram; "this chat" -> this one), or None."""
    lowered = (text or "").lower()
    for word in re.findall(r"[a-z]+", lowered):
        if word in CHANNEL_WORDS:
            return CHANNEL_WORDS[word]
    if "this chat" in lowered or "this one" in lowered:
        return this_chat
    return None


def _title(channel: str) -> str:
    return CHANNEL_TITLES.get(channel, channel)


async def _visible_links(tracker: Tracker, dispatcher: CollectingDispatcher) -> Optional[ChannelLinks]:
    customer = await identify(tracker)
    if customer is None:
        dispatcher.utter_message(text="I can only show or remove linked chats once I know it's you: "
                                      "open the chat from the portal while signed in, or ask me to "
                                      "verify you.")
        return None
    listed = await call_domain(channel_links.list_links, customer.actor)
    if isinstance(listed, Refused):
        dispatcher.utter_message(text="I can't show the linked chats of this account.")
        return None
    return listed


class ActionListLinks(Action):
    """Lists the chats linked to the account that this customer may see."""

    def name(self) -> Text:
        return "action_list_links"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        listed = await _visible_links(tracker, dispatcher)
        if listed is None:
            return []
        if not listed.links:
            dispatcher.utter_message(text="No chats are linked to your account.")
            return []
        lines = [f"- {_title(link.channel)}, acting as {link.member_email}, until "
                 f"{link.expires_at:%d %B %Y %H:%M} UTC" for link in listed.links]
        channels = sorted({link.channel for link in listed.links})
        dispatcher.utter_message(
            text="These chats are linked to your account:\n" + "\n".join(lines)
                 + "\nTo remove one, say for example \"unlink telegram\".",
            buttons=[{"title": f"Unlink {_title(c)}", "payload": f"unlink {c if c != 'socketio' else 'website'}"}
                     for c in channels])
        return []


class ActionUnlinkChannel(Action):
    """Removes the links of the channel the customer names (those they may see)."""

    def name(self) -> Text:
        return "action_unlink_channel"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        listed = await _visible_links(tracker, dispatcher)
        if listed is None:
            return []
        identity = chat_identity(tracker)
        channel = named_channel(tracker.latest_message.get("text", ""),
                                this_chat=identity[0] if identity else None)
        present = sorted({link.channel for link in listed.links})
        if channel is None and len(present) == 1:
            channel = present[0]
        if channel is None:
            dispatcher.utter_message(
                text="Which chat should I unlink?" if present else "No chats are linked to your account.",
                buttons=[{"title": _title(c), "payload": f"unlink {c if c != 'socketio' else 'website'}"}
                         for c in present])
            return []
        doomed = [link for link in listed.links if link.channel == channel]
        if not doomed:
            dispatcher.utter_message(text=f"No {_title(channel)} chat is linked to your account.")
            return []
        customer = await identify(tracker)
        revoked = 0
        for link in doomed:
            result = await call_domain(channel_links.revoke_link, customer.actor, link.link_id,
                                       idempotency_key=idempotency_key(tracker, f"unlink:{link.link_id}"))
            revoked += 0 if isinstance(result, Refused) else 1
        dispatcher.utter_message(
            text=f"Done: I removed {revoked} {_title(channel)} link{'s' if revoked != 1 else ''}. "
                 "That chat can no longer act for your account.")
        return [operation_outcome("unlink_channel", "performed")]
