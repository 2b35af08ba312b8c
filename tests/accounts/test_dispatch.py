"""Tests of accounts.dispatch against a real SMTP server (aiosmtpd on 127.0.0.1).

Each test with ``world`` runs on SQLite and on PostgreSQL (see conftest.py).
Time is the world's fake clock: retries become due by moving it, not by sleeping.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest
import sqlalchemy as sa

from accounts import password_reset
from accounts.__main__ import main
from accounts.db import write_session
from accounts.dispatch import (
    purge_old_notifications,
    DispatchReport,
    RetryPolicy,
    dispatch_pending,
    failed_notifications,
    requeue_failed,
)
from accounts.mail import SmtpMailer
from accounts.models import OutboxNotification
from accounts.outbox import DbOutbox
from accounts.settings import PROJECT_ROOT
from tests.accounts.conftest import World
from tests.smtp_server import SmtpTestServer, free_port

SENDER = "Customer Support <no-reply@mail.example.com>"
LINK = "https://portal.example.com/invite?token=SECRET-LINK-7f3a9c2e"
CODE = "SECRET-CODE-604218"


def notify(world: World, kind: str = "closure_undone", recipient: str = "customer@example.com",
           payload: Optional[Dict[str, Any]] = None) -> int:
    """Write one outbox row as an operation would; return its id."""
    with write_session(world.session_factory) as session:
        DbOutbox().add(session, account_id=None, recipient_email=recipient, kind=kind,
                       payload=payload or {}, created_at=world.clock())
        session.flush()
        return session.execute(sa.select(sa.func.max(OutboxNotification.id))).scalar_one()


def row(world: World, ident: int) -> OutboxNotification:
    return world.get(OutboxNotification, ident)


def mailer_for(port: int) -> SmtpMailer:
    return SmtpMailer(host="127.0.0.1", port=port, sender=SENDER, starttls=False, timeout=3)


@pytest.fixture
def smtp() -> Iterator[SmtpTestServer]:
    """A real SMTP server on 127.0.0.1."""
    with SmtpTestServer() as server:
        yield server


# --------------------------------------------------------------------------- delivery


def test_delivers_due_notifications_oldest_first_once(world: World, smtp: SmtpTestServer):
    world.account("owner@example.com")
    first = notify(world, "closure_undone", "owner@example.com", {"undone_by": "owner@example.com"})
    result = password_reset.request_password_reset(world.deps, email="owner@example.com", idempotency_key="k1")
    assert result.ok
    [reset] = world.outbox("password_reset")
    third = notify(world, "support_request_received", "other@example.com", {"reference": "SR-000007"})

    report = dispatch_pending(world.deps, mailer_for(smtp.port))

    assert report == DispatchReport(sent=(first, reset.id, third))
    received = smtp.wait_for(3)
    assert [r.rcpt_tos for r in received] == [["owner@example.com"], ["owner@example.com"], ["other@example.com"]]
    assert [r.message["Message-ID"] for r in received] == [
        f"<outbox-{i}@mail.example.com>" for i in (first, reset.id, third)]
    assert [r.message["Subject"] for r in received] == [
        "Your account will stay open", "Reset your password", "We received your support request SR-000007"]
    reset_body = received[1].message.get_content()
    assert reset.payload["secret_link"] in reset_body and "expires in 30 minutes" in reset_body
    assert all(r.mail_from == "no-reply@mail.example.com" for r in received)
    for ident in (first, reset.id, third):
        stored = row(world, ident)
        assert stored.sent_at == world.clock() and stored.attempts == 0 and stored.failed_at is None

    assert dispatch_pending(world.deps, mailer_for(smtp.port)) == DispatchReport()
    assert len(smtp.messages) == 3


def test_batch_limits_one_call(sqlite_world: World, smtp: SmtpTestServer):
    ids = [notify(sqlite_world) for _ in range(5)]
    assert dispatch_pending(sqlite_world.deps, mailer_for(smtp.port), batch=2).sent == tuple(ids[:2])
    assert dispatch_pending(sqlite_world.deps, mailer_for(smtp.port), batch=10).sent == tuple(ids[2:])


def test_should_stop_ends_the_call_between_rows(sqlite_world: World, smtp: SmtpTestServer):
    ids = [notify(sqlite_world) for _ in range(3)]
    calls: List[int] = []

    def stop_after_one() -> bool:
        calls.append(1)
        return len(calls) > 1

    assert dispatch_pending(sqlite_world.deps, mailer_for(smtp.port), should_stop=stop_after_one).sent == (ids[0],)


# --------------------------------------------------------------------------- failures and retries


def test_retry_delays_double_from_30_seconds_up_to_one_hour():
    policy = RetryPolicy()
    assert [policy.delay(n).total_seconds() for n in range(1, 11)] == [
        30, 60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]


def test_nothing_is_lost_while_the_server_is_down(world: World):
    port = free_port()  # nothing listens here yet
    mailer = mailer_for(port)
    ids = [notify(world, "closure_undone", f"c{i}@example.com") for i in range(3)]

    # Down: each round records one refused attempt and stops instead of trying every row.
    for expected in ids:
        report = dispatch_pending(world.deps, mailer)
        assert report == DispatchReport(retrying=(expected,), server_unavailable=True)
    for ident in ids:
        stored = row(world, ident)
        assert (stored.sent_at, stored.failed_at, stored.attempts) == (None, None, 1)
        assert stored.next_attempt_at == world.clock() + timedelta(seconds=30)
        assert stored.last_error == f"connection to 127.0.0.1:{port} refused"
    assert dispatch_pending(world.deps, mailer) == DispatchReport()  # nothing due yet

    with SmtpTestServer(port) as server:
        world.clock.advance(seconds=29)
        assert dispatch_pending(world.deps, mailer) == DispatchReport()
        world.clock.advance(seconds=1)
        assert dispatch_pending(world.deps, mailer).sent == tuple(ids)
        assert dispatch_pending(world.deps, mailer) == DispatchReport()
        received = server.wait_for(3)
    assert sorted(r.message["Message-ID"] for r in received) == sorted(
        f"<outbox-{i}@mail.example.com>" for i in ids)
    assert len(received) == 3
    for ident in ids:
        assert row(world, ident).sent_at == world.clock()


def test_an_unavailable_server_is_never_given_up_on(sqlite_world: World):
    world = sqlite_world
    mailer = mailer_for(free_port())
    ident = notify(world)
    policy = RetryPolicy(max_attempts=3)
    for attempt in range(1, 6):
        assert dispatch_pending(world.deps, mailer, policy=policy).retrying == (ident,)
        stored = row(world, ident)
        assert stored.attempts == attempt and stored.failed_at is None
        world.clock.now = stored.next_attempt_at


def test_a_temporary_rejection_is_retried_and_delivered_once(world: World, smtp: SmtpTestServer):
    ident = notify(world)
    smtp.data_replies.append("451 4.3.0 Try again later")

    assert dispatch_pending(world.deps, mailer_for(smtp.port)) == DispatchReport(retrying=(ident,))
    stored = row(world, ident)
    assert (stored.attempts, stored.last_error, stored.sent_at) == (1, "SMTP 451 4.3.0 Try again later", None)
    assert stored.next_attempt_at == world.clock() + timedelta(seconds=30)

    world.clock.advance(seconds=30)
    assert dispatch_pending(world.deps, mailer_for(smtp.port)) == DispatchReport(sent=(ident,))
    assert dispatch_pending(world.deps, mailer_for(smtp.port)) == DispatchReport()
    assert len(smtp.wait_for(1)) == 1 and smtp.commands.count("DATA") == 2
    assert row(world, ident).attempts == 1 and row(world, ident).sent_at == world.clock()


def test_a_temporary_failure_does_not_hold_up_the_rest_of_the_batch(sqlite_world: World, smtp: SmtpTestServer):
    first, second = notify(sqlite_world), notify(sqlite_world)
    smtp.rcpt_replies.append("450 4.2.1 Mailbox busy")
    assert dispatch_pending(sqlite_world.deps, mailer_for(smtp.port)) == DispatchReport(
        sent=(second,), retrying=(first,))


def test_a_permanent_rejection_stops_retrying(world: World, smtp: SmtpTestServer):
    ident = notify(world, recipient="gone@example.com")
    other = notify(world)
    smtp.rcpt_replies.append("550 5.1.1 No such user")

    assert dispatch_pending(world.deps, mailer_for(smtp.port)) == DispatchReport(sent=(other,), failed=(ident,))
    stored = row(world, ident)
    assert stored.failed_at == world.clock() and stored.sent_at is None and stored.next_attempt_at is None
    assert (stored.attempts, stored.last_error) == (1, "SMTP 550 5.1.1 No such user")

    world.clock.advance(days=2)
    assert dispatch_pending(world.deps, mailer_for(smtp.port)) == DispatchReport()
    assert smtp.commands.count("RCPT gone@example.com") == 1

    [visible] = failed_notifications(world.deps)
    assert (visible.id, visible.recipient_email, visible.last_error) == (ident, "gone@example.com",
                                                                          "SMTP 550 5.1.1 No such user")
    assert requeue_failed(world.deps, [ident]) == 1
    assert dispatch_pending(world.deps, mailer_for(smtp.port)) == DispatchReport(sent=(ident,))
    assert failed_notifications(world.deps) == []


def test_too_many_temporary_failures_give_up(sqlite_world: World, smtp: SmtpTestServer):
    world = sqlite_world
    ident = notify(world)
    policy = RetryPolicy(max_attempts=3)
    smtp.data_replies.extend(["452 4.3.1 Insufficient storage"] * 3)
    for _ in range(2):
        assert dispatch_pending(world.deps, mailer_for(smtp.port), policy=policy).retrying == (ident,)
        world.clock.now = row(world, ident).next_attempt_at
    assert dispatch_pending(world.deps, mailer_for(smtp.port), policy=policy).failed == (ident,)
    assert row(world, ident).attempts == 3 and row(world, ident).failed_at is not None


def test_a_message_that_cannot_be_built_fails_at_once(sqlite_world: World, smtp: SmtpTestServer):
    bad = notify(sqlite_world, recipient="a@example.com\nBcc: everyone@example.com")
    good = notify(sqlite_world)
    assert dispatch_pending(sqlite_world.deps, mailer_for(smtp.port)) == DispatchReport(sent=(good,), failed=(bad,))
    assert row(sqlite_world, bad).last_error.startswith("cannot build the message: ValueError")
    assert [r.rcpt_tos for r in smtp.wait_for(1)] == [["customer@example.com"]]


class ExplodingMailer:
    """A mailer with a bug: it raises a plain exception that quotes the body."""

    sender = SENDER

    def send(self, message: EmailMessage) -> None:
        raise ValueError("cannot handle " + message.get_content())


def test_an_unexpected_error_is_recorded_retried_and_logged(sqlite_world: World, caplog):
    ident = notify(sqlite_world, "member_invitation", payload={"secret_link": LINK})
    caplog.set_level(logging.DEBUG)
    assert dispatch_pending(sqlite_world.deps, ExplodingMailer()) == DispatchReport(retrying=(ident,))
    stored = row(sqlite_world, ident)
    assert stored.last_error.startswith("ValueError: cannot handle") and LINK not in stored.last_error
    assert "[redacted]" in stored.last_error
    errors = [r for r in caplog.records if r.name == "accounts.dispatch" and r.levelno >= logging.ERROR]
    assert errors and "Traceback" in errors[0].getMessage() and "ValueError" in errors[0].getMessage()


# --------------------------------------------------------------------------- secrets


def test_no_secret_reaches_a_log_record_or_the_error_column(world: World, caplog):
    caplog.set_level(logging.DEBUG)
    payloads = [{"secret_link": LINK, "role": "admin", "account_name": "ACME"},
                {"secret_code": CODE, "expires_in_minutes": 10}]
    kinds = ["member_invitation", "verification_code"]
    port = free_port()
    ids = [notify(world, k, payload=p) for k, p in zip(kinds, payloads) for _ in range(3)]

    dispatch_pending(world.deps, mailer_for(port))  # connection refused
    dispatch_pending(world.deps, ExplodingMailer())  # a bug quoting the body
    with SmtpTestServer(port) as server:
        world.clock.advance(hours=2)
        # Oldest first: 3 invitations (LINK), then 3 codes (CODE). Servers may quote the message.
        server.rcpt_replies.append(f"550 5.1.1 Unknown {LINK}")  # invitation 1
        server.data_replies.extend([f"451 4.3.0 Greylisted {LINK}", None,  # invitations 2 and 3
                                    f"550 5.7.1 Rejected {CODE}"])  # code 1
        for _ in range(3):
            dispatch_pending(world.deps, mailer_for(port))
            world.clock.advance(hours=2)
        delivered = server.wait_for(1)
    assert any(LINK in r.message.get_content() for r in delivered)  # secrets are mailed, not logged

    ours = [r for r in caplog.records if not r.name.startswith("mail.log")]  # mail.log = the test server
    assert any(r.levelno >= logging.WARNING for r in ours)
    for record in ours:
        text = record.getMessage() + (record.exc_text or "")
        assert LINK not in text and CODE not in text, record.name
    for ident in ids:
        stored = row(world, ident)
        assert stored.last_error is None or (LINK not in stored.last_error and CODE not in stored.last_error)
    assert any(row(world, i).last_error and "[redacted]" in row(world, i).last_error for i in ids)


# --------------------------------------------------------------------------- concurrency


def test_racing_dispatchers_send_each_row_once(world: World, smtp: SmtpTestServer):
    ids = [notify(world, recipient=f"c{i}@example.com") for i in range(24)]
    reports = World.run_threads(4, lambda i: dispatch_pending(world.deps, mailer_for(smtp.port)))
    sent = [ident for report in reports for ident in report.sent]
    assert sorted(sent) == ids
    received = smtp.wait_for(24)
    assert len(received) == 24
    assert len({r.message["Message-ID"] for r in received}) == 24
    assert dispatch_pending(world.deps, mailer_for(smtp.port)) == DispatchReport()
    if world.backend == "postgresql":  # SKIP LOCKED let them work side by side
        assert sum(1 for report in reports if report.sent) >= 2


# --------------------------------------------------------------------------- command line


def _eml_files(folder: Path) -> List[Path]:
    return sorted(folder.glob("*.eml")) if folder.exists() else []


def test_cli_dispatch_once_writes_eml_files(tmp_path, monkeypatch, capsys):
    url = f"sqlite:///{tmp_path / 'a.db'}"
    assert main(["--url", url, "demo"]) == 0
    monkeypatch.setenv("MAIL_BACKEND", "file")
    monkeypatch.setenv("MAIL_DIR", str(tmp_path / "mail"))
    capsys.readouterr()
    assert main(["--url", url, "dispatch", "--once"]) == 0
    assert "sent 0, retrying 0, failed 0" in capsys.readouterr().out

    from accounts.db import make_session_factory
    from accounts.deps import Deps

    deps = Deps(session_factory=make_session_factory(url))
    assert password_reset.request_password_reset(deps, email="clean@demo.example", idempotency_key="cli").ok
    assert main(["--url", url, "dispatch", "--once"]) == 0
    assert "sent 1," in capsys.readouterr().out
    [eml] = _eml_files(tmp_path / "mail")
    assert eml.name.startswith("outbox-") and "Reset your password" in eml.read_text()
    deps.session_factory.kw["bind"].dispose()


def test_cli_dispatch_loop_stops_cleanly_on_sigterm(tmp_path):
    url = f"sqlite:///{tmp_path / 'loop.db'}"
    assert main(["--url", url, "migrate"]) == 0
    from accounts.db import make_session_factory
    from accounts.deps import Deps

    factory = make_session_factory(url)
    with write_session(factory) as session:
        DbOutbox().add(session, account_id=None, recipient_email="a@example.com", kind="tfa_enabled",
                       payload={}, created_at=Deps(session_factory=factory).now())
    factory.kw["bind"].dispose()
    env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT), MAIL_BACKEND="file", MAIL_DIR=str(tmp_path / "mail"))
    process = subprocess.Popen(
        [sys.executable, "-m", "accounts", "--url", url, "dispatch", "--loop", "--interval", "0.2"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not _eml_files(tmp_path / "mail") and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        assert len(_eml_files(tmp_path / "mail")) == 1
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, output
    assert "dispatcher stopped" in output and "Traceback" not in output



# --------------------------------------------------------------------------- no secret at rest (issue #12)


def test_secrets_leave_the_database_with_the_delivery(world: World, smtp: SmtpTestServer):
    """Issue #12: the mailed step-up code and links stayed readable in the outbox after delivery."""
    secret = {"secret_code": CODE, "secret_link": LINK, "purpose": "step_up", "expires_in_minutes": 10}
    delivered = notify(world, "verification_code", "owner@example.com", dict(secret))
    retried = notify(world, "verification_code", "later@example.com", dict(secret))
    rejected = notify(world, "verification_code", "gone@example.com", dict(secret))
    smtp.rcpt_replies.extend([None, "451 4.3.0 try later", "550 5.1.1 No such user"])

    report = dispatch_pending(world.deps, mailer_for(smtp.port))

    assert report == DispatchReport(sent=(delivered,), retrying=(retried,), failed=(rejected,))
    assert CODE in smtp.wait_for(1)[0].message.get_content()  # the customer got it...
    for ident in (delivered, rejected):  # ...and the database forgot it in the same transaction
        assert row(world, ident).payload == {"purpose": "step_up", "expires_in_minutes": 10}
    assert row(world, retried).payload == secret  # still to be sent
    dump = world.dump()
    assert dump.count(CODE) == 1 and dump.count(LINK) == 1  # only the row still retrying


def test_old_sent_and_given_up_rows_are_purged_pending_ones_kept(world: World, smtp: SmtpTestServer):
    sent = notify(world)
    rejected = notify(world, recipient="gone@example.com")
    smtp.rcpt_replies.extend([None, "550 5.1.1 No such user"])
    dispatch_pending(world.deps, mailer_for(smtp.port))
    world.clock.advance(days=1)
    pending = notify(world)  # never sent (say the server is down for a month)

    world.clock.advance(days=29)
    assert purge_old_notifications(world.deps) == 0  # exactly 30 days: kept
    world.clock.advance(seconds=1)
    assert purge_old_notifications(world.deps) == 2
    assert [r.id for r in world.outbox()] == [pending]
    assert row(world, sent) is None and row(world, rejected) is None
    assert purge_old_notifications(world.deps, retention_days=1) == 0


def test_cli_purge_outbox_uses_the_retention_setting(tmp_path, monkeypatch, capsys):
    url = f"sqlite:///{tmp_path / 'a.db'}"
    assert main(["--url", url, "migrate"]) == 0
    from datetime import datetime, timezone

    from accounts.db import make_session_factory

    factory = make_session_factory(url)
    old = datetime(2020, 1, 1, tzinfo=timezone.utc)
    with write_session(factory) as session:
        session.add(OutboxNotification(recipient_email="a@example.com", kind="closure_undone", payload={},
                                       created_at=old, sent_at=old))
    monkeypatch.setenv("OUTBOX_RETENTION_DAYS", "30")
    capsys.readouterr()
    assert main(["--url", url, "purge-outbox"]) == 0
    assert "purged 1 notification(s)" in capsys.readouterr().out
    factory.kw["bind"].dispose()
