"""The shape every account operation takes in a conversation.

1. A *check* action runs when the customer raises the topic. Anonymous
   customers get the FAQ answer (rules utter it); verified ones get the
   account-specific answer: what blocks the operation (with the offer of a
   person), or the operation's form. The outcome goes into the categorical slot
   ``operation_check`` so rules can branch on it.
2. The operation's form collects what it needs and always ends with an explicit
   confirmation (slot ``confirmed``) after the assistant has stated the
   consequence (``action_ask_confirmed``).
3. A *submit* action performs the operation through the account domain, with an
   idempotency key made of the conversation, the operation and the confirming
   message, so a repeated delivery of that message changes nothing twice.

4. A form the customer leaves (``form_exit``: stopped, handed over, dropped;
   see actions/form_listening.py) ends too; its submit action then says what
   happened (:func:`form_left`) and changes nothing.

Every outcome is recorded in the slot ``last_operation`` as
``{"operation": ..., "outcome": "performed" | "refused" | "cancelled", "reason": ...}``
so conversation reviews can find operations without reading texts.
"""

from __future__ import annotations

import abc
import logging
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from accounts.results import Refused, Result
from actions.account_store import call_domain
from actions.identity import Customer, identify, in_shared_channel, latest_message_id
from actions.messages import DIRECT_MESSAGE_ONLY
from actions.conversation_state import refusal_buttons
from actions.wording import describe_refusal, describe_success

logger = logging.getLogger(__name__)

OPERATION_CHECK = "operation_check"
ANONYMOUS, BLOCKED, ALLOWED, UNDO = "anonymous", "blocked", "allowed", "undo"
CONFIRMED = "confirmed"
LAST_OPERATION = "last_operation"
SUPPORT_OFFER = "support_offer"
FORM_EXIT = "form_exit"
STOPPED, HANDED_OVER, DROPPED = "stopped", "handed_over", "dropped"
#: A form's answer came from a channel others read (a Slack channel): left, nothing changed.
IN_SHARED_CHANNEL = "shared_channel"

YES_NO_BUTTONS = [
    {"title": "Yes", "payload": "/affirm"},
    {"title": "No", "payload": "/deny"},
]
CONTACT_SUPPORT_BUTTON = {"title": "Contact support", "payload": "/human_handoff"}
FAILURE_TEXT = "Sorry, something went wrong on our side and nothing was changed."


def operation_outcome(operation: str, outcome: str, reason: Optional[str] = None) -> SlotSet:
    """The ``last_operation`` record of an operation's outcome."""
    value: Dict[str, Any] = {"operation": operation, "outcome": outcome}
    if reason:
        value["reason"] = reason
    return SlotSet(LAST_OPERATION, value)


def support_offer(operation: str, refused: Refused) -> SlotSet:
    """Remember why an operation was refused, for a support request if the customer wants one."""
    return SlotSet(SUPPORT_OFFER, {"operation": operation, "reason": refused.reason.value,
                                   "blocking": [b.value for b in refused.blocking]})


async def report_failure(dispatcher: CollectingDispatcher, tracker: Tracker,
                         operation: str) -> List[Dict[Text, Any]]:
    """Something broke unexpectedly: say so and hand the customer to a person.

    The exception itself is logged by the caller; the support request carries
    the conversation so nobody has to ask again.
    """
    from actions.handoff import hand_over  # handoff builds on this module

    dispatcher.utter_message(text=FAILURE_TEXT)
    return [operation_outcome(operation, "failed", "error"),
            *await hand_over(dispatcher, tracker, f"{operation}:action_failed")]


async def form_left(dispatcher: CollectingDispatcher, tracker: Tracker, operation: str,
                    doing: str) -> Optional[List[Dict[Text, Any]]]:
    """When the customer left the form: say so (or hand over) and return the events; else None.

    ``doing`` names the operation for the note ("close your account").
    """
    how = tracker.get_slot(FORM_EXIT)
    if not how:
        return None
    events: List[Dict[Text, Any]] = [SlotSet(FORM_EXIT, None)]
    if how == HANDED_OVER:
        from actions.handoff import hand_over  # handoff builds on this module

        return [*events, operation_outcome(operation, "cancelled", "handed_over"),
                *await hand_over(dispatcher, tracker, "customer_request")]
    if how == IN_SHARED_CHANNEL:
        dispatcher.utter_message(text=DIRECT_MESSAGE_ONLY)
        return [*events, operation_outcome(operation, "refused", "shared_channel")]
    if how == DROPPED:
        dispatcher.utter_message(text=f"(So I won't {doing} for now: nothing was changed. Ask me "
                                      "again whenever you want to.)")
        return [*events, operation_outcome(operation, "cancelled", "dropped")]
    dispatcher.utter_message(response="utter_operation_stopped")
    return [*events, operation_outcome(operation, "cancelled", "stopped")]


def idempotency_key(tracker: Tracker, operation: str) -> str:
    """Key of one confirmed operation: conversation, operation, confirming message."""
    return f"{tracker.sender_id}:{operation}:{latest_message_id(tracker)}"[:200]


class CheckAction(Action, abc.ABC):
    """Decides how the conversation goes on when a customer raises an operation's topic."""

    operation: str = ""
    doing: str = "do that"

    @abc.abstractmethod
    async def check(self, customer: Customer) -> Optional[Refused]:
        """The refusal the operation would get now, or None when it is possible."""

    def explain_allowed(self, customer: Customer, dispatcher: CollectingDispatcher) -> None:
        """Say something before the form starts (optional)."""

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        if in_shared_channel(tracker):
            dispatcher.utter_message(text=DIRECT_MESSAGE_ONLY)
            return [SlotSet(OPERATION_CHECK, BLOCKED)]
        customer = await identify(tracker)
        if customer is None:
            return [SlotSet(OPERATION_CHECK, ANONYMOUS)]
        try:
            refusal = await self.check(customer)
        except Exception:  # noqa: BLE001 - reported to the customer and logged
            logger.exception("check of %s failed", self.operation)
            return [SlotSet(OPERATION_CHECK, BLOCKED),
                    *await report_failure(dispatcher, tracker, self.operation)]
        if refusal is not None:
            dispatcher.utter_message(text=describe_refusal(refusal, self.doing, self.operation),
                                     buttons=refusal_buttons(tracker, self.operation, refusal))
            return [SlotSet(OPERATION_CHECK, BLOCKED), support_offer(self.operation, refusal),
                    operation_outcome(self.operation, "refused", refusal.reason.value)]
        self.explain_allowed(customer, dispatcher)
        return [SlotSet(OPERATION_CHECK, ALLOWED), SlotSet(CONFIRMED, None),
                SlotSet("step_up_method", None), SlotSet("step_up_verdict", None), SlotSet(FORM_EXIT, None)]


class SubmitAction(Action, abc.ABC):
    """Performs a confirmed operation and tells the customer what happened."""

    operation: str = ""
    doing: str = "do that"
    form_slots: List[str] = []
    #: Sensitive operations need a fresh second factor (actions/step_up.py).
    needs_step_up: bool = False

    def step_up_needed(self, tracker: Tracker) -> bool:
        """Whether this submission needs the form's step-up verdict (default: ``needs_step_up``)."""
        return self.needs_step_up

    @abc.abstractmethod
    async def perform(self, customer: Customer, tracker: Tracker, key: str) -> Result:
        """Call the account domain; return its result."""

    def reset(self) -> List[Dict[Text, Any]]:
        """Clear the form's slots so the next request starts fresh."""
        slots = [*self.form_slots, CONFIRMED, OPERATION_CHECK, "step_up_code", "step_up_method",
                 "step_up_verdict", FORM_EXIT]
        return [SlotSet(slot, None) for slot in slots]

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        left = await form_left(dispatcher, tracker, self.operation, self.doing)
        if left is not None:
            return [*self.reset(), *left]
        customer = await identify(tracker)
        if customer is None and in_shared_channel(tracker):
            dispatcher.utter_message(text=DIRECT_MESSAGE_ONLY)
            return [*self.reset(), operation_outcome(self.operation, "refused", "shared_channel")]
        if customer is None:
            dispatcher.utter_message(text="Your portal session has ended, so I can't do that now. "
                                          "Please reopen the chat from the portal and try again.")
            return [*self.reset(), operation_outcome(self.operation, "refused", "not_verified")]
        if tracker.get_slot(CONFIRMED) is not True:
            dispatcher.utter_message(text="OK, I haven't changed anything.")
            return [*self.reset(), operation_outcome(self.operation, "cancelled")]
        if self.step_up_needed(tracker) and tracker.get_slot("step_up_verdict") != "verified":
            dispatcher.utter_message(text="I couldn't confirm it's you, so I haven't changed anything.")
            return [*self.reset(), operation_outcome(self.operation, "refused", "step_up_failed")]
        try:
            result = await self.perform(customer, tracker, idempotency_key(tracker, self.operation))
        except Exception:  # noqa: BLE001 - reported to the customer and logged
            logger.exception("%s failed", self.operation)
            return [*self.reset(), *await report_failure(dispatcher, tracker, self.operation)]
        if isinstance(result, Refused):
            dispatcher.utter_message(text=describe_refusal(result, self.doing, self.operation),
                                     buttons=refusal_buttons(tracker, self.operation, result))
            return [*self.reset(), support_offer(self.operation, result),
                    operation_outcome(self.operation, "refused", result.reason.value)]
        dispatcher.utter_message(text=describe_success(result))
        return [*self.reset(), operation_outcome(self.operation, "performed")]


async def run_check(function: Any, customer: Customer) -> Optional[Refused]:
    """Run a domain check and return only a refusal (None when possible)."""
    outcome = await call_domain(function, customer.actor)
    return outcome if isinstance(outcome, Refused) else None
