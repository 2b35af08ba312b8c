"""TailRulePolicy featurises only the last turns, and those are exactly Rasa's states.

The conversations are the project's test stories (forms, checks, hand-overs)
played one after the other in one long tracker, with a rewind
(``UserUtteranceReverted``) and a session restart in between: at every point
where Rasa predicts an action, the states ``tail_states`` computes must equal
the end of what ``Domain.states_for_tracker_history`` computes for the whole
conversation. Predictions equal Rasa's when they do, because RulePolicy's rule
matching never looks further back than its longest rule.
"""

from __future__ import annotations

from typing import List

import pytest
from rasa.core.policies.rule_policy import RULES
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, Event, Restarted, UserUtteranceReverted
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.core.training_data.story_reader.yaml_story_reader import YAMLStoryReader

from supportbot.rule_policy import TailRulePolicy, tail_states
from supportbot.settings import PROJECT_ROOT

DOMAIN = Domain.load(str(PROJECT_ROOT / "domain.yml"))


def story_events() -> List[List[Event]]:
    steps = YAMLStoryReader(DOMAIN).read_from_file(PROJECT_ROOT / "tests" / "test_stories.yml")
    return [[event for event in step.events] for step in steps]


def long_conversation() -> List[Event]:
    events: List[Event] = [ActionExecuted("action_listen")]
    for index, story in enumerate(story_events()):
        events += story
        if index == 3:
            events.append(UserUtteranceReverted())  # a rewind, as the fallback actions do
        if index == 10:
            events.append(Restarted())
        events.append(ActionExecuted("action_listen"))
    return events


@pytest.mark.parametrize("count", [1, 3, 6])
def test_the_tail_states_are_the_end_of_rasas_states_at_every_prediction(count):
    events = long_conversation()
    checked = 0
    for end, event in enumerate(events):
        if not isinstance(event, ActionExecuted):
            continue
        tracker = DialogueStateTracker.from_events("c", events[:end], DOMAIN.slots)
        full = DOMAIN.states_for_tracker_history(tracker)
        assert tail_states(tracker, DOMAIN, count) == full[-count:]
        checked += 1
    assert checked > 50


def test_the_tail_is_as_long_as_the_longest_learnt_rule(model_path):
    """On the project's model (models/assistant.tar.gz), never merely the newest file under models/."""
    from rasa.core.agent import Agent

    policy = next(node for node in Agent.load(str(model_path)).processor.graph_runner._instantiated_nodes.values()
                  if isinstance(getattr(node, "_component", None), TailRulePolicy))._component
    lengths = [len(policy._rule_key_to_state(key)) for key in policy.lookup[RULES]]
    assert policy._longest_rule() == max(lengths) > 1
