"""A lost authenticator app, in a conversation (accounts/tfa_recovery.py does the work).

1. ``action_check_tfa_recovery``: anonymous customers get the FAQ answer (they
   can sign in to the portal chat or verify themselves on Slack, Telegram or
   the widget first). A verified customer with saved recovery codes gets a code
   by email; one without them gets a support request for a manual identity
   check, with the conversation: the assistant never resets TFA on chat
   evidence alone.
2. ``tfa_recovery_form`` asks for one saved recovery code and the emailed
   code. The recovery code is checked against the stored hashes without
   being used up, and the account store keeps only a pending proof for this
   conversation (which code row matched, or none; never the code). When the
   emailed code arrives, possibly at another action server, the account
   domain judges both together in one transaction, without saying which
   was wrong. The slots only ever hold placeholders and the codes never
   reach the tracker store (supportbot/redaction.py).
3. ``action_finish_tfa_recovery`` tells what happened: the old app is off, an
   enrolment link (15 minutes, single use) is in the customer's mailbox, and
   every address on the account was told. The new secret is never in the chat.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from accounts import tfa_recovery
from accounts.results import Reason, Refused
from actions.account_store import call_domain
from actions.form_listening import ListeningFormValidation
from actions.handoff import redacted_transcript
from actions.identity import identify
from actions.operation_flow import (
    ALLOWED,
    ANONYMOUS,
    BLOCKED,
    form_left,
    report_failure,
    OPERATION_CHECK,
    idempotency_key,
    logger,
    operation_outcome,
)
from actions.step_up import code_in_text, retry_after

OPERATION = "tfa_recovery"
RECOVERY_CODE, EMAIL_CODE = "recovery_code", "email_code"
VERIFIED, FAILED, RECEIVED = "verified", "failed", "received"
RECOVERY_RESULT = "tfa_recovery_result"


# A saved recovery code as customers type it: XXXX-XXXX-XXXX-XXXX (the generator's
# form) or the demo accounts' DEMO-RECOVERY-01, with dashes, spaces or neither.
_GENERATED = re.compile(r"(?<![A-Za-z0-9])([A-Za-z0-9]{4})[ -]?([A-Za-z0-9]{4})[ -]?([A-Za-z0-9]{4})"
                        r"[ -]?([A-Za-z0-9]{4})(?![A-Za-z0-9])")
_DEMO = re.compile(r"\bdemo[ -]*recovery[ -]*(\d{2})\b", re.IGNORECASE)


def recovery_code_in_text(text: str) -> Optional[str]:
    """The recovery code in a message ("ok found them: demo recovery 03"), as it was issued."""
    demo = _DEMO.search(text or "")
    if demo:
        return f"DEMO-RECOVERY-{demo.group(1)}"
    found = [match for match in _GENERATED.finditer(text or "")
             if any(ch.isdigit() for ch in match.group(0))] or list(_GENERATED.finditer(text or ""))
    return "-".join(found[-1].groups()).upper() if found else None


class ActionCheckTfaRecovery(Action):
    """Starts a TFA recovery for a verified customer, or says why it can't."""

    def name(self) -> Text:
        return "action_check_tfa_recovery"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        customer = await identify(tracker)
        if customer is None:
            return [SlotSet(OPERATION_CHECK, ANONYMOUS)]
        try:
            started = await call_domain(
                tfa_recovery.start_tfa_recovery, customer.actor,
                idempotency_key=idempotency_key(tracker, "tfa_recovery_start"),
                channel=customer.channel,
                context={"conversation": tracker.sender_id, "transcript": redacted_transcript(tracker)},
            )
        except Exception:  # noqa: BLE001 - reported to the customer and logged
            logger.exception("TFA recovery could not start")
            return [SlotSet(OPERATION_CHECK, BLOCKED),
                    *await report_failure(dispatcher, tracker, OPERATION)]
        if isinstance(started, Refused):
            if started.reason in (Reason.NO_RECOVERY_CODES, Reason.TFA_NOT_ENABLED):
                reference = started.details.get("reference") or "on file"
                dispatcher.utter_message(
                    text="I can't reset two-factor authentication here without one of your saved "
                         "recovery codes, and I won't do it on chat evidence alone. I've asked our "
                         f"support team to check your identity (reference {reference}); they'll "
                         f"contact you at {customer.email}.")
            elif started.reason == Reason.RATE_LIMITED:
                dispatcher.utter_message(text="Too many codes were sent recently. Please try again "
                                              f"in {retry_after(started)}.")
            else:
                dispatcher.utter_message(text="I can't reset two-factor authentication for this "
                                              "account here. Please contact our support team.")
            return [SlotSet(OPERATION_CHECK, BLOCKED),
                    operation_outcome(OPERATION, "refused", started.reason.value)]
        dispatcher.utter_message(
            text="I can reset your two-factor authentication once you've proved it's you twice: "
                 "with one of the recovery codes you saved when you set up the app, and with a "
                 f"code I've just emailed to {customer.email}.")
        return [SlotSet(OPERATION_CHECK, ALLOWED)]


class ValidateTfaRecoveryForm(ListeningFormValidation):
    """Checks both proofs together once the second one is given."""

    own_intents = ["lost_tfa_app", "what_is_tfa"]
    resend_slots = (RECOVERY_CODE, EMAIL_CODE)

    def name(self) -> Text:
        return "validate_tfa_recovery_form"

    def value_in(self, slot: str, text: str, first_message: bool = False) -> Optional[str]:
        if slot == RECOVERY_CODE:
            return recovery_code_in_text(text)
        if slot == EMAIL_CODE:
            return code_in_text(text)
        return super().value_in(slot, text, first_message)

    async def resend_code(self, slot: str, dispatcher: CollectingDispatcher,
                          tracker: Tracker) -> Dict[Text, Any]:
        """A new e-mailed code (the saved recovery code already given stays noted)."""
        customer = await identify(tracker)
        if customer is None:
            return _stopped("not_verified")
        started = await call_domain(
            tfa_recovery.start_tfa_recovery, customer.actor,
            idempotency_key=idempotency_key(tracker, "tfa_recovery_start"), channel=customer.channel,
            context={"conversation": tracker.sender_id, "transcript": redacted_transcript(tracker)})
        if isinstance(started, Refused) and started.reason == Reason.RATE_LIMITED:
            dispatcher.utter_message(text="I can't send another code yet: too many were sent in the "
                                          f"last few minutes. Please try again in {retry_after(started)}; "
                                          "the last code I sent still works.")
            return {slot: None}
        if isinstance(started, Refused):
            return _stopped(started.reason.value)
        dispatcher.utter_message(text=f"I've emailed a new code to {customer.email}; the one before "
                                      "no longer works.")
        return {slot: None}

    async def validate_recovery_code(self, value: Any, dispatcher: CollectingDispatcher,
                                     tracker: Tracker, domain: DomainDict) -> Dict[Text, Any]:
        if value is None:  # not given yet (e.g. when the form starts)
            return {RECOVERY_CODE: None}
        code = recovery_code_in_text(str(value))
        if code is None:
            dispatcher.utter_message(text="That doesn't look like a recovery code (they look like "
                                          "ABCD-EFGH-JKLM-NPQR).")
            return {RECOVERY_CODE: None}
        customer = await identify(tracker)
        if customer is None:
            return _stopped("not_verified")
        held = await call_domain(
            tfa_recovery.hold_recovery_code, customer.actor, conversation_id=tracker.sender_id,
            recovery_code=code, idempotency_key=idempotency_key(tracker, "tfa_recovery_hold"),
        )
        if isinstance(held, Refused):
            return _stopped(held.reason.value)
        return {RECOVERY_CODE: RECEIVED}

    async def validate_email_code(self, value: Any, dispatcher: CollectingDispatcher,
                                  tracker: Tracker, domain: DomainDict) -> Dict[Text, Any]:
        if value is None:  # not given yet
            return {EMAIL_CODE: None}
        if code_in_text(str(value)) is None:  # words, not a code: not a wrong code either
            dispatcher.utter_message(text="That doesn't look like a 6-digit code.")
            return {EMAIL_CODE: None}
        customer = await identify(tracker)
        if customer is None:
            return _stopped("not_verified")
        result = await call_domain(
            tfa_recovery.complete_held_tfa_recovery, customer.actor, conversation_id=tracker.sender_id,
            email_code=code_in_text(str(value)) or "",
            idempotency_key=idempotency_key(tracker, "tfa_recovery_complete"),
        )
        if not isinstance(result, Refused):
            return {EMAIL_CODE: VERIFIED, RECOVERY_CODE: VERIFIED,
                    RECOVERY_RESULT: "completed"}
        if result.details.get("proof") == RECOVERY_CODE:  # none held here, or it expired
            dispatcher.utter_message(text="That took a little too long, so I need your recovery "
                                          "code again.")
            return {EMAIL_CODE: None, RECOVERY_CODE: None}
        if result.reason == Reason.CODE_INVALID:
            dispatcher.utter_message(text="One of the two codes isn't right. Let's try again.")
            return {EMAIL_CODE: None, RECOVERY_CODE: None}
        return _stopped(result.reason.value)


def _stopped(outcome: str) -> Dict[Text, Any]:
    """Slots that end the form with ``outcome`` for action_finish_tfa_recovery to explain."""
    return {EMAIL_CODE: FAILED, RECOVERY_CODE: FAILED, RECOVERY_RESULT: outcome}


class ActionFinishTfaRecovery(Action):
    """Tells the customer the outcome of the recovery."""

    def name(self) -> Text:
        return "action_finish_tfa_recovery"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        outcome: Optional[str] = tracker.get_slot(RECOVERY_RESULT)
        reset = [SlotSet(RECOVERY_CODE, None), SlotSet(EMAIL_CODE, None),
                 SlotSet(RECOVERY_RESULT, None), SlotSet(OPERATION_CHECK, None)]
        left = await form_left(dispatcher, tracker, OPERATION, "reset two-factor authentication")
        if left is not None:
            return [*reset, *left]
        if outcome == "completed":
            dispatcher.utter_message(
                text="Done: your old authenticator app no longer works for this account. I've "
                     "emailed you a link to set up the new one; it works once, for 15 minutes, and "
                     "shows the QR code and your new recovery codes. Everyone on the account has "
                     "been told, with a way to report it if it wasn't you.")
            return [*reset, operation_outcome(OPERATION, "performed")]
        texts = {
            Reason.TOO_MANY_ATTEMPTS.value: "That's too many wrong codes, so I've stopped for now. "
                                            "Please try again later.",
            Reason.CODE_EXPIRED.value: "The emailed code has expired. Tell me again that you lost "
                                       "the app to get a new one.",
        }
        dispatcher.utter_message(text=texts.get(outcome or "", "I couldn't reset two-factor "
                                                               "authentication; nothing was changed."))
        return [*reset, operation_outcome(OPERATION, "refused", outcome or "unknown")]
