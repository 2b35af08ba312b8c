"""Questions about the account's state, and undo, answered from the account store.

"Is my account still going to be closed?", "what's my currency?", "which
services are still active?", "which invoice?", "how much do I owe?" are read
through :mod:`accounts.lookups` and never start an operation. "Undo that",
"cancel the closure", "I want to keep it" work in every state and say plainly
when there is nothing to undo.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from accounts import closing, lookups
from accounts.lookups import AccountState
from accounts.results import Refused
from actions.account_store import call_domain
from actions.conversation_state import (
    LAST_OPERATION_SLOT,
    SUPPORT_OFFER_SLOT,
    TOPIC_KEY,
    filed_request_id,
    last_topic,
    set_aside_confirmation,
)
from actions.identity import identify
from actions.operation_flow import FAILURE_TEXT, idempotency_key, operation_outcome
from actions.wording import day, describe_refusal, describe_success, money

logger = logging.getLogger(__name__)

CLOSING, CURRENCY, SERVICES, INVOICES, OWED, KIND, REFERENCE, OVERVIEW = (
    "closing", "currency", "services", "invoices", "owed", "kind", "reference", "overview")

#: Words that name what a state question is about, checked in this order.
SUBJECT_WORDS = [
    (REFERENCE, r"\b(reference|ticket|case number|sr-\d+)"),
    (CURRENCY, r"curr?enc"),
    (OWED, r"\bowe|balance|outstanding|how much"),
    (INVOICES, r"invoice|\bbills?\b|unpaid"),
    (SERVICES, r"servi[cs]|running"),
    (CLOSING, r"clos|shut|delet|cancel"),
    (KIND, r"business|personal|account type|kind of account|type of account"),
]

#: What a refusal was about, for a bare "which ones?" after it.
SUBJECT_OF_REASON = {"active_services": SERVICES, "unpaid_invoices": INVOICES,
                     "negative_balance": OWED, "already_closing": CLOSING}


def question_subject(text: str, tracker: Tracker) -> str:
    """What a state question asks about: its own words first, then the last refusal or topic."""
    lowered = text.lower()
    for subject, pattern in SUBJECT_WORDS:
        if re.search(pattern, lowered):
            return subject
    offer = tracker.get_slot(SUPPORT_OFFER_SLOT)
    if isinstance(offer, dict):
        for reason in offer.get("blocking") or [offer.get("reason")]:
            if reason in SUBJECT_OF_REASON:
                return SUBJECT_OF_REASON[reason]
    if last_topic(tracker) == "close_account":
        return CLOSING
    return OVERVIEW


def not_signed_in(channel: Optional[str]) -> str:
    """Why the assistant cannot look at an anonymous customer's account, and what they can do."""
    if channel in ("slack", "telegram", "socketio"):
        return ("I can only look at your account once I know it's yours: say \"verify me\" and "
                "I'll send a code to your account's email address.")
    return ("I can only look at your account when you're signed in: open this chat from the "
            "portal after signing in, and ask me again.")


def describe_state(subject: str, state: AccountState) -> str:
    """One or two sentences answering a state question."""
    if subject == CLOSING:
        if state.status == "closing" and state.grace_period_ends_at:
            return (f"Yes: your account is scheduled to close on {day(state.grace_period_ends_at)}. "
                    "If you'd like to keep it, tell me and I'll cancel the closure.")
        if state.status == "closed":
            closed = f" on {day(state.closed_at)}" if state.closed_at else ""
            return f"Your account was closed{closed}."
        return "No: your account is open and isn't scheduled to close."
    if subject == CURRENCY:
        return f"Your account's currency is {state.currency}."
    if subject == SERVICES:
        if not state.active_services:
            return "You have no active services."
        names = ", ".join(s.name for s in state.active_services)
        return f"These services are still active: {names}."
    if subject == INVOICES:
        invoices = state.unpaid_invoices
        if not invoices:
            return "You have no unpaid invoices."
        listed = " and ".join(f"{i.number} ({money(i.amount, i.currency)}, due {day(i.due_date)})"
                              for i in invoices)
        if len(invoices) == 1:
            return f"The unpaid invoice is {listed}. You can pay it in the portal's billing section."
        return f"The unpaid invoices are {listed}. You can pay them in the portal's billing section."
    if subject == OWED:
        owed = state.amount_owed
        if owed <= 0:
            return f"You don't owe anything: your balance is {money(state.balance, state.currency)}."
        parts = [f"invoice {i.number} of {money(i.amount, i.currency)} is unpaid" for i in state.unpaid_invoices]
        if state.balance < 0:
            parts.append(f"your balance is {money(state.balance, state.currency)}")
        return (f"You owe {money(owed, state.currency)}: {' and '.join(parts)}. "
                "You can settle it in the portal's billing section.")
    if subject == KIND:
        return f"Yours is a {state.kind} account."
    if subject == REFERENCE:
        if state.open_support_requests:
            return "Your open support request: " + ", ".join(state.open_support_requests) + "."
        return "You have no open support request."
    closing_note = (f", scheduled to close on {day(state.grace_period_ends_at)}"
                    if state.status == "closing" and state.grace_period_ends_at else "")
    return (f"Your {state.kind} account is {state.status}{closing_note}; its currency is {state.currency} "
            f"and its balance {money(state.balance, state.currency)}.")


class ActionAnswerAccountState(Action):
    """Answers a question about the account's state from the store; changes nothing."""

    def name(self) -> Text:
        return "action_answer_account_state"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        events = set_aside_confirmation(tracker, dispatcher)
        subject = question_subject(tracker.latest_message.get("text") or "", tracker)
        if subject == REFERENCE and filed_request_id(tracker):
            from actions.followups import describe_open_request

            dispatcher.utter_message(text=await describe_open_request(tracker))
            return events
        customer = await identify(tracker)
        if customer is None:
            dispatcher.utter_message(text=not_signed_in(tracker.get_latest_input_channel()))
            return events
        try:
            state = await call_domain(lookups.account_state, customer.actor)
        except Exception:  # noqa: BLE001 - reported to the customer and logged
            logger.exception("account state could not be read")
            dispatcher.utter_message(text="Sorry, I couldn't look at your account just now. "
                                          "Please try again in a moment.")
            return events
        if isinstance(state, Refused):
            dispatcher.utter_message(text=describe_refusal(state))
            return events
        dispatcher.utter_message(text=describe_state(subject, state), **{TOPIC_KEY: subject})
        return events


#: What the assistant can't undo itself, by operation, in words.
NOT_UNDOABLE = {
    "change_currency": "I can't undo a currency change, but you can change it again: just say "
                       "\"change my currency\".",
    "invite_user": "I can't withdraw an invitation here.",
    "disable_user": "I can't give a disabled user their access back here: invite them again instead.",
    "switch_to_business": "I can't switch a business account back here; our support team can help.",
}


class ActionUndo(Action):
    """Undoes a running closure at once; says plainly when there is nothing to undo."""

    def name(self) -> Text:
        return "action_undo"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        loop = (tracker.active_loop or {}).get("name")
        if loop == "close_account_form":
            events = set_aside_confirmation(tracker, dispatcher, note=False)
            dispatcher.utter_message(text="OK, I haven't closed anything: your account stays open.")
            return [*events, operation_outcome("close_account", "cancelled")]
        events = set_aside_confirmation(tracker, dispatcher)
        customer = await identify(tracker)
        if customer is None:
            dispatcher.utter_message(text=not_signed_in(tracker.get_latest_input_channel()))
            return events
        try:
            state = await call_domain(lookups.account_state, customer.actor)
            if isinstance(state, AccountState) and state.status == "closing":
                result = await call_domain(closing.undo_closure, customer.actor,
                                           idempotency_key=idempotency_key(tracker, "undo_closure"))
            else:
                result = None
        except Exception:  # noqa: BLE001 - reported to the customer and logged
            logger.exception("undo failed")
            dispatcher.utter_message(text=FAILURE_TEXT)
            return [*events, operation_outcome("undo_closure", "failed", "error")]
        if isinstance(state, Refused):
            dispatcher.utter_message(text=describe_refusal(state))
            return events
        if result is not None:
            if isinstance(result, Refused):
                dispatcher.utter_message(text=describe_refusal(result, "cancel the closure"))
                return [*events, operation_outcome("undo_closure", "refused", result.reason.value)]
            dispatcher.utter_message(text=describe_success(result))
            return [*events, operation_outcome("undo_closure", "performed")]
        dispatcher.utter_message(text=nothing_to_undo(state, tracker.get_slot(LAST_OPERATION_SLOT)))
        return events


def nothing_to_undo(state: AccountState, last_operation: Any) -> str:
    """Why there is nothing to undo, plainly."""
    if state.status == "closed":
        return ("Your account is already closed for good, so the closure can't be undone here. "
                "Our support team can tell you what's still possible.")
    operation = last_operation.get("operation") if isinstance(last_operation, dict) else None
    if (isinstance(last_operation, dict) and last_operation.get("outcome") == "performed"
            and operation in NOT_UNDOABLE):
        return NOT_UNDOABLE[operation]
    return "There's nothing to undo: your account isn't being closed, it's open and active."
