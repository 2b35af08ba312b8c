"""Clarification when the assistant did not understand a message.

One action owns the whole path, so it can never loop:

1. the first message it does not understand gets "Did you mean ...?" with a
   button for each likely topic and a "Something else" button;
2. a second failure in a row (another unclear message, or "Something else" /
   "no" to the suggestions) gets an honest admission and the offer of a person;
3. "yes" to that offer hands the customer to a person, "no" ends the path
   politely; a third failure offers the person again: nobody is handed over
   without saying yes (a message with no likely topic at all, such as an emoji,
   gets a plain "I didn't understand" the first time).

The stage comes from the conversation itself (the count of failures and the
last clarification the assistant gave), so there is no state to get out of step.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions import messages
from actions.handoff import add_to_request, hand_over, open_request_of
from actions.topics import TOPIC_TITLES

ACTION_NAME = "action_clarify"
FALLBACK_INTENT = "nlu_fallback"
# A message in another language is answered on its own and is not a misunderstanding.
OTHER_LANGUAGE_INTENT = "other_language"
MAX_SUGGESTIONS = 3
# A topic below this confidence is too unlikely to suggest.
MIN_SUGGESTION_CONFIDENCE = 0.05
SOMETHING_ELSE_PAYLOAD = "/deny"

# Each clarification message carries its stage in the bot event's metadata
# under STAGE_KEY, so the next turn knows what the customer is answering.
STAGE_KEY = "clarification_stage"
SUGGESTIONS = "suggestions"
GAVE_UP = "gave_up"
FIRST_MISS = "first_miss"
PICK_ONE = "pick_one"
OK_WHAT_ELSE = "utter_ok_what_else"


def failed_attempts(events: List[Dict[str, Any]]) -> int:
    """Count how many times in a row the assistant has failed to understand.

    A message that was not understood counts, and so does "no" right after a
    clarification. A message in another language neither counts nor breaks the
    streak. Any other message, or a new session, starts again at zero.
    """
    streak = 0
    last_action: Optional[str] = None
    for event in events:
        kind = event.get("event")
        if kind == "session_started":
            streak, last_action = 0, None
        elif kind == "action" and event.get("name") != "action_listen":
            last_action = event.get("name")
        elif kind == "user":
            intent = ((event.get("parse_data") or {}).get("intent") or {}).get("name")
            if intent == OTHER_LANGUAGE_INTENT:
                continue
            rejected = intent == "deny" and last_action == ACTION_NAME
            streak = streak + 1 if intent == FALLBACK_INTENT or rejected else 0
    return streak


def last_clarification(events: List[Dict[str, Any]]) -> Optional[str]:
    """The clarification the assistant gave just before the latest message, if any."""
    user_turns_seen = 0
    for event in reversed(events):
        kind = event.get("event")
        if kind == "user":
            user_turns_seen += 1
            if user_turns_seen == 2:
                return None
        elif kind == "bot" and user_turns_seen == 1:
            stage = (event.get("metadata") or {}).get(STAGE_KEY)
            if stage:
                return stage
    return None


def suggested_topics(intent_ranking: List[Dict[str, Any]]) -> List[str]:
    """The most likely topics of a message, best first, that are worth offering."""
    suggestions = []
    for candidate in intent_ranking:
        name = candidate.get("name")
        confidence = candidate.get("confidence") or 0.0
        if name in TOPIC_TITLES and confidence >= MIN_SUGGESTION_CONFIDENCE:
            suggestions.append(name)
        if len(suggestions) == MAX_SUGGESTIONS:
            break
    return suggestions


class ActionClarify(Action):
    """Asks what the customer meant, admits defeat, then hands over: never loops."""

    def name(self) -> Text:
        return ACTION_NAME

    async def run(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: Dict[Text, Any],
    ) -> List[Dict[Text, Any]]:
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        previous = last_clarification(tracker.events)

        if intent == "affirm":
            if previous == GAVE_UP:
                return await hand_over(dispatcher, tracker, "clarification_failed")
            if previous == FIRST_MISS:
                dispatcher.utter_message(text=messages.HOW_CAN_I_HELP)
            else:
                dispatcher.utter_message(text=messages.CLARIFY_PICK_ONE, **{STAGE_KEY: PICK_ONE})
            return []
        if intent == "deny" and previous != SUGGESTIONS:
            dispatcher.utter_message(response=OK_WHAT_ELSE)
            return []

        request_id = await open_request_of(tracker)
        if request_id is not None:
            # With a request open, what the customer adds is for the team.
            return await add_to_request(dispatcher, tracker, request_id)
        attempt = failed_attempts(tracker.events)
        topics = suggested_topics(tracker.latest_message.get("intent_ranking") or [])
        if attempt <= 1 and not topics:
            dispatcher.utter_message(text=messages.CLARIFY_FIRST_MISS, **{STAGE_KEY: FIRST_MISS})
            return []
        if attempt >= 2 or not topics:
            dispatcher.utter_message(
                text=messages.CLARIFY_GAVE_UP,
                buttons=[
                    {"title": "Talk to support", "payload": "/human_handoff"},
                    {"title": "No, thanks", "payload": "/deny"},
                ],
                **{STAGE_KEY: GAVE_UP},
            )
            return []
        buttons = [
            {"title": TOPIC_TITLES[topic], "payload": f"/{topic}"} for topic in topics
        ]
        buttons.append({"title": "Something else", "payload": SOMETHING_ELSE_PAYLOAD})
        dispatcher.utter_message(
            text=messages.CLARIFY_SUGGESTIONS, buttons=buttons, **{STAGE_KEY: SUGGESTIONS}
        )
        return []
