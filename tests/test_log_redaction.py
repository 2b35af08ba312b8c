"""Codes, tokens and passwords never reach log output."""

import logging
import subprocess
import sys

from accounts.redaction import redact_text
from supportbot.settings import PROJECT_ROOT

import pytest


@pytest.mark.parametrize("text, secret", [
    ("my code is 123456", "123456"),
    ("my code is 123456.", "123456"),
    ("123456, I think", "123456"),
    ("code 123 456 please", "123 456"),
    ("recovery code DEMO-RECOVERY-01", "DEMO-RECOVERY-01"),
    ("my code: abcd-efgh-jkmn-pqrs", "abcd-efgh-jkmn-pqrs"),
    ("ABCD-EFGH-JKLM-NPQR is what I saved", "ABCD-EFGH-JKLM-NPQR"),
    ("token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0MiJ9.abcdefghijk", "eyJhbGciOiJIUzI1NiJ9"),
    ("my password is hunter2!", "hunter2"),
    ("open https://portal.example.com/reset?token=abcDEF123", "abcDEF123"),
    ('"GET /tfa/enroll?token=s3cr3tTok3n HTTP/1.1" 200', "s3cr3tTok3n"),
])
def test_secrets_are_masked(text, secret):
    assert secret not in redact_text(text)


@pytest.mark.parametrize("text", [
    "I want to close my account", "email me at ann@example.com", "49.00 EUR", "version 3.6.21",
    "it costs 1234.50 EUR",
    "File /venv/lib/python3.10/site-packages/sanic/app.py", "a follow-up question",
])
def test_ordinary_text_is_kept(text):
    assert redact_text(text) == text


def test_log_lines_keep_status_codes_and_sizes():
    line = '127.0.0.1 "GET /healthz HTTP/1.1" 200 392 "-" "curl/7.88.1"'
    assert redact_text(line, split_codes=False) == line


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
