"""Rasa's RulePolicy, featurising only the turns a rule can look at.

``RulePolicy`` builds a state for every earlier action of the session on every
prediction (``Domain.states_for_tracker_history``, three times per turn): at
turn 300 of a conversation that is ~600 states and ~20 ms per turn, the main
reason a long conversation gets slower (docs/performance.md). Yet its rule
matching (``RulePolicy._get_possible_keys``) compares only the last ``n`` states
of the conversation with a rule of ``n`` states; further back, every rule is
applicable by definition.

:class:`TailRulePolicy` computes exactly those last states, as many as the
longest learnt rule, by the same replay Rasa does
(``applied_events`` into ``init_copy``, a state before each action and one at
the end), so its predictions are Rasa's. Only the "current_states" of
RulePolicy's DEBUG log line get shorter. Everything else, training included,
is RulePolicy's.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Text

from rasa.core.policies.rule_policy import RULES, RULES_FOR_LOOP_UNHAPPY_PATH, RulePolicy
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.shared.core.domain import Domain, State
from rasa.shared.core.events import ActionExecuted
from rasa.shared.core.trackers import DialogueStateTracker


def tail_states(tracker: DialogueStateTracker, domain: Domain, count: int) -> List[State]:
    """``domain.states_for_tracker_history(tracker)[-count:]``, computing only those states.

    (With Rasa's defaults: slots unset are included, rule-only turns are kept.)
    """
    applied = tracker.applied_events()
    total = sum(isinstance(event, ActionExecuted) for event in applied) + 1
    skip = max(0, total - count)
    states: List[State] = []
    prior = tracker.init_copy()
    index = 0
    for event in applied:
        if isinstance(event, ActionExecuted):
            if index >= skip:
                states.append(domain._clean_state(domain.get_active_state(prior)))
            index += 1
        prior.update(event)
    states.append(domain._clean_state(domain.get_active_state(prior)))
    return states


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.POLICY_WITHOUT_END_TO_END_SUPPORT, is_trainable=True
)
class TailRulePolicy(RulePolicy):
    """RulePolicy whose predictions featurise only as many turns as its longest rule."""

    def _longest_rule(self) -> int:
        keys = list(self.lookup.get(RULES, {})) + list(self.lookup.get(RULES_FOR_LOOP_UNHAPPY_PATH, {}))
        return max((len(self._rule_key_to_state(key)) for key in keys), default=0)

    def _prediction_states(
        self,
        tracker: DialogueStateTracker,
        domain: Domain,
        use_text_for_last_user_input: bool = False,
        rule_only_data: Optional[Dict[Text, Any]] = None,
    ) -> List[State]:
        """RulePolicy's prediction states, cut to the longest rule (see the module docstring)."""
        states = tail_states(tracker, domain, max(1, self._longest_rule()))
        trackers_as_states = [self.featurizer.slice_state_history(states, self.featurizer.max_history)]
        # what MaxHistoryTrackerFeaturizer.prediction_states does after building the states
        self.featurizer._choose_last_user_input(trackers_as_states, use_text_for_last_user_input)
        return trackers_as_states[0]
