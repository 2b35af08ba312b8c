"""The run-time fixes keep Rasa's behaviour: action server answers are judged as Rasa judges them."""

from __future__ import annotations

import jsonschema
import pytest
from rasa.core.actions.action import RemoteAction
from rasa.shared.core.domain import Domain
from rasa.utils.endpoints import EndpointConfig

from supportbot import rasa_fixes

GOOD = [
    {"events": [], "responses": []},
    {"events": [{"event": "slot", "name": "operation_check", "value": "anonymous", "timestamp": None}],
     "responses": [{"text": "To close your account, first cancel all services.", "buttons": [
         {"title": "Talk to support", "payload": "/human_handoff"}]}]},
]
BAD = [
    {"events": [{"name": "no event type"}], "responses": []},
    {"events": "not a list", "responses": []},
    {"events": [], "responses": "not a list"},
]


def _remote_action() -> RemoteAction:
    return RemoteAction("action_check_closure", EndpointConfig("http://127.0.0.1:9/webhook"))


def _rasa_verdict(result):
    try:
        jsonschema.validate(result, RemoteAction.action_response_format_spec())
        return True, None
    except jsonschema.ValidationError as error:
        return False, error.message


@pytest.fixture(scope="module")
def fixed_action() -> RemoteAction:
    rasa_fixes.install()
    rasa_fixes.install()  # idempotent
    return _remote_action()


@pytest.mark.parametrize("result", GOOD)
def test_a_valid_action_server_answer_is_accepted(fixed_action, result):
    assert _rasa_verdict(result) == (True, None)
    assert fixed_action._validate_action_result(result) is True


@pytest.mark.parametrize("result", BAD)
def test_a_malformed_action_server_answer_is_refused_with_rasas_message(fixed_action, result):
    accepted, rasa_message = _rasa_verdict(result)
    assert not accepted
    with pytest.raises(jsonschema.ValidationError) as raised:
        fixed_action._validate_action_result(result)
    assert raised.value.message.startswith(rasa_message)
    assert "Failed to validate Action server response from API" in raised.value.message


def test_the_launcher_installs_the_fixes_for_rasa_only(monkeypatch):
    from supportbot import log_redaction

    calls = []
    monkeypatch.setattr(rasa_fixes, "install", lambda: calls.append("installed"))
    monkeypatch.setattr(log_redaction.runpy, "run_module", lambda *a, **k: None)
    monkeypatch.setattr(log_redaction.sys, "argv", ["log_redaction", "rasa_sdk", "--actions", "actions"])
    log_redaction.main()
    assert calls == []
    monkeypatch.setattr(log_redaction.sys, "argv", ["log_redaction", "rasa", "run"])
    log_redaction.main()
    assert calls == ["installed"]
