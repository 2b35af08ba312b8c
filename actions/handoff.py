"""Hand-over to a person: a support request, stored first, with the conversation.

The request carries the verified customer (if any), the channel, the reason
(the last refused operation, or the customer's own request) and the redacted
recent transcript, so the support team can act without asking again. It is
stored in the account store before the customer is told anything, so nothing
is lost. Delivery to the helpdesk comes with the helpdesk integration; until
then staff read support requests from the store, and anonymous customers are
also told how to reach support (``SUPPORT_CONTACT``).
"""

from __future__ import annotations

import logging
import os
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ConversationPaused, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from accounts import lookups, support_requests
from accounts.helpdesk_dispatch import append_message
from accounts.results import Refused, support_reference
from actions import messages
from actions.account_store import call_domain
from actions.conversation_state import filed_request_id
from actions.identity import identify
from actions.operation_flow import SUPPORT_OFFER, idempotency_key, operation_outcome
from accounts.redaction import redact_text, redact_tokens
from supportbot.settings import load_settings

logger = logging.getLogger(__name__)

TRANSCRIPT_TURNS = 20
#: Statuses of a support request that later messages are added to.
OPEN_STATUSES = ("open", "in_progress")


def utter_support_contact(dispatcher: CollectingDispatcher) -> None:
    """Tell the customer how to reach a person."""
    contact = load_settings().support_contact
    dispatcher.utter_message(text=messages.HANDOFF_CONTACT.format(support_contact=contact))


def redacted_transcript(tracker: Tracker, turns: int = TRANSCRIPT_TURNS) -> List[Dict[str, str]]:
    """The latest messages of the conversation, secrets masked."""
    lines = []
    for event in tracker.events:
        if event.get("event") == "session_started":
            lines = []
        elif event.get("event") in ("user", "bot") and event.get("text"):
            if event["event"] == "user":
                lines.append({"from": "customer", "text": redact_text(event["text"])})
            else:
                lines.append({"from": "assistant", "text": redact_tokens(event["text"])})
    return lines[-turns:]


def handoff_reason(tracker: Tracker) -> str:
    """Why the customer is handed over, as a short code."""
    offer = tracker.get_slot(SUPPORT_OFFER)
    if isinstance(offer, dict) and offer.get("operation"):
        return f"{offer['operation']}:{offer.get('reason', 'refused')}"
    return "customer_request"


async def hand_over(dispatcher: CollectingDispatcher, tracker: Tracker, reason: str,
                    support_offer: Optional[Dict[str, Any]] = None) -> List[Dict[Text, Any]]:
    """Store a support request with the conversation, then tell the customer what happens next.

    ``support_offer`` is the refusal that led here when the caller has it at hand
    (otherwise the ``support_offer`` slot is used).
    """
    open_request = await open_request_of(tracker)
    if open_request is not None:
        return await add_to_request(dispatcher, tracker, open_request)
    customer = await identify(tracker)
    transcript = redacted_transcript(tracker)
    summary = next((line["text"] for line in reversed(transcript)
                    if line["from"] == "customer" and len(line["text"]) > 15),
                   "Customer asked for a person.")
    try:
        result = await call_domain(
            support_requests.create_support_request,
            account_id=customer.account_id if customer else None,
            channel=customer.channel if customer else (tracker.get_latest_input_channel() or "chat"),
            reason=reason[:64], summary=summary[:500],
            idempotency_key=idempotency_key(tracker, "support_request"),
            context={"conversation": tracker.sender_id, "transcript": transcript,
                     "support_offer": support_offer or tracker.get_slot(SUPPORT_OFFER)},
            contact_email=customer.email if customer else None,
            actor=customer.actor if customer else None,
        )
    except Exception:  # noqa: BLE001 - reported to the customer and logged
        logger.exception("support request could not be stored")
        result = None
    events: List[Dict[Text, Any]] = [SlotSet(SUPPORT_OFFER, None)]
    if result is None or isinstance(result, Refused):
        utter_support_contact(dispatcher)
        return [*events, operation_outcome("support_request", "failed", "not_stored")]
    reference = result.reference
    person_takes_over = helpdesk_configured()
    if customer:
        text = (f"I've passed this to our support team with our conversation (reference "
                f"{reference}). They'll reply to {customer.email}, usually within one working day.")
    else:
        contact = load_settings().support_contact
        text = (f"I've noted your request (reference {reference}). As you're not signed in, "
                f"I can't see your account, so please contact our support team through "
                f"{contact} and quote that reference.")
    if person_takes_over:
        text += (" A person from the team may also continue right here: until then I'll pass "
                 "on everything you write and stay quiet.")
    dispatcher.utter_message(text=text)
    events += [operation_outcome("support_request", "performed"),
               SlotSet("handoff_request_id", result.support_request_id)]
    if person_takes_over:
        events.append(ConversationPaused())
    return events


async def open_request_of(tracker: Tracker) -> Optional[int]:
    """The conversation's support request while it is still open (one per conversation)."""
    request_id = filed_request_id(tracker)
    if request_id is None:
        return None
    try:
        status = await call_domain(lookups.support_request_status, request_id)
    except Exception:  # noqa: BLE001 - a new request is better than none
        logger.exception("status of support request %s could not be read", request_id)
        return None
    return request_id if status in OPEN_STATUSES else None


async def add_to_request(dispatcher: CollectingDispatcher, tracker: Tracker,
                         request_id: int) -> List[Dict[Text, Any]]:
    """Add the customer's latest message to the open request instead of filing another."""
    reference = support_reference(request_id)
    text = redact_text(tracker.latest_message.get("text") or "")
    if text and not text.startswith("/"):
        try:
            await call_domain(append_message, support_request_id=request_id, author="customer", text=text)
        except Exception:  # noqa: BLE001 - reported to the customer and logged
            logger.exception("message could not be added to support request %s", request_id)
            utter_support_contact(dispatcher)
            return [operation_outcome("support_request", "failed", "not_added")]
        dispatcher.utter_message(text=f"I've added that to {reference}, so the team sees it with "
                                      "your request. You don't need to open another one.")
    else:
        dispatcher.utter_message(text=f"Your request {reference} is already with our support team; "
                                      "anything you add here, I'll pass on to it.")
    return [SlotSet(SUPPORT_OFFER, None)]


def helpdesk_configured() -> bool:
    """Whether a helpdesk receives support requests (so a person can take over the chat)."""
    return bool(os.environ.get("HELPDESK_URL"))


class ActionHumanHandoff(Action):
    """Hands the customer to a person at their request or after a refusal."""

    def name(self) -> Text:
        return "action_human_handoff"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        return await hand_over(dispatcher, tracker, handoff_reason(tracker))
