"""Step-up in a conversation: a fresh second factor before a sensitive operation.

After the customer confirms closing the account, changing the currency,
disabling a user, switching to business or inviting an owner or admin, the
form asks for ``step_up_code``: a current code from their authenticator app
when TFA is on, otherwise a code the assistant has just emailed them
(accounts/step_up.py decides and sends). Whatever the customer types there is
only ever a code to check: the account domain checks it at once and grants
that one operation, with those parameters (:data:`STEP_UP_PARAMS`), to this
conversation for a few minutes. The verdict lives in ``step_up_verdict``, a
slot no message can fill (custom mapping) and only these actions set; a
typed "verified" is a wrong code. The code itself never reaches the tracker
store (supportbot/redaction.py masks the slot's values and the message that
carried it).
"""

from __future__ import annotations

import abc
import math
import re

from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from accounts import step_up
from accounts.results import Reason, Refused, StepUpStarted
from actions.account_store import call_domain
from actions.form_listening import ListeningFormValidation
from actions.identity import identify
from actions.operation_flow import CONFIRMED, idempotency_key

STEP_UP_CODE = "step_up_code"
STEP_UP_METHOD = "step_up_method"
#: Set only by our actions: ``verified`` or ``failed``.
STEP_UP_VERDICT = "step_up_verdict"
VERIFIED = "verified"
FAILED = "failed"

# Form -> the account domain's name of the operation it performs.
STEP_UP_FORMS = {
    "close_account_form": "close_account",
    "currency_form": "change_currency",
    "disable_user_form": "disable_member",
    "business_form": "switch_to_business",
    "invite_form": "invite_member",
}

# Form -> (domain parameter, slot) pairs the grant is bound to; the submit
# actions pass the same slots to the operation.
STEP_UP_PARAMS = {
    "currency_form": (("currency", "currency"),),
    "disable_user_form": (("email", "disable_email"),),
    "business_form": (("company_name", "company_name"), ("vat_id", "vat_id")),
    "invite_form": (("email", "invite_email"), ("role", "invite_role")),
}


def bound_params(form: str, tracker: Tracker) -> Optional[Dict[str, Any]]:
    """The operation parameters a step-up in ``form`` is granted for (None: none)."""
    pairs = STEP_UP_PARAMS.get(form)
    return None if not pairs else {name: tracker.get_slot(slot) for name, slot in pairs}


SIX_DIGITS = re.compile(r"(?<![\d-])(\d{3})[ -]?(\d{3})(?![\d-])")


def code_in_text(text: str) -> Optional[str]:
    """The 6-digit one-time code in a message ("my code is 855 502" -> "855502"), or None."""
    found = SIX_DIGITS.findall(str(text or ""))
    return "".join(found[-1]) if found else None


def retry_after(refused: Refused) -> str:
    """When a limited customer may try again, in whole minutes rounded up ("10 minutes")."""
    minutes = max(1, math.ceil(int(refused.details.get("retry_after_seconds") or 60) / 60))
    return f"{minutes} minute{'s' if minutes > 1 else ''}"


CODE_FROM_APP = "To confirm it's you, please enter the 6-digit code from your authenticator app."
CODE_FROM_EMAIL = "Please enter the 6-digit code from the email I sent you."


class ActionAskStepUpCode(Action):
    """Starts the step-up once per form and asks for the code."""

    def name(self) -> Text:
        return "action_ask_step_up_code"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        method = tracker.get_slot(STEP_UP_METHOD)
        if method is None:
            form = (tracker.active_loop or {}).get("name", "")
            customer = await identify(tracker)
            operation = STEP_UP_FORMS.get(form)
            if customer is None or operation is None:
                dispatcher.utter_message(text="I can't verify you in this conversation.")
                return [SlotSet(STEP_UP_VERDICT, FAILED)]
            started = await call_domain(step_up.start_step_up, customer.actor, operation,
                                        idempotency_key=idempotency_key(tracker, "step_up_start"))
            if isinstance(started, Refused) and started.reason == Reason.RATE_LIMITED:
                # The form stays where it is: what the customer gave is kept.
                dispatcher.utter_message(
                    text="I can't send you a code right now: too many were sent in the last few "
                         f"minutes. I've kept everything you told me; in {retry_after(started)} "
                         "say \"send the code\" and we'll go on (or \"cancel\" to stop).")
                return []
            if isinstance(started, Refused):
                dispatcher.utter_message(text="I can't verify you for this right now.")
                return [SlotSet(STEP_UP_VERDICT, FAILED)]
            assert isinstance(started, StepUpStarted)
            text = (CODE_FROM_APP if started.method == "totp" else
                    "To confirm it's you, I've emailed a 6-digit code to your address. "
                    "Please enter it here (it expires in 10 minutes).")
            dispatcher.utter_message(text=text)
            return [SlotSet(STEP_UP_METHOD, started.method)]
        # Asked again (after a wrong code or a question): no new code was sent.
        dispatcher.utter_message(text=CODE_FROM_APP if method == "totp" else CODE_FROM_EMAIL)
        return []


class StepUpFormValidation(ListeningFormValidation, abc.ABC):
    """Validation shared by the forms of sensitive operations.

    Skips the step-up when the customer said no, when a verdict exists or when
    the values collected need none; checks a code found in the message (also
    inside a sentence) with the account domain, which sets the verdict; and
    resends the code when asked (a new code, counted by the send limit, not as
    a wrong code). A message without a code is never a verdict.
    """

    @abc.abstractmethod
    def name(self) -> Text:
        """``validate_<form name>``."""

    def step_up_needed(self, tracker: Tracker) -> bool:
        """Whether this form's operation needs a step-up with the values collected so far."""
        return True

    def value_in(self, slot: str, text: str, first_message: bool = False) -> Optional[str]:
        if slot == STEP_UP_CODE:
            return code_in_text(text)
        return super().value_in(slot, text, first_message)

    async def resend_code(self, slot: str, dispatcher: CollectingDispatcher,
                          tracker: Tracker) -> Dict[Text, Any]:
        if tracker.get_slot(STEP_UP_METHOD) == "totp":
            dispatcher.utter_message(text="I don't send this code: it comes from your "
                                          "authenticator app, and changes every 30 seconds.")
            return {STEP_UP_CODE: None}
        customer = await identify(tracker)
        operation = STEP_UP_FORMS.get((tracker.active_loop or {}).get("name", ""))
        if customer is None or operation is None:
            return {STEP_UP_CODE: None, STEP_UP_VERDICT: FAILED}
        started = await call_domain(step_up.start_step_up, customer.actor, operation,
                                    idempotency_key=idempotency_key(tracker, "step_up_start"))
        if isinstance(started, Refused) and started.reason == Reason.RATE_LIMITED:
            dispatcher.utter_message(text="I can't send another code yet: too many were sent in "
                                          f"the last few minutes. Please try again in "
                                          f"{retry_after(started)}; the last code I sent still works.")
            return {STEP_UP_CODE: None}
        if isinstance(started, Refused):
            dispatcher.utter_message(text="I can't verify you for this right now.")
            return {STEP_UP_CODE: None, STEP_UP_VERDICT: FAILED}
        dispatcher.utter_message(
            text="I've emailed you a new 6-digit code; the one before no longer works. It can take "
                 "a minute to arrive." if tracker.get_slot(STEP_UP_METHOD) else
                 "I've emailed you a 6-digit code now (it expires in 10 minutes).")
        return {STEP_UP_CODE: None, STEP_UP_METHOD: started.method}

    async def required_slots(self, domain_slots: List[Text], dispatcher: CollectingDispatcher,
                             tracker: Tracker, domain: DomainDict) -> List[Text]:
        if (tracker.get_slot(CONFIRMED) is False or tracker.get_slot(STEP_UP_VERDICT) is not None
                or not self.step_up_needed(tracker)):
            return [slot for slot in domain_slots if slot != STEP_UP_CODE]
        return domain_slots

    async def validate_step_up_code(self, value: Any, dispatcher: CollectingDispatcher,
                                    tracker: Tracker, domain: DomainDict) -> Dict[Text, Any]:
        if value is None or tracker.get_slot(STEP_UP_VERDICT) is not None:  # not given yet, or decided
            return {STEP_UP_CODE: None}
        if tracker.get_slot(STEP_UP_METHOD) is None:  # no code was sent (limited): ask again
            return {STEP_UP_CODE: None}
        customer = await identify(tracker)
        form = (tracker.active_loop or {}).get("name", "")
        operation = STEP_UP_FORMS.get(form)
        code = code_in_text(str(value))
        if code is None:  # "yes" again, "verified" or other words: never a verdict, not a guess
            dispatcher.utter_message(text="That doesn't look like a 6-digit code.")
            return {STEP_UP_CODE: None}
        if customer is None or operation is None:
            return {STEP_UP_CODE: None, STEP_UP_VERDICT: FAILED}
        result = await call_domain(step_up.verify_step_up, customer.actor, operation, code,
                                   idempotency_key=idempotency_key(tracker, "step_up_verify"),
                                   conversation_id=tracker.sender_id, params=bound_params(form, tracker))
        if not isinstance(result, Refused):
            return {STEP_UP_CODE: None, STEP_UP_VERDICT: VERIFIED}
        if result.reason == Reason.TOO_MANY_ATTEMPTS:
            dispatcher.utter_message(text="That's too many wrong codes, so I've stopped for now. "
                                          f"Please try again in {retry_after(result)}.")
            return {STEP_UP_CODE: None, STEP_UP_VERDICT: FAILED}
        if result.reason in (Reason.CODE_EXPIRED, Reason.NO_CODE_PENDING):
            dispatcher.utter_message(text="That code has expired. I've stopped here; ask me "
                                          "again to get a new one.")
            return {STEP_UP_CODE: None, STEP_UP_VERDICT: FAILED}
        if result.reason == Reason.CODE_USED:
            dispatcher.utter_message(text="That code was already used. Please wait for the next "
                                          "code in your app and enter that one.")
        else:
            dispatcher.utter_message(text="That code isn't right, sorry.")
        return {STEP_UP_CODE: None}


class ValidateCloseAccountForm(StepUpFormValidation):
    """The closing form: confirmation, then step-up."""

    own_intents = ["close_account"]

    def name(self) -> Text:
        return "validate_close_account_form"


def step_up_passed(tracker: Tracker) -> bool:
    """Whether this form's step-up succeeded (a verdict only our actions set)."""
    return tracker.get_slot(STEP_UP_VERDICT) == VERIFIED
