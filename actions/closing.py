"""Closing the account (and undoing a closure) in a conversation."""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from accounts import closing
from accounts.results import Reason, Refused, Result
from actions.account_store import account_deps, call_domain
from actions.conversation_state import OFFER_KEY, TOPIC_KEY
from actions.identity import Customer, identify
from actions.operation_flow import (
    BLOCKED,
    CONFIRMED,
    OPERATION_CHECK,
    UNDO,
    CheckAction,
    SubmitAction,
    run_check,
)
from actions.wording import day


class ActionCheckClosure(CheckAction):
    """Can this customer close their account now? Offers undo while a closure runs."""

    operation = "close_account"
    doing = "close your account"

    def name(self) -> Text:
        return "action_check_closure"

    async def check(self, customer: Customer) -> Optional[Refused]:
        return await run_check(closing.check_closure, customer)

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        customer = await identify(tracker)
        if customer is not None and is_how_to_question(tracker.latest_message.get("text") or ""):
            try:
                possible = await self.check(customer) is None
            except Exception:  # noqa: BLE001 - the normal path below reports it
                possible = False
            if possible:
                dispatcher.utter_message(text=CLOSING_HOW_TO, buttons=CLOSING_OFFER_BUTTONS,
                                         **{OFFER_KEY: "close_account", TOPIC_KEY: "close_account"})
                return [SlotSet(OPERATION_CHECK, BLOCKED)]
            # Not possible now: the steps, then what blocks this account (below).
            dispatcher.utter_message(text=CLOSING_STEPS, **{TOPIC_KEY: "close_account"})
        if customer is not None:
            try:
                refusal = await self.check(customer)
            except Exception:  # noqa: BLE001 - the base class reports it
                refusal = None
            if isinstance(refusal, Refused) and refusal.reason == Reason.ALREADY_CLOSING:
                ends = refusal.details.get("grace_period_ends_at")
                dispatcher.utter_message(text="Your account is already scheduled to close"
                                              + (f" on {day(ends)}." if ends else "."))
                return [SlotSet(OPERATION_CHECK, UNDO), SlotSet(CONFIRMED, None)]
        return await super().run(dispatcher, tracker, domain)

    def explain_allowed(self, customer: Customer, dispatcher: CollectingDispatcher) -> None:
        dispatcher.utter_message(text="I've checked your account: all services are cancelled "
                                      "and there are no unpaid bills, so I can close it for you.")


#: "How do I ...?", "what do I need to do to ...": a question about the steps, not a request.
HOW_TO = re.compile(r"\bhow (do|can|could|would|should|to)\b|\bwhat (do|should|would) i (need|have)"
                    r"|\bwhat are the steps|\bis it possible|\bcan (i|you) tell me how", re.IGNORECASE)

CLOSING_STEPS = ("To close an account, all its services have to be cancelled in the portal and any "
                 "unpaid bills paid; after that the account can be closed.")
CLOSING_HOW_TO = (CLOSING_STEPS + " I've checked yours: nothing is in the way, so I can close it "
                  "for you. Shall I?")
CLOSING_OFFER_BUTTONS = [
    {"title": "Yes, close my account", "payload": "/close_account"},
    {"title": "No, thanks", "payload": "/deny"},
]


def is_how_to_question(text: str) -> bool:
    """Whether a message asks how something is done rather than asking to do it."""
    return bool(HOW_TO.search(text))


def closing_consequence() -> str:
    """What closing means, stated before the customer confirms."""
    days = account_deps().settings.grace_period_days
    return (f"Closing starts a {days}-day grace period. During it you can still undo the "
            f"closure; after it the account is closed for good and all its users lose access. "
            f"Shall I close your account?")


def undo_question(ends_on: Optional[str] = None) -> str:
    """The question before undoing a closure."""
    return "Do you want to keep your account and cancel the closure?"


class ActionCloseAccount(SubmitAction):
    """Starts the closure of the account after the customer confirmed and stepped up."""

    operation = "close_account"
    doing = "close your account"
    needs_step_up = True

    def name(self) -> Text:
        return "action_close_account"

    async def perform(self, customer: Customer, tracker: Tracker, key: str) -> Result:
        return await call_domain(closing.request_closure, customer.actor, idempotency_key=key,
                                 require_step_up=True, step_up_conversation=tracker.sender_id)


class ActionUndoClosure(SubmitAction):
    """Cancels a running closure after the customer confirmed."""

    operation = "undo_closure"
    doing = "cancel the closure"

    def name(self) -> Text:
        return "action_undo_closure"

    async def perform(self, customer: Customer, tracker: Tracker, key: str) -> Result:
        return await call_domain(closing.undo_closure, customer.actor, idempotency_key=key)
