"""What the review console reads in a conversation, and how actions mark it.

This module is the contract between the assistant (actions, channels) and the
review console. It imports neither Rasa nor SQLAlchemy. Events are the JSON
dictionaries Rasa stores (``Event.as_dict()``).

Conventions for custom actions
==============================

**Operations.** An action that performs, refuses or gives up an account
operation records the outcome in the slot ``last_operation`` (type ``any``, not
influencing the conversation), as ``actions/operation_flow.operation_outcome``
does::

    SlotSet("last_operation", {"operation": "close_account", "outcome": "performed"})
    SlotSet("last_operation", {"operation": "close_account", "outcome": "refused",
                               "reason": "unpaid_invoices"})

``operation`` is the capability (``close_account``, ``undo_closure``,
``change_currency``, ``invite_member``, ``disable_member``,
``switch_to_business``...); ``outcome`` is ``performed``, ``refused``,
``cancelled`` (the customer said no) or ``failed`` (something broke; counts as a
failed action); ``reason`` is the ``Refused.reason`` code when there is one.

**Support requests.** Opening a support request is the operation
``support_request``: ``performed`` when it was stored, ``failed`` when it could
not be (a failed action).

**Hand-offs.** Running ``action_human_handoff`` counts as a hand-off, and so does
any support request.

**Always leave a trace.** A custom action (a name starting with ``action_`` that
is not one of Rasa's default actions) must send at least one message or return
at least one event. When an action server fails (HTTP 500, timeout, unreachable),
Rasa 3.6 logs the error, keeps the ``ActionExecuted`` event and drops the
action's events, so "a custom action followed directly by the next action or
user message" is how the console recognises a failed action.

**Interruptions are not failures.** When a form (or an action) declines to run
(``ActionExecutionRejection``, e.g. a customer asks a question at a form's
prompt), Rasa stores ``action_execution_rejected`` instead of ``action`` and
another action answers; the form asks again later. The console shows and counts
it as "form interrupted", a neutral event.

What the console reads
======================

* **channel** - ``input_channel`` of the user messages (the first one seen);
* **verified customer** - ``metadata["verified_identity"]["account_id"]`` of a
  user message, set only by our own channels after they verified the customer;
* **fallback** - a user message classified ``nlu_fallback``, or one of Rasa's
  fallback actions (``action_default_fallback``, ``action_two_stage_fallback``);
* **NLU confidence** - the confidence of the best real intent (never of the
  synthetic ``nlu_fallback``); ``/intent`` button payloads are not NLU and are
  left out of the NLU inbox.
* **Answers to a form** - a message sent while a form (Rasa's active loop) asks
  for a slot (an e-mail address, a company name, a one-time code) is a slot
  value, not an intent: it never counts as a fallback, does not lower the NLU
  confidence and stays out of the NLU inbox.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Tuple

PERFORMED = "performed"
REFUSED = "refused"
CANCELLED = "cancelled"
FAILED = "failed"

#: Slot in which actions record an operation's outcome.
LAST_OPERATION_SLOT = "last_operation"
#: The operation name of opening a support request.
SUPPORT_REQUEST_OPERATION = "support_request"
#: Key of a user message's metadata set by our channels for a verified customer.
VERIFIED_IDENTITY_KEY = "verified_identity"

HANDOFF_ACTIONS = frozenset({"action_human_handoff"})
FALLBACK_INTENT = "nlu_fallback"
FALLBACK_ACTIONS = frozenset({"action_default_fallback", "action_two_stage_fallback"})
ACTION_LISTEN = "action_listen"

#: Rasa 3.6's default actions (rasa.shared.core.constants.DEFAULT_ACTION_NAMES).
RASA_DEFAULT_ACTIONS = frozenset({
    "action_listen", "action_restart", "action_session_start", "action_default_fallback",
    "action_deactivate_loop", "action_revert_fallback_events",
    "action_default_ask_affirmation", "action_default_ask_rephrase",
    "action_two_stage_fallback", "action_unlikely_intent", "action_back",
    "...", "action_extract_slots",
})

USER = "user"
BOT = "bot"
ACTION = "action"
REJECTED = "action_execution_rejected"
SESSION_STARTED = "session_started"
SLOT = "slot"
ACTIVE_LOOP = "active_loop"
RESTART = "restart"

MAX_NAME = 64


def _metadata(event: Mapping[str, Any]) -> Mapping[str, Any]:
    metadata = event.get("metadata")
    return metadata if isinstance(metadata, Mapping) else {}


#: The operation that links a chat identity to an account (actions/linking.py).
LINK_OPERATION = "link_account"


def linked_customer_of(event: Mapping[str, Any]) -> Optional[Tuple[str, str]]:
    """(account id, channel) when ``event`` records a chat identity just linked to an account, else None.

    The linking action sets ``last_operation`` to ``{"operation": "link_account",
    "outcome": "performed", "customer": {"account_id": N, "channel": "slack"}}``
    after the account store confirmed the e-mailed code.
    """
    operation = operation_of(event)
    if operation is None or operation[0] != LINK_OPERATION or operation[1] != PERFORMED:
        return None
    customer = event["value"].get("customer")
    if not isinstance(customer, Mapping):
        return None
    account, channel = customer.get("account_id"), customer.get("channel")
    if account is None or isinstance(account, (bool, dict, list)) or not isinstance(channel, str) or not channel:
        return None
    return str(account)[:255], channel[:32]


def operation_of(event: Mapping[str, Any]) -> Optional[Tuple[str, str, Optional[str]]]:
    """(operation, outcome, reason) when ``event`` sets ``last_operation``, else None."""
    if event.get("event") != SLOT or event.get("name") != LAST_OPERATION_SLOT:
        return None
    value = event.get("value")
    if not isinstance(value, Mapping):
        return None
    name, outcome = value.get("operation"), value.get("outcome")
    if not isinstance(name, str) or not name or not isinstance(outcome, str) or not outcome:
        return None
    reason = value.get("reason")
    return name[:MAX_NAME], outcome[:MAX_NAME], reason if isinstance(reason, str) else None


def verified_identity_of(event: Mapping[str, Any]) -> Optional[Mapping[str, Any]]:
    """The verified-identity claims of a user message (account_id, email...), else None."""
    if event.get("event") != USER:
        return None
    identity = _metadata(event).get(VERIFIED_IDENTITY_KEY)
    return identity if isinstance(identity, Mapping) else None


def verified_account_of(event: Mapping[str, Any]) -> Optional[str]:
    """The verified customer's account id of a user message, as text, else None."""
    identity = verified_identity_of(event)
    if identity is None:
        return None
    account = identity.get("account_id")
    if account is None or account == "" or isinstance(account, (dict, list, bool)):
        return None
    return str(account)[:255]


def is_payload(text: Optional[str]) -> bool:
    """True for ``/intent`` button payloads, which bypass NLU."""
    return bool(text) and text.lstrip().startswith("/")


def user_nlu(event: Mapping[str, Any]) -> Tuple[Optional[str], Optional[float], Optional[str]]:
    """(intent acted on, confidence of the best real intent, best real intent) of a user message."""
    parse = event.get("parse_data") if isinstance(event.get("parse_data"), Mapping) else {}
    intent = parse.get("intent") if isinstance(parse.get("intent"), Mapping) else {}
    name = intent.get("name")
    confidence = intent.get("confidence")
    top_name, top_confidence = name, confidence
    if name == FALLBACK_INTENT:
        top_name, top_confidence = None, None
        for candidate in parse.get("intent_ranking") or []:
            if isinstance(candidate, Mapping) and candidate.get("name") != FALLBACK_INTENT:
                top_name, top_confidence = candidate.get("name"), candidate.get("confidence")
                break
    try:
        top_confidence = float(top_confidence) if top_confidence is not None else None
    except (TypeError, ValueError):
        top_confidence = None
    return name, top_confidence, top_name


def is_fallback(event: Mapping[str, Any]) -> bool:
    """True for a message classified ``nlu_fallback`` or a Rasa fallback action."""
    kind = event.get("event")
    if kind == USER:
        return user_nlu(event)[0] == FALLBACK_INTENT
    return kind == ACTION and event.get("name") in FALLBACK_ACTIONS


def is_handoff(event: Mapping[str, Any]) -> bool:
    """True when ``event`` runs a hand-off action."""
    return event.get("event") == ACTION and event.get("name") in HANDOFF_ACTIONS


def is_custom_action(name: Optional[str]) -> bool:
    """True for our own actions (``action_*`` that Rasa does not define)."""
    return bool(name) and name.startswith("action_") and name not in RASA_DEFAULT_ACTIONS


def is_interruption(event: Mapping[str, Any]) -> bool:
    """True when a form (or action) declined to run: a neutral event, not a failure."""
    return event.get("event") == REJECTED


class FailureDetector:
    """Finds failed custom actions in a stream of events, one event at a time.

    A failed action is a custom action that left no event before the next
    action, rejection, user message or session; a rejection itself is not one.

    ``pending`` is the custom action that ran and has left no event yet; it is
    part of the stored summary, so detection carries across saves.
    """

    def __init__(self, pending: Optional[str] = None) -> None:
        self.pending = pending

    def feed(self, event: Mapping[str, Any]) -> Optional[str]:
        """Consume one event; return the name of an action that has just been found failed."""
        kind = event.get("event")
        failed: Optional[str] = None
        if kind in (ACTION, USER, SESSION_STARTED, REJECTED):
            failed = self.pending
            self.pending = None
            if kind == ACTION and is_custom_action(event.get("name")):
                self.pending = event.get("name")
        elif self.pending is not None:
            self.pending = None  # the action left an event behind: it worked
        return failed


class FormTracker:
    """Follows whether a form (Rasa's active loop) is asking for slots."""

    def __init__(self, active: Optional[str] = None) -> None:
        self.active = active

    def feed(self, event: Mapping[str, Any]) -> None:
        """Consume one event."""
        kind = event.get("event")
        if kind == ACTIVE_LOOP:
            name = event.get("name")
            self.active = str(name)[:255] if name else None
        elif kind in (SESSION_STARTED, RESTART):
            self.active = None
