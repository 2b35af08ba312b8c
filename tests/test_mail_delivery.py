"""End to end: the assistant, as ``make run`` starts it, e-mails a password-reset link.

A real SMTP server (aiosmtpd) listens on 127.0.0.1; the runner's mail dispatcher
is pointed at it with ``MAIL_BACKEND=smtp``.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Iterator, Tuple

import pytest
import sqlalchemy as sa

from accounts.db import make_engine
from accounts.models import OutboxNotification
from supportbot.runner import process_specs
from supportbot.settings import load_settings
from tests.conftest import RunningAssistant, assistant_env, start_assistant, stop_process
from tests.smtp_server import SmtpTestServer

MAIL_FROM = "Customer Support <no-reply@support.example.com>"


def test_the_runner_starts_the_mail_dispatcher_without_a_health_url():
    [dispatcher] = [spec for spec in process_specs(load_settings({})) if spec.name == "mail dispatcher"]
    assert dispatcher.health_url is None
    assert dispatcher.argv[-3:] == ["accounts", "dispatch", "--loop"]


@pytest.fixture(scope="module")
def mailing_assistant(model_path, tmp_path_factory) -> Iterator[Tuple[RunningAssistant, SmtpTestServer, str]]:
    """The whole assistant delivering mail to a test SMTP server; yields (assistant, server, accounts URL)."""
    tmp_dir = tmp_path_factory.mktemp("mail_delivery")
    env = assistant_env(tmp_dir)
    with SmtpTestServer() as server:
        process, assistant = start_assistant(tmp_dir, {
            **env, "MAIL_BACKEND": "smtp", "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(server.port),
            "SMTP_STARTTLS": "0", "SMTP_TIMEOUT": "5", "MAIL_FROM": MAIL_FROM,
            "ACCOUNTS_PORTAL_BASE_URL": "https://portal.example.com",
        })
        try:
            yield assistant, server, env["ACCOUNTS_DB_URL"]
        finally:
            stop_process(process)
    assert "dispatcher stopped" in assistant.log_path.read_text(errors="replace")  # SIGTERM ends it cleanly


def test_an_anonymous_customer_gets_the_reset_link_by_email(mailing_assistant):
    assistant, server, accounts_url = mailing_assistant
    sender = f"anon-{uuid.uuid4().hex}"
    first = " ".join(r.get("text", "") for r in assistant.say(sender, "I forgot my password"))
    assert "email address" in first
    second = " ".join(r.get("text", "") for r in assistant.say(sender, "clean@demo.example"))
    assert "reset link is on its way" in second

    [received] = server.wait_for(1, timeout=30)  # the dispatcher polls every 2 s
    assert received.rcpt_tos == ["clean@demo.example"]
    assert received.mail_from == "no-reply@support.example.com"
    assert received.message["Subject"] == "Reset your password"
    body = received.message.get_content()
    link = re.search(r"https://portal\.example\.com/password-reset\?token=[\w-]+", body)
    assert link, body
    assert re.fullmatch(r"<outbox-\d+@support\.example\.com>", received.message["Message-ID"])

    # the dispatcher commits sent_at right after the SMTP server accepted the mail
    engine = make_engine(accounts_url)
    deadline = time.monotonic() + 15
    try:
        while True:
            with engine.connect() as conn:
                sent_at, attempts = conn.execute(
                    sa.select(OutboxNotification.sent_at, OutboxNotification.attempts)
                    .where(OutboxNotification.kind == "password_reset")).one()
            if sent_at is not None or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    finally:
        engine.dispose()
    assert sent_at is not None and attempts == 0
    assert link.group(0) not in assistant.log_path.read_text(errors="replace")
