"""Hand-over to a person with a helpdesk: the request is delivered, the bot steps aside.

A whole assistant runs with a fake helpdesk on 127.0.0.1 and a short hand-over
timeout: asking for a person creates and delivers a ticket, the bot stays quiet
while what the customer writes goes to the ticket, and it answers again once
the timeout has passed.
"""

from __future__ import annotations

import time
import uuid

import pytest

from tests.conftest import assistant_env, start_assistant, stop_process, wait_for
from tests.conftest import reply_texts as texts
from tests.fake_helpdesk import FakeHelpdesk
from tests.secret_scan import contains_secret

pytestmark = pytest.mark.slow

TIMEOUT_SECONDS = 6


@pytest.fixture(scope="module")
def helpdesk_assistant(model_path, tmp_path_factory):
    helpdesk = FakeHelpdesk().start()
    tmp_dir = tmp_path_factory.mktemp("handoff")
    env = {**assistant_env(tmp_dir), "HELPDESK_URL": helpdesk.url, "HELPDESK_TOKEN": "hd-test-token",
           "HANDOFF_TIMEOUT_MINUTES": str(TIMEOUT_SECONDS / 60)}
    process, assistant = start_assistant(tmp_dir, env)
    yield assistant, helpdesk
    stop_process(process)
    helpdesk.stop()


def test_a_person_takes_over_and_the_customer_is_heard_meanwhile(helpdesk_assistant):
    assistant, helpdesk = helpdesk_assistant
    sender = f"anon-{uuid.uuid4().hex}"
    reply = texts(assistant.say(sender, "I want to talk to a real person about my account"))
    assert "reference SR-" in reply and "pass on everything you write" in reply

    # the bot stays quiet; what the customer writes goes to the ticket, codes masked
    assert assistant.say(sender, "hello? my code from the app is 482913") == []
    assert wait_for(lambda: helpdesk.tickets), "the support request never reached the helpdesk"
    assert len(helpdesk.creations) == 1
    assert helpdesk.creations[0].headers.get("Idempotency-Key", "").startswith("support-request-")
    assert wait_for(lambda: any("hello?" in str(r.body) for r in helpdesk.requests if "/messages" in r.path))
    assert not contains_secret(str([r.body for r in helpdesk.requests]), "482913")

    # nobody released it: after the timeout the assistant answers again
    time.sleep(TIMEOUT_SECONDS + 0.5)
    assert "personal and business" in texts(assistant.say(sender, "which account types do you have?"))
