"""Every custom action the domain names is served by the action server, and no stray ones."""

import yaml
from rasa_sdk.executor import ActionExecutor

from supportbot.settings import PROJECT_ROOT


def test_domain_actions_and_action_server_agree():
    domain = yaml.safe_load((PROJECT_ROOT / "domain.yml").read_text())
    executor = ActionExecutor()
    executor.register_package("actions")
    served = set(executor.actions)
    declared = {a for a in domain["actions"] if not a.startswith("utter_")}
    assert declared - served == set(), "declared in domain.yml but not served"
    assert served - declared == set(), "served but not declared in domain.yml"
