"""action_clarify: suggest, admit, offer a person (hand over only on "yes"), and never loop."""

from __future__ import annotations

import asyncio
from typing import Any, Dict, List, Optional

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import ActionExecuted, BotUttered, SessionStarted, UserUttered
from rasa_sdk.executor import CollectingDispatcher

from actions import messages
from actions.clarification import STAGE_KEY, ActionClarify, failed_attempts

RANKING = [
    {"name": "nlu_fallback", "confidence": 1.0},
    {"name": "forgot_password", "confidence": 0.31},
    {"name": "lost_tfa_app", "confidence": 0.22},
    {"name": "greet", "confidence": 0.2},
    {"name": "what_is_tfa", "confidence": 0.12},
    {"name": "close_account", "confidence": 0.01},
]


def user(intent: str, text: str = "...", ranking: Optional[List[Dict]] = None) -> Dict:
    parse = {"intent": {"name": intent, "confidence": 0.9}, "entities": [], "text": text,
             "intent_ranking": ranking or [{"name": intent, "confidence": 0.9}]}
    return UserUttered(text, parse_data=parse)


def clarify_turn(stage: str) -> List[Dict]:
    return [ActionExecuted("action_clarify"), BotUttered("...", metadata={STAGE_KEY: stage}),
            ActionExecuted("action_listen")]


def run_action(events: List[Dict]) -> List[Dict[str, Any]]:
    latest = next(e for e in reversed(events) if e["event"] == "user")
    tracker = Tracker("customer", {}, latest["parse_data"], events, False, None, {}, "action_listen")
    dispatcher = CollectingDispatcher()
    asyncio.run(ActionClarify().run(dispatcher, tracker, {}))
    return dispatcher.messages


def test_first_failure_suggests_the_likely_topics_as_buttons():
    [message] = run_action([SessionStarted(), user("nlu_fallback", "pasword app gone", RANKING)])
    assert message["text"] == messages.CLARIFY_SUGGESTIONS
    payloads = [b["payload"] for b in message["buttons"]]
    # the three most likely topics, best first; chit-chat and unlikely topics left out
    assert payloads == ["/forgot_password", "/lost_tfa_app", "/what_is_tfa", "/deny"]
    assert message["buttons"][-1]["title"] == "Something else"


def test_second_failure_admits_it_and_offers_a_person():
    events = [SessionStarted(), user("nlu_fallback", ranking=RANKING), *clarify_turn("suggestions"),
              user("nlu_fallback", ranking=RANKING)]
    [message] = run_action(events)
    assert message["text"] == messages.CLARIFY_GAVE_UP
    assert [b["payload"] for b in message["buttons"]] == ["/human_handoff", "/deny"]


def test_something_else_counts_as_a_failure():
    events = [SessionStarted(), user("nlu_fallback", ranking=RANKING), *clarify_turn("suggestions"),
              user("deny", "/deny")]
    [message] = run_action(events)
    assert message["text"] == messages.CLARIFY_GAVE_UP


def test_third_failure_offers_the_person_again_and_never_hands_over_silently():
    events = [SessionStarted(), user("nlu_fallback", ranking=RANKING), *clarify_turn("suggestions"),
              user("nlu_fallback", ranking=RANKING), *clarify_turn("gave_up"),
              user("nlu_fallback", ranking=RANKING)]
    [message] = run_action(events)
    assert message["text"] == messages.CLARIFY_GAVE_UP
    assert [b["payload"] for b in message["buttons"]] == ["/human_handoff", "/deny"]
    assert "reference" not in message["text"]


def test_yes_to_the_offer_hands_over(monkeypatch):
    monkeypatch.setenv("SUPPORT_CONTACT", "help@portal.test")
    events = [SessionStarted(), user("nlu_fallback", ranking=RANKING), *clarify_turn("gave_up"),
              user("affirm", "yes")]
    [message] = run_action(events)
    assert "help@portal.test" in message["text"]


def test_no_to_the_offer_ends_politely():
    events = [SessionStarted(), user("nlu_fallback", ranking=RANKING), *clarify_turn("gave_up"),
              user("deny", "no")]
    [message] = run_action(events)
    assert message["response"] == "utter_ok_what_else"


def test_yes_to_the_suggestions_asks_which_one():
    events = [SessionStarted(), user("nlu_fallback", ranking=RANKING), *clarify_turn("suggestions"),
              user("affirm", "yes")]
    [message] = run_action(events)
    assert message["text"] == messages.CLARIFY_PICK_ONE


def test_no_likely_topic_first_time_is_a_plain_first_miss_without_still():
    ranking = [{"name": "nlu_fallback", "confidence": 1.0}, {"name": "greet", "confidence": 0.5}]
    [message] = run_action([SessionStarted(), user("nlu_fallback", ranking=ranking)])
    assert message["text"] == messages.CLARIFY_FIRST_MISS
    assert "still" not in message["text"]


def test_no_likely_topic_the_second_time_admits_it_and_offers_a_person():
    ranking = [{"name": "nlu_fallback", "confidence": 1.0}, {"name": "greet", "confidence": 0.5}]
    events = [SessionStarted(), user("nlu_fallback", ranking=ranking), *clarify_turn("first_miss"),
              user("nlu_fallback", ranking=ranking)]
    [message] = run_action(events)
    assert message["text"] == messages.CLARIFY_GAVE_UP


@pytest.mark.parametrize(
    "events, expected",
    [
        ([user("nlu_fallback")], 1),
        ([user("nlu_fallback"), user("add_user"), user("nlu_fallback")], 1),
        ([user("nlu_fallback"), *clarify_turn("suggestions"), user("deny")], 2),
        ([user("deny")], 0),
        ([user("nlu_fallback"), user("nlu_fallback"), SessionStarted(), user("nlu_fallback")], 1),
    ],
    ids=["one", "understood-message-resets", "no-to-suggestions", "plain-no", "new-session-resets"],
)
def test_failure_count(events, expected):
    assert failed_attempts(events) == expected


def test_no_after_a_first_miss_ends_politely_instead_of_another_miss():
    ranking = [{"name": "nlu_fallback", "confidence": 1.0}, {"name": "greet", "confidence": 0.5}]
    events = [SessionStarted(), user("nlu_fallback", ranking=ranking), *clarify_turn("first_miss"),
              user("deny", "no")]
    [message] = run_action(events)
    assert message["response"] == "utter_ok_what_else"
