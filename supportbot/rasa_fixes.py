"""Run-time fixes for Rasa 3.6.21 costs we measured and cannot configure away.

Installed by our Rasa launcher (``python -m supportbot.log_redaction rasa run``,
used by the runner, the cluster, the benchmark and the container image) before
Rasa starts. Rasa's installed files are not edited; each fix keeps Rasa's
behaviour and is covered by ``tests/test_rasa_fixes.py``.

Action server answers validated without re-checking the schema
    ``RemoteAction._validate_action_result`` calls ``jsonschema.validate`` on
    every custom-action call. With jsonschema 4.17 (Rasa's pin) that first
    validates the response *schema* against the JSON Schema meta-schema and
    builds a new validator: ~14 ms per call on this machine against ~0.2 ms for
    a validator built once, about 40% of the Rasa process's CPU on turns that
    run an action (py-spy, docs/performance.md). The fix validates with one
    validator built from the same schema, and raises the same
    ``ValidationError`` with Rasa's message.
"""

from __future__ import annotations

import threading
from typing import Any, Dict, Text

_lock = threading.Lock()
_installed = False


def _action_response_validator() -> Any:
    """One validator for Rasa's action-server response schema (schema checked once)."""
    from jsonschema.validators import validator_for
    from rasa.core.actions.action import RemoteAction

    schema = RemoteAction.action_response_format_spec()
    validator_class = validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)


def install() -> None:
    """Apply the fixes in this process (idempotent)."""
    global _installed
    with _lock:
        if _installed:
            return
        from jsonschema import ValidationError, exceptions
        from rasa.core.actions.action import RemoteAction
        from rasa.shared.constants import DOCS_BASE_URL

        validator = _action_response_validator()

        def _validate_action_result(self: RemoteAction, result: Dict[Text, Any]) -> bool:
            """Rasa's validation of an action server response, with the validator built once."""
            error = exceptions.best_match(validator.iter_errors(result))
            if error is None:
                return True
            assert isinstance(error, ValidationError)
            error.message += (
                f". Failed to validate Action server response from API, "
                f"make sure your response from the Action endpoint is valid. "
                f"For more information about the format visit "
                f"{DOCS_BASE_URL}/custom-actions"
            )
            raise error

        RemoteAction._validate_action_result = _validate_action_result  # type: ignore[method-assign]
        _installed = True
