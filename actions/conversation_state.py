"""The small dialogue state the follow-up answers read: open request, last offer, last topic.

Nothing here is a new store: it is read from the conversation itself.

* the open support request of the conversation is the ``handoff_request_id`` slot;
* what the assistant offered in its last turn ("Shall I pass this to our support
  team?", "Shall I close it for you?") is in the metadata of its messages under
  :data:`OFFER_KEY` (as the clarification stage is, actions/clarification.py),
  and a refusal that needs a person sets the ``support_offer`` slot in that turn;
* the last topic is the latest FAQ answer or operation check the assistant ran,
  or the :data:`TOPIC_KEY` of its latest message.

A destructive confirmation (a form waiting for yes/no or a code) is never asked
again after an unrelated message: :func:`set_aside_confirmation` drops it with a
one-line note. Forms that wait for a value (an e-mail, a currency) keep going.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Tracker
from rasa_sdk.events import ActiveLoop, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.wording import person_needed

REQUEST_SLOT = "handoff_request_id"
SUPPORT_OFFER_SLOT = "support_offer"
LAST_OPERATION_SLOT = "last_operation"
OFFER_KEY = "offer"
TOPIC_KEY = "topic"
#: Offer of a person (``yes`` hands over).
PERSON = "person"

CONTACT_SUPPORT_BUTTON = {"title": "Contact support", "payload": "/human_handoff"}
PERSON_OFFER_BUTTONS = [
    {"title": "Yes, pass it on", "payload": "/human_handoff"},
    {"title": "No, thanks", "payload": "/deny"},
]

#: Forms whose question is a destructive confirmation or its code, and what they do.
CONFIRMING_FORMS = {
    "close_account_form": "closing your account",
    "currency_form": "the currency change",
    "disable_user_form": "disabling that user",
    "business_form": "the switch to a business account",
    "undo_closure_form": "cancelling the closure",
}
CONFIRMING_SLOTS = ("confirmed", "step_up_code")

#: The topic of the assistant's own answers and checks.
TOPIC_OF_ACTION = {
    "utter_add_user": "add_user", "action_check_invite": "add_user",
    "utter_remove_user": "remove_user", "action_check_disable": "remove_user",
    "utter_account_types": "account_types",
    "utter_change_account_type": "change_account_type",
    "action_check_business_switch": "change_account_type",
    "utter_change_currency": "change_currency", "action_check_currency_change": "change_currency",
    "utter_close_account": "close_account", "action_check_closure": "close_account",
    "utter_create_account": "create_account",
    "utter_forgot_password": "forgot_password", "action_send_password_reset": "forgot_password",
    "utter_what_is_tfa": "what_is_tfa",
    "utter_lost_tfa_app": "lost_tfa_app", "action_check_tfa_recovery": "lost_tfa_app",
}


def filed_request_id(tracker: Tracker) -> Optional[int]:
    """The support request this conversation opened, if any."""
    value = tracker.get_slot(REQUEST_SLOT)
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def contact_buttons(tracker: Tracker) -> List[Dict[str, str]]:
    """The "Contact support" button, unless a request was already filed in this conversation."""
    return [] if filed_request_id(tracker) else [CONTACT_SUPPORT_BUTTON]


def person_offer_buttons(tracker: Tracker) -> List[Dict[str, str]]:
    """Yes/no buttons for the offer of a person (the request is filed only on "yes")."""
    return list(PERSON_OFFER_BUTTONS)


def refusal_buttons(tracker: Tracker, operation: str, refused: Any) -> List[Dict[str, str]]:
    """Buttons under a refusal: the offer of a person only where a person is needed."""
    reasons = list(getattr(refused, "blocking", ()) or [refused.reason])
    if not person_needed(operation, reasons):
        return []
    return person_offer_buttons(tracker)


def _events_of_last_turn(tracker: Tracker) -> List[Dict[str, Any]]:
    """The events between the previous customer message and the latest one."""
    events = list(tracker.events)
    user_indexes = [i for i, e in enumerate(events) if e.get("event") == "user"]
    if len(user_indexes) < 2:
        start = 0
    else:
        start = user_indexes[-2] + 1
    end = user_indexes[-1] if user_indexes else len(events)
    return events[start:end]


def last_offer(tracker: Tracker) -> Optional[str]:
    """What the assistant offered in its previous turn (:data:`PERSON`, an intent name), if anything."""
    for event in reversed(_events_of_last_turn(tracker)):
        if event.get("event") == "bot":
            offer = (event.get("metadata") or {}).get(OFFER_KEY)
            if offer:
                return str(offer)
        if event.get("event") == "slot" and event.get("name") == SUPPORT_OFFER_SLOT:
            value = event.get("value")
            if isinstance(value, dict) and person_needed(
                    value.get("operation", ""), value.get("blocking") or [value.get("reason")]):
                return PERSON
    return None


def last_turn_slot(tracker: Tracker, name: str) -> Any:
    """The value a slot was set to in the assistant's previous turn (None if it was not set)."""
    for event in reversed(_events_of_last_turn(tracker)):
        if event.get("event") == "slot" and event.get("name") == name:
            return event.get("value")
    return None


def last_topic(tracker: Tracker) -> Optional[str]:
    """The topic of the assistant's latest answer before the current message."""
    events = list(tracker.events)
    user_seen = False
    for event in reversed(events):
        kind = event.get("event")
        if kind == "session_started":
            return None
        if kind == "user":
            if user_seen is False:
                user_seen = True
                continue
        if not user_seen:
            continue
        if kind == "bot":
            topic = (event.get("metadata") or {}).get(TOPIC_KEY)
            if topic:
                return str(topic)
        elif kind == "action" and event.get("name") in TOPIC_OF_ACTION:
            return TOPIC_OF_ACTION[event["name"]]
    return None


def set_aside_confirmation(tracker: Tracker, dispatcher: CollectingDispatcher,
                           note: bool = True) -> List[Dict[Text, Any]]:
    """Drop a destructive confirmation the customer moved away from, with a one-line note."""
    loop = (tracker.active_loop or {}).get("name")
    if loop not in CONFIRMING_FORMS or tracker.get_slot("requested_slot") not in CONFIRMING_SLOTS:
        return []
    if note:
        dispatcher.utter_message(text=f"(I've set {CONFIRMING_FORMS[loop]} aside: nothing was changed.)")
    return [ActiveLoop(None), SlotSet("requested_slot", None), SlotSet("confirmed", None),
            SlotSet("step_up_code", None), SlotSet("operation_check", None)]
