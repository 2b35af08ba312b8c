"""Forms that listen: what a customer's message to a form's question means.

Every form slot is filled from the whole message (domain.yml), so each form's
validation action sees every answer first and reads it here before taking
any value from it:

1. "talk to a person" leaves the form and hands the customer over;
2. "cancel", "never mind", "forget it", a plain "no" leave it, nothing changed;
3. "i didn't get the email, can you resend it?" at a code question resends
   the code (the form's :meth:`ListeningFormValidation.resend_code`);
4. a question ("what's the difference between admin and member?") is
   answered (the field's help, or the FAQ answer of its topic) and the same
   question asked again: a question is never taken as a value;
5. at the confirmation, a correction ("the name is actually Acme Rockets
   GmbH") changes that field and the form confirms again; any other message
   drops a destructive operation (closing, disabling a user) with a one-line
   note, and re-asks the others;
6. a request for another operation ("actually, change my currency first")
   leaves this form (nothing changed, a one-line note) and is handled as if
   no form were active;
7. otherwise the value is taken from the sentence ("my code is 855502",
   "switch to US dollars") and validated as before.

Leaving a form sets the slot ``form_exit``; the form then ends and its
submit action says what happened (:func:`actions.operation_flow.form_left`).
At activation the form takes the values already given in the first message
("invite colleague@example.com as an admin") and validates them.
"""

from __future__ import annotations

import abc
import re
from typing import Any, Dict, List, Optional, Text, Tuple

from rasa_sdk import Tracker
from rasa_sdk.events import ActionExecutionRejected, ActiveLoop, EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.forms import REQUESTED_SLOT, FormValidationAction
from rasa_sdk.types import DomainDict

from actions.identity import in_shared_channel
from actions.operation_flow import CONFIRMED, DROPPED, FORM_EXIT, HANDED_OVER, IN_SHARED_CHANNEL, STOPPED
from actions.questions import field_help

PEOPLE = (r"(person|human|humans|agent|representative|operator|support team|support staff|"
          r"customer service|someone real|somebody real|real someone|someone from (support|your team))")
HANDOVER = re.compile(
    r"\b(talk|speak|chat|connect|transfer|put me|get me|give me|reach|pass me|hand me)\b.{0,30}\b"
    + PEOPLE + r"\b|^\W*(a |an |real |live )?" + PEOPLE + r"\W*(please|pls|now)?\W*$", re.IGNORECASE)
STOP = re.compile(
    r"^\W*((no|nah|ok|okay|actually|hmm+|wait|sorry|oh|please|pls|um+)\W+)*("
    r"cancel|cancel (it|that|this)|stop|stop (it|that|this)|never ?mind|nvm|forget (it|that|about it)|"
    r"abort|quit|leave it|don'?t bother|skip it|not now|changed my mind|i('ve| have)? changed my mind|"
    r"i don'?t want (it|this|that|to) ?(any ?more)?|let'?s not|no thanks|no thank you|scrap that"
    r")\b\W*(please|pls|thanks|thx|now|then)?\s*([,.!;]|$)", re.IGNORECASE)
# ... or ending a longer message ("i'll ask my accountant first, cancel for now").
STOP_AT_END = re.compile(
    r"(^|[,.;!]\s*|\b(ok|okay|whatever|so|just|then|actually|please|pls)\s+)(cancel|never ?mind|nvm|"
    r"forget (it|that|about it)|stop|abort|leave it|scrap (it|that))( (it|that|this))?"
    r"( for now| then| please| pls| thanks| thx)?\W*$", re.IGNORECASE)
RESEND = re.compile(
    r"\b(re-?send|send (it|the code|the email|another|a new|me (a|another|the))|new code|another code|"
    r"did ?n[o']?t (get|receive|come|arrive)|have ?n[o']?t (got|gotten|received)|never (got|came|arrived)|"
    r"no (email|mail|code) (came|arrived|yet)|not (received|arrived|there)|nothing (came|arrived)|"
    r"(got|received|get|getting) nothing|still nothing|no (email|mail|code)\b|"
    r"where('s| is) the (code|email))", re.IGNORECASE)
QUESTION_START = re.compile(
    r"^\W*(hm+\W+|wait\W+|sorry\W+|ok\W+|um+\W+|so\W+|and\W+)*(what|whats|what's|how|why|where|which|who|"
    r"when|does|do|is|are|huh|explain|can i|should i|could you explain|tell me)\b", re.IGNORECASE)
# The customer needs a moment ("hold on, i have to look it up").
WAIT = re.compile(r"\b(hold on|hang on|one (sec|second|moment|min|minute)|give me a (sec|second|moment|minute)|"
                  r"look (it|that) up|let me (check|find|look)|wait a (sec|second|moment|minute|bit)|brb)\b",
                  re.IGNORECASE)
# Said instead of an answer: "i dont have any recovery codes", "not sure what the vat id is".
UNSURE = re.compile(r"\b(i )?(don'?t|do not|dont) (know|have|understand|get)\b|\bnot sure\b|\bno idea\b|"
                    r"\bwhere (do|can|would) i (find|get|see)\b", re.IGNORECASE)
# Questions about what a field means: never an answer, even when they name a value.
MEANING = re.compile(
    r"\b(difference|differences|mean|means|meaning|what('?s| is| are)( an?| the)?\s+\w+|explain|"
    r"don'?t (know|have|understand|get)|not sure|no idea|where (do|can|would) i (find|get|see)|"
    r"which (one|should)|what should|what (can|could|does|do|may) (an? |the )?\w+ (do|see|change)|"
    r"can'?t|cannot)\b", re.IGNORECASE)

FAQ_RESPONSES = {
    "what_is_tfa": "utter_what_is_tfa",
    "account_types": "utter_account_types",
    "create_account": "utter_create_account",
    "add_user": "utter_add_user",
    "remove_user": "utter_remove_user",
    "change_account_type": "utter_change_account_type",
    "change_currency": "utter_change_currency",
    "forgot_password": "utter_forgot_password",
}
#: Requests that start another operation: said mid-form without a value, they leave this
#: form and are handled as if no form were active (their own rules run).
OTHER_OPERATIONS = ("add_user", "remove_user", "change_account_type", "change_currency",
                    "close_account", "forgot_password", "lost_tfa_app", "link_account")
#: The key of :meth:`ListeningFormValidation.read_answer`'s result that means "another request".
SWITCH = "__another_request__"
SMALL_TALK = {
    "thank": "utter_youre_welcome",
    "greet": None,
    "bot_challenge": "utter_iamabot",
}
#: Questions about the account and the conversation itself, and "undo": said mid-form
#: without a value, their own rules answer them (actions/lookups.py, actions/followups.py,
#: action_out_of_scope), which set a destructive confirmation aside; the form then asks again.
RULE_INTENTS = ("account_state", "undo", "support_request_followup", "how_to_fix", "no_recovery_codes",
                "help", "why", "out_of_scope")
#: A message no structured field reads a value from: a field that returns it takes free text.
FREE_TEXT_PROBE = "\u2400 no value here \u2400"
#: The key of :meth:`ListeningFormValidation.read_answer`'s result that means "for the rules".
DEFER = "__answered_by_rules__"
#: Forms whose confirmation is dropped rather than asked again after an unrelated message.
DESTRUCTIVE_FORMS = ("close_account_form", "disable_user_form")
CODE_SLOTS = ("step_up_code", "email_code", "link_code")
MIN_CONFIDENCE = 0.5


def wants_a_person(text: str, intent: Optional[str]) -> bool:
    """'talk to a person', 'can i speak to someone real', or the human_handoff intent."""
    return intent == "human_handoff" or bool(HANDOVER.search(text))


def wants_to_stop(text: str) -> bool:
    """'cancel', 'never mind', 'forget it', 'stop', 'i changed my mind'."""
    return bool(STOP.search(text.strip()) or STOP_AT_END.search(text.strip()))


def wants_a_new_code(text: str) -> bool:
    """'i didn't get any email, can you resend it?'."""
    return bool(RESEND.search(text))


def is_question(text: str) -> bool:
    """A question rather than an answer ('what's a recovery code?', 'how does that work')."""
    return "?" in text or bool(QUESTION_START.search(text) or UNSURE.search(text))


def asks_what_it_means(text: str) -> bool:
    """A question about the field itself, never an answer even if it names a value."""
    return is_question(text) and bool(MEANING.search(text))


def latest_text(tracker: Tracker) -> str:
    """The latest message as typed."""
    return str((tracker.latest_message or {}).get("text") or "")


def latest_intent(tracker: Tracker) -> Optional[str]:
    """The latest message's intent when the classifier was confident enough, else None."""
    intent = (tracker.latest_message or {}).get("intent") or {}
    if (intent.get("confidence") or 0.0) < MIN_CONFIDENCE:
        return None
    return intent.get("name")


def current_form(tracker: Tracker) -> str:
    """The name of the active form ("" when none)."""
    return (tracker.active_loop or {}).get("name") or ""


class ListeningFormValidation(FormValidationAction, abc.ABC):
    """Validation of a form that lets go and listens (see the module docstring).

    Subclasses say what a value in a sentence is (:meth:`value_in`), which
    values a first message may already hold (:attr:`prefillable`) and, for a
    code question, how to send a new code (:meth:`resend_code`).
    """

    #: Slots that the message which starts the form may already answer.
    prefillable: List[str] = []
    #: Intents of this form's own topic: their questions are about the fields.
    own_intents: List[str] = []
    #: Questions at which "i didn't get the email" asks for a new code.
    resend_slots: Tuple[str, ...] = CODE_SLOTS

    @abc.abstractmethod
    def name(self) -> Text:
        """``validate_<form name>``."""

    def value_in(self, slot: str, text: str, first_message: bool = False) -> Optional[str]:
        """The value of ``slot`` in a sentence, or None. Free-text slots return the text."""
        return text

    async def resend_code(self, slot: str, dispatcher: CollectingDispatcher,
                          tracker: Tracker) -> Dict[Text, Any]:
        """Send a new code for ``slot`` and say so; the slots to set (default: cannot)."""
        dispatcher.utter_message(text="I can't send a new code here; please enter the one you have.")
        return {slot: None}

    async def help_for(self, slot: str, text: str, tracker: Tracker,
                       form_slots: List[str]) -> Optional[str]:
        """The help for what a question at ``slot`` asks about: that field, another of the form's, or None."""
        others = [other for other in form_slots if other not in (slot, CONFIRMED)]
        if slot != CONFIRMED and CONFIRMED in form_slots:  # about the operation itself, last
            others.append(CONFIRMED)
        for field in [slot, *others]:
            found = await field_help(field, text, tracker)
            if found is not None:
                return found
        return None

    async def answer_question(self, slot: str, dispatcher: CollectingDispatcher, tracker: Tracker,
                              form_slots: List[str]) -> None:
        """Answer a question asked at ``slot``: a field's help, else its topic's FAQ answer."""
        text, intent = latest_text(tracker), latest_intent(tracker)
        help_text = await self.help_for(slot, text, tracker, form_slots)
        if help_text is None and intent in FAQ_RESPONSES and intent not in self.own_intents:
            dispatcher.utter_message(response=FAQ_RESPONSES[intent])
            return
        dispatcher.utter_message(text=help_text or await field_help(slot, "", tracker)
                                 or "Good question; I can't say more about that here.")

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> List[EventType]:
        requested = tracker.get_slot(REQUESTED_SLOT)
        if requested is None:
            self.prefill(tracker)
        elif requested in tracker.slots_to_validate():
            read = await self.read_answer(requested, dispatcher, tracker,
                                          self.domain_slots(domain))
            if read is not None and read.get(DEFER):  # the intent's own rule answers; the form waits
                return [SlotSet(requested, None), ActionExecutionRejected(self.form_name())]
            if read is not None and read.get(SWITCH):
                dispatcher.utter_message(text="(I've left that for now; nothing was changed.)")
                return [*[SlotSet(slot, None) for slot in self.domain_slots(domain)],
                        SlotSet(FORM_EXIT, None), SlotSet(REQUESTED_SLOT, None), ActiveLoop(None),
                        ActionExecutionRejected(self.form_name())]
            if read is not None:
                events = [SlotSet(slot, value) for slot, value in read.items()]
                tracker.add_slots(events)
                following = await self.next_requested_slot(dispatcher, tracker, domain)
                return events + ([following] if following else [])
        return await super().run(dispatcher, tracker, domain)

    async def next_requested_slot(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                                  domain: DomainDict) -> Optional[EventType]:
        if tracker.slots.get(FORM_EXIT):
            return SlotSet(REQUESTED_SLOT, None)
        return await super().next_requested_slot(dispatcher, tracker, domain)

    def prefill(self, tracker: Tracker) -> None:
        """Take the values the first message already gives, for validation as if typed."""
        text = latest_text(tracker)
        if not text or is_question(text) and asks_what_it_means(text):
            return
        found = []
        for slot in self.prefillable:
            if tracker.get_slot(slot) is None:
                value = self.value_in(slot, text, first_message=True)
                if value is not None:
                    found.append(SlotSet(slot, value))
        tracker.add_slots(found)

    async def read_answer(self, slot: str, dispatcher: CollectingDispatcher, tracker: Tracker,
                          form_slots: List[str]) -> Optional[Dict[Text, Any]]:
        """What the answer to ``slot`` means, as slots to set; None to validate it as a value."""
        text, intent = latest_text(tracker).strip(), latest_intent(tracker)
        value = tracker.get_slot(slot)
        if in_shared_channel(tracker):  # never an account's form where others read along
            return {slot: None, FORM_EXIT: IN_SHARED_CHANNEL}
        if wants_a_person(text, None) or (intent == "human_handoff" and not self.gives_value(slot, text)):
            return {slot: None, FORM_EXIT: HANDED_OVER}
        if slot == CONFIRMED:
            return await self.read_confirmation(value, text, intent, dispatcher, tracker, form_slots)
        if wants_to_stop(text) or intent == "goodbye":
            return {slot: None, FORM_EXIT: STOPPED}
        if slot in self.resend_slots and wants_a_new_code(text):
            return await self.resend_code(slot, dispatcher, tracker)
        found = self.value_in(slot, text)
        free_text = found == text
        if WAIT.search(text) and (free_text or found is None):
            dispatcher.utter_message(text="No rush, take your time.")
            return {slot: None}
        if is_question(text) and (free_text or found is None or asks_what_it_means(text)):
            if intent in RULE_INTENTS and await self.help_for(slot, text, tracker, form_slots) is None:
                return {DEFER: True}  # about the account or the conversation: its own rule answers
            await self.answer_question(slot, dispatcher, tracker, form_slots)
            return {slot: None}
        if found is None and intent == "deny":
            return {slot: None, FORM_EXIT: STOPPED}
        if (found is None and intent in OTHER_OPERATIONS and intent not in self.own_intents
                and not (slot in CODE_SLOTS and len(text.split()) < 3)):  # "verified" is no request
            return {SWITCH: intent}
        if found is None and intent in FAQ_RESPONSES and intent not in self.own_intents:
            dispatcher.utter_message(response=FAQ_RESPONSES[intent])
            return {slot: None}
        if found is None and intent == "out_of_scope" and len(text.split()) <= 2:
            return None  # a short answer that is not a value ("bitcoin"): validation says why
        if found is None and intent in RULE_INTENTS and not free_text:
            return {DEFER: True}  # "undo that", "is it still closing?": its own rule answers
        if found is None and intent in SMALL_TALK:
            if SMALL_TALK[intent]:
                dispatcher.utter_message(response=SMALL_TALK[intent])
            return {slot: None}
        if found is not None and found != value:
            tracker.add_slots([SlotSet(slot, found)])  # validated as if typed alone
        return None

    def gives_value(self, slot: str, text: str) -> bool:
        """Whether ``text`` holds a value of ``slot`` found in it (an address, a code), not just free text."""
        if slot == CONFIRMED or self.value_in(slot, FREE_TEXT_PROBE) == FREE_TEXT_PROBE:
            return False  # a free-text field takes any message: that says nothing
        return self.value_in(slot, text) is not None

    async def read_confirmation(self, value: Any, text: str, intent: Optional[str],
                                dispatcher: CollectingDispatcher, tracker: Tracker,
                                form_slots: List[str]) -> Optional[Dict[Text, Any]]:
        """The answer to "Shall I ...?": yes, no, a correction, a question or something else."""
        corrected = await self.correction(text, dispatcher, tracker)
        if corrected is not None:
            return {**corrected, CONFIRMED: None}
        if wants_to_stop(text) or intent == "goodbye":
            return {CONFIRMED: None, FORM_EXIT: STOPPED}
        if isinstance(value, bool):
            return None
        if intent == "deny":
            return {CONFIRMED: False}
        if is_question(text):
            help_text = await self.help_for(CONFIRMED, text, tracker, form_slots)
            if help_text is not None:  # about this operation: answered, then asked again
                dispatcher.utter_message(text=help_text)
                return {CONFIRMED: None}
            if intent in self.own_intents:  # the question asked again says what it does
                return {CONFIRMED: None}
        if intent in OTHER_OPERATIONS and intent not in self.own_intents and not is_question(text):
            return {SWITCH: intent}
        if intent in RULE_INTENTS or intent == "thank":
            return {DEFER: True}  # its own rule answers and sets a destructive confirmation aside
        response = (FAQ_RESPONSES.get(intent) if intent not in self.own_intents else None) \
            or SMALL_TALK.get(intent or "")
        if response:
            dispatcher.utter_message(response=response)
        if current_form(tracker) in DESTRUCTIVE_FORMS:
            return {CONFIRMED: None, FORM_EXIT: DROPPED}
        if not response:
            dispatcher.utter_message(text="Sorry, I need a yes or a no to that.")
        return {CONFIRMED: None}

    async def correction(self, text: str, dispatcher: CollectingDispatcher,
                         tracker: Tracker) -> Optional[Dict[Text, Any]]:
        """Slots a correction at the confirmation changes ("make it GBP instead"), or None."""
        return None
