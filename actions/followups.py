"""Follow-ups on the assistant's own answers: "yes", "why?", "how do I cancel them?", "help".

Each answer reads the small dialogue state of actions/conversation_state.py
(the last offer, the last refusal, the last topic, the open request), so a
short question gets a short answer about what was just said.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from accounts import lookups
from accounts.lookups import AccountState
from accounts.results import support_reference
from actions import messages
from actions.account_store import account_deps, call_domain
from actions.conversation_state import (
    LAST_OPERATION_SLOT,
    OFFER_KEY,
    PERSON,
    SUPPORT_OFFER_SLOT,
    TOPIC_KEY,
    contact_buttons,
    filed_request_id,
    last_offer,
    last_topic,
    last_turn_slot,
    person_offer_buttons,
    set_aside_confirmation,
)
from actions.handoff import add_to_request, hand_over, handoff_reason, open_request_of
from actions.identity import identify
from actions.wording import day, money, person_needed

logger = logging.getLogger(__name__)

#: Offers whose "yes" runs that topic's check action (rules in data/rules/conversation.yml go on from it).
OFFERED_CHECKS = {"close_account": "action_check_closure"}
REPLY_TIME = "usually replies within one working day"


async def account_state_of(tracker: Tracker) -> Optional[AccountState]:
    """The verified customer's account state, or None (anonymous, or not readable)."""
    customer = await identify(tracker)
    if customer is None:
        return None
    try:
        state = await call_domain(lookups.account_state, customer.actor)
    except Exception:  # noqa: BLE001 - the answer falls back to the general one
        logger.exception("account state could not be read")
        return None
    return state if isinstance(state, AccountState) else None


async def describe_open_request(tracker: Tracker) -> str:
    """The conversation's request: reference, when the team answers, where."""
    request_id = filed_request_id(tracker)
    reference = support_reference(request_id) if request_id else "your request"
    text = (tracker.latest_message.get("text") or "").lower()
    customer = await identify(tracker)
    where = f" by email to {customer.email}" if customer else ""
    if re.search(r"how long|when|wait|soon|take", text):
        return f"Our support team {REPLY_TIME}{where}. Your reference is {reference}."
    return f"Your reference is {reference}. Our support team {REPLY_TIME}{where}."


class ActionAnswerYes(Action):
    """ "yes" with no form waiting: takes the offer just made, or says what happened."""

    def name(self) -> Text:
        return "action_answer_yes"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        offer = last_offer(tracker)
        if offer == PERSON:
            return await hand_over(dispatcher, tracker, handoff_reason(tracker))
        if offer in OFFERED_CHECKS:
            return [FollowupAction(OFFERED_CHECKS[offer])]
        outcome = last_turn_slot(tracker, LAST_OPERATION_SLOT)
        if isinstance(outcome, dict) and outcome.get("reason") == "step_up_failed":
            dispatcher.utter_message(text=messages.STEP_UP_FAILED_YES)
            return []
        dispatcher.utter_message(text=messages.HOW_CAN_I_HELP)
        return []


class ActionSetAsideConfirmation(Action):
    """Before small talk ("thanks!"): a waiting destructive confirmation is set aside, not asked again.

    It always leaves an event: reviews count a custom action without one as
    failed (tracking/conventions.py). With nothing to set aside, that event
    clears ``confirmed``, which holds nothing outside a confirmation anyway.
    """

    def name(self) -> Text:
        return "action_set_aside_confirmation"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        return set_aside_confirmation(tracker, dispatcher) or [SlotSet("confirmed", None)]


class ActionOutOfScope(Action):
    """Something the assistant doesn't do: added to the open request, else what it does and the support button."""

    def name(self) -> Text:
        return "action_out_of_scope"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        events = set_aside_confirmation(tracker, dispatcher)
        request_id = await open_request_of(tracker)
        if request_id is not None:
            return [*events, *await add_to_request(dispatcher, tracker, request_id)]
        buttons = contact_buttons(tracker)
        text = messages.OUT_OF_SCOPE + (" If you need something else, I can put you in touch with "
                                        "our support team." if buttons else "")
        dispatcher.utter_message(text=text, buttons=buttons)
        return events


class ActionHelp(Action):
    """ "help": the welcome menu."""

    def name(self) -> Text:
        return "action_help"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        events = set_aside_confirmation(tracker, dispatcher)
        dispatcher.utter_message(text=messages.HELP_MENU, buttons=list(messages.HELP_BUTTONS))
        return events


class ActionSupportRequestFollowup(Action):
    """ "what was my reference again?", "how long will that take?" about this conversation's request."""

    def name(self) -> Text:
        return "action_support_request_followup"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        events = set_aside_confirmation(tracker, dispatcher)
        if filed_request_id(tracker):
            dispatcher.utter_message(text=await describe_open_request(tracker))
            return events
        state = await account_state_of(tracker)
        if state is not None and state.open_support_requests:
            dispatcher.utter_message(text=f"Your open support request is {state.open_support_requests[0]}. "
                                          f"Our support team {REPLY_TIME}.")
            return events
        dispatcher.utter_message(text=messages.NO_REQUEST_YET, buttons=person_offer_buttons(tracker),
                                 **{OFFER_KEY: PERSON})
        return events


class ActionNoRecoveryCodes(Action):
    """Lost the app and the recovery codes: only a person can help, so offer one."""

    def name(self) -> Text:
        return "action_no_recovery_codes"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        events = set_aside_confirmation(tracker, dispatcher)
        dispatcher.utter_message(text=messages.NO_RECOVERY_CODES, buttons=person_offer_buttons(tracker),
                                 **{OFFER_KEY: PERSON, TOPIC_KEY: "lost_tfa_app"})
        return events


class ActionAnswerTerm(Action):
    """ "what is a primary email?", "what roles can users have?": one short answer."""

    def name(self) -> Text:
        return "action_answer_term"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        text = (tracker.latest_message.get("text") or "").lower()
        for pattern, answer in messages.TERMS:
            if re.search(pattern, text):
                days = account_deps().settings.grace_period_days if "{grace_days}" in answer else 0
                dispatcher.utter_message(text=answer.format(grace_days=days))
                return []
        dispatcher.utter_message(text="Which word do you mean? I can explain roles, the primary email, "
                                      "recovery codes, one-time codes and the grace period.")
        return []


#: "Why?" after a refusal, by reason.
WHY_REASON = {
    "unpaid_invoices": "That's the rule for closing: every bill has to be paid and every service "
                       "cancelled first, so nothing keeps running or stays unpaid on a closed account.",
    "active_services": "That's the rule for closing: every service has to be cancelled and every bill "
                       "paid first, so nothing keeps running or stays unpaid on a closed account.",
    "payments_exist": "The currency can only be changed while no payments have been made on the "
                      "account and its balance isn't negative; after that only our support team can change it.",
    "negative_balance": "The currency can only be changed while the balance isn't negative (and no "
                        "payments were made), so the amounts you owe stay in one currency.",
    "not_permitted": "Because your sign-in's role doesn't allow it: ask an owner of the account.",
    "already_closing": "Because a closure is already running; it ends with the grace period.",
}
#: "Why?" after an FAQ answer, by topic.
WHY_TOPIC = {
    "what_is_tfa": "So that a stolen password alone isn't enough to get into your account: signing in "
                   "also needs your phone.",
    "lost_tfa_app": "Resetting two-factor authentication removes a protection from your account, so I "
                    "need two proofs that it's you: a recovery code and a code sent to your primary email.",
    "close_account": "Closing is final once the grace period ends, so I check nothing is left running "
                     "or unpaid, and confirm it's really you with a one-time code first.",
    "change_account_type": "Business accounts are for companies and are paid by wire transfer, so I need "
                           "the company's details.",
    "account_types": "Business accounts are for legal entities (companies); they pay by wire transfer.",
}
BUSINESS_GRAYED_OUT = ("The \"Account type\" switch is grayed out while the account is not active, has "
                       "unpaid invoices or a negative balance; then only our support team can switch it.")


class ActionExplainWhy(Action):
    """ "why?": explains the last refusal, else the last answer."""

    def name(self) -> Text:
        return "action_explain_why"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        offer = tracker.get_slot(SUPPORT_OFFER_SLOT)
        if isinstance(offer, dict):
            reasons = offer.get("blocking") or [offer.get("reason")]
            if offer.get("operation") == "switch_to_business" and person_needed("switch_to_business", reasons):
                dispatcher.utter_message(text=BUSINESS_GRAYED_OUT)
                return []
            for reason in reasons:
                if reason in WHY_REASON:
                    dispatcher.utter_message(text=WHY_REASON[reason])
                    return []
        topic = last_topic(tracker)
        if topic in WHY_TOPIC:
            dispatcher.utter_message(text=WHY_TOPIC[topic])
            return []
        dispatcher.utter_message(text="Sorry, why what? Tell me which part you'd like me to explain.")
        return []


class ActionHowToFix(Action):
    """ "how do I cancel them?", "where can I pay it?": the customer's own next step."""

    def name(self) -> Text:
        return "action_how_to_fix"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        text = (tracker.latest_message.get("text") or "").lower()
        offer = tracker.get_slot(SUPPORT_OFFER_SLOT)
        reasons = (offer.get("blocking") or [offer.get("reason")]) if isinstance(offer, dict) else []
        if isinstance(offer, dict) and person_needed(offer.get("operation", ""), reasons) \
                and not re.search(r"pay|invoice|bill|cancel|servic|balance", text):
            dispatcher.utter_message(text="That one isn't something you can change yourself: only our "
                                          "support team can. Shall I pass it on to them?",
                                     buttons=person_offer_buttons(tracker), **{OFFER_KEY: PERSON})
            return []
        state = await account_state_of(tracker)
        if re.search(r"cancel|servic|get rid", text) or (
                not re.search(r"pay|invoice|bill|balance|settle|\btop.?up", text) and "active_services" in reasons):
            dispatcher.utter_message(text=cancel_services_step(state))
        elif re.search(r"balance|settle|\btop.?up|negative", text) or "negative_balance" in reasons:
            dispatcher.utter_message(text=settle_balance_step(state))
        elif re.search(r"pay|invoice|bill", text) or "unpaid_invoices" in reasons:
            dispatcher.utter_message(text=pay_invoices_step(state))
        else:
            dispatcher.utter_message(text="Tell me what you'd like to do and I'll tell you how: for "
                                          "example \"how do I pay my invoice?\".")
        return []


def cancel_services_step(state: Optional[AccountState]) -> str:
    """How to cancel services (the FAQ: "cancel services on the portal")."""
    if state is not None and state.active_services:
        names = " and ".join(s.name for s in state.active_services)
        if len(state.active_services) == 1:
            return f"Open {names} in the portal and cancel it. When it's cancelled, ask me again."
        return (f"Open each service in the portal and cancel it: {names}. When they're cancelled, "
                "ask me again.")
    if state is not None:
        return "You have no active services left to cancel."
    return "Open each service in the portal and cancel it; then ask me again."


def pay_invoices_step(state: Optional[AccountState]) -> str:
    """Where to pay unpaid invoices."""
    if state is not None and state.unpaid_invoices:
        listed = " and ".join(f"{i.number} ({money(i.amount, i.currency)}, due {day(i.due_date)})"
                              for i in state.unpaid_invoices)
        return f"You can pay {listed} in the portal's billing section."
    if state is not None and state.balance < 0:
        return settle_balance_step(state)
    if state is not None:
        return "You have no unpaid invoices."
    return "You can pay unpaid invoices in the portal's billing section."


def settle_balance_step(state: Optional[AccountState]) -> str:
    """How to settle a negative balance."""
    if state is not None and state.balance < 0:
        return (f"Your balance is {money(state.balance, state.currency)}: pay "
                f"{money(-state.balance, state.currency)} in the portal's billing section to settle it.")
    if state is not None:
        return f"Your balance isn't negative ({money(state.balance, state.currency)}), so there's nothing to settle."
    return "You can settle a negative balance by paying it in the portal's billing section."

