"""Codes, tokens and passwords never reach log output or the tracker store (the patterns: tests/accounts/test_redaction.py)."""

import logging
import subprocess
import sys

from supportbot.settings import PROJECT_ROOT


def test_a_process_started_with_redaction_logs_no_secret(tmp_path):
    script = (
        "import logging, sys\n"
        "logging.basicConfig(stream=sys.stdout, level=logging.INFO)\n"
        "log = logging.getLogger('rasa.core.processor')\n"
        "log.info('user said %s', 'my code is 654321')\n"
        "try:\n"
        "    raise ValueError('bad recovery code ABCD-EFGH-1234')\n"
        "except ValueError:\n"
        "    log.exception('failed')\n"
    )
    (tmp_path / "noisy.py").write_text(script)
    result = subprocess.run(
        [sys.executable, "-m", "supportbot.log_redaction", "noisy"],
        cwd=PROJECT_ROOT, env={"PYTHONPATH": f"{PROJECT_ROOT}:{tmp_path}"},
        capture_output=True, text=True, timeout=60,
    )
    output = result.stdout + result.stderr
    assert "user said" in output and "failed" in output
    assert "654321" not in output and "ABCD-EFGH-1234" not in output


def test_tracker_events_lose_secret_slot_values_and_the_messages_that_filled_them():
    from supportbot.redaction import MASK, redact_tracker_events

    events = [
        {"event": "slot", "name": "requested_slot", "value": "step_up_code"},
        {"event": "user", "text": "482913", "parse_data": {"text": "482913", "intent": {"name": "out_of_scope"}}},
        {"event": "slot", "name": "step_up_code", "value": "482913"},
        {"event": "slot", "name": "step_up_code", "value": None},
        {"event": "user", "text": "close my account please"},
        {"event": "bot", "text": "see https://portal.example/tfa/enroll?token=abcdef123 (ref SR-000002)"},
    ]
    stored = redact_tracker_events(events)
    assert len(stored) == len(events)
    assert "482913" not in str(stored) and "abcdef123" not in str(stored)
    assert "SR-000002" in stored[5]["text"]  # the assistant's references stay readable
    assert stored[1]["text"] == MASK and stored[1]["parse_data"]["text"] == MASK
    assert stored[2]["value"] == MASK and stored[3]["value"] is None
    assert stored[4]["text"] == "close my account please"


def test_entity_values_are_masked_with_the_text_they_came_from():
    from supportbot.redaction import MASK, redact_tracker_events

    events = [
        {"event": "user", "text": '/inform{"code": "482913"}', "parse_data": {
            "text": '/inform{"code": "482913"}', "intent": {"name": "inform"},
            "entities": [{"entity": "code", "value": "482913", "start": 0, "end": 6}]}},
        {"event": "user", "text": "it is account 48291377, mail ann@example.com", "parse_data": {
            "text": "it is account 48291377, mail ann@example.com", "intent": {"name": "inform"},
            "entities": [{"entity": "account_number", "value": "48291377"},
                         {"entity": "email", "value": "ann@example.com"}]}},
        {"event": "slot", "name": "requested_slot", "value": "recovery_code"},
        {"event": "user", "text": "abcd efgh 2345 jklm", "parse_data": {
            "text": "abcd efgh 2345 jklm", "entities": [{"entity": "any", "value": "jklm"}]}},
        {"event": "slot", "name": "recovery_code", "value": "abcd efgh 2345 jklm"},
        {"event": "entities", "entities": [{"entity": "step_up_code", "value": "kept?"},
                                           {"entity": "note", "value": "DEMO-RECOVERY-03"}]},
    ]
    stored = redact_tracker_events(events)
    assert "482913" not in str(stored) and "48291377" not in str(stored) and "jklm" not in str(stored)
    assert [e["value"] for e in stored[1]["parse_data"]["entities"]] == [MASK, "ann@example.com"]
    assert stored[3]["parse_data"]["entities"] == [{"entity": "any", "value": MASK}]
    assert [e["value"] for e in stored[5]["entities"]] == [MASK, MASK]


def test_the_log_record_factory_redacts_a_bounded_head_and_cuts_the_rest():
    from supportbot.log_redaction import LOG_REDACTION_LIMIT, _redacting_factory

    make_record = _redacting_factory(logging.LogRecord)
    key = "k3y" + "Z" * 27  # a 30-character key cut in two by the limit
    message = "w " * ((LOG_REDACTION_LIMIT - 10) // 2) + key + " then my code is 654321" + " tail" * 200_000
    record = make_record("rasa", logging.INFO, __file__, 1, "said %s", (message,), None)
    logged = record.getMessage()
    assert len(logged) < LOG_REDACTION_LIMIT + 100
    kept = logged.split("... [")[0]
    assert logged.endswith(f"... [{len('said ' + message) - len(kept)} characters not logged]")
    assert "k3y" not in logged and "654321" not in logged and "tail" not in logged
