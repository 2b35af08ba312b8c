"""The scheduler's leases and the account domain's periodic jobs, with an injected clock (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, List, Mapping

import sqlalchemy as sa

from accounts.demo import load_demo
from accounts.jobs import (
    EXPIRED_KEPT,
    FINALIZE_EVERY,
    SCHEDULER_ACTOR,
    Job,
    Scheduler,
    account_jobs,
)
from accounts.models import (
    Account,
    AuditEvent,
    JobLease,
    JobRun,
    OutboxNotification,
    TfaPendingProof,
    VerificationCode,
)

CLOSING = "closing@demo.example"


def _closing_account(world: Any) -> Account:
    return world.all(Account, Account.primary_email == CLOSING)[0]


def _scheduler(world: Any, name: str) -> Scheduler:
    return Scheduler(world.deps, account_jobs(world.deps), holder=name, clock=world.clock)


def test_past_the_grace_period_two_racing_schedulers_close_the_account_once_with_one_email(world: Any) -> None:
    load_demo(world.session_factory, clock=world.clock)
    first, second = _scheduler(world, "scheduler-a"), _scheduler(world, "scheduler-b")

    world.clock.advance(days=13, hours=23)
    first.run_due()
    assert _closing_account(world).status == "closing", "closed before the grace period ended"

    world.clock.advance(hours=1, minutes=FINALIZE_EVERY.total_seconds() / 60)
    world.run_threads(2, lambda i: (first, second)[i].run_due())
    world.clock.advance(minutes=FINALIZE_EVERY.total_seconds() / 60)
    world.run_threads(2, lambda i: (first, second)[i].run_due())

    account = _closing_account(world)
    assert account.status == "closed"
    mails = world.all(OutboxNotification, OutboxNotification.recipient_email == CLOSING,
                      OutboxNotification.kind == "account_closed")
    assert len(mails) == 1
    closures = world.all(AuditEvent, AuditEvent.action == "finalize_closure", AuditEvent.account_id == account.id)
    assert len(closures) == 1
    runs = world.all(JobRun, JobRun.name == "finalize_closures")
    assert [run.details.get("closed") for run in runs] == [0, 1, 0]
    assert all(run.outcome == "succeeded" for run in runs)
    audited = world.all(AuditEvent, AuditEvent.action == "job:finalize_closures")
    assert [(a.actor, a.details["closed"]) for a in audited] == [(SCHEDULER_ACTOR, 1)]


def test_a_job_is_not_run_again_before_it_is_due_nor_while_another_scheduler_holds_it(world: Any) -> None:
    calls: List[datetime] = []
    job = Job("count", timedelta(minutes=10), lambda now: calls.append(now) or {"n": 1})
    first = Scheduler(world.deps, [job], holder="a", clock=world.clock, lease_seconds=60)
    second = Scheduler(world.deps, [job], holder="b", clock=world.clock, lease_seconds=60)

    assert [r.name for r in first.run_due()] == ["count"]
    world.clock.advance(minutes=9)
    assert second.run_due() == []
    world.clock.advance(minutes=1)
    # "a" died holding the lease: "b" waits until the lease has expired.
    assert first._take_lease(job, world.clock())
    assert second.run_due() == []
    world.clock.advance(seconds=61)
    assert [r.outcome for r in second.run_due()] == ["succeeded"]
    assert len(calls) == 2
    assert [run.holder for run in world.all(JobRun)] == ["a", "b"]


def test_a_failing_job_is_recorded_and_logged_does_not_stop_the_others_and_is_due_at_the_next_tick(
        world: Any, caplog: Any) -> None:
    def broken(now: datetime) -> Mapping[str, int]:
        raise RuntimeError("database of the other store is down")

    ok_calls: List[datetime] = []
    jobs = [Job("broken", timedelta(hours=1), broken),
            Job("fine", timedelta(hours=1), lambda now: ok_calls.append(now) or {})]
    scheduler = Scheduler(world.deps, jobs, holder="a", clock=world.clock)

    reports = scheduler.run_due()
    assert [(r.name, r.outcome, r.error) for r in reports] == [
        ("broken", "failed", "RuntimeError"), ("fine", "succeeded", None)]
    assert "job broken failed" in caplog.text
    world.clock.advance(minutes=1)
    assert [r.name for r in scheduler.run_due()] == ["broken"]
    assert [run.outcome for run in world.all(JobRun, JobRun.name == "broken")] == ["failed", "failed"]
    assert world.get(JobLease, "broken").leased_until is None


def test_expired_pending_proofs_and_link_codes_are_deleted_a_day_after_expiry(world: Any) -> None:
    account_id = world.account("owner@example.com")
    member = world.member(account_id, "owner@example.com")
    now = world.clock()
    with world.session_factory.begin() as s:
        for minutes in (-60 * 24 - 1, 5):  # one long expired, one still valid
            expires = now + timedelta(minutes=minutes)
            s.add(TfaPendingProof(conversation_id=f"conv-{minutes}", account_id=account_id, member_id=member.id,
                                  created_at=expires - timedelta(minutes=10), expires_at=expires))
            s.add(VerificationCode(account_id=account_id, member_id=member.id, purpose="channel_link",
                                   channel="slack", channel_user_id=f"U{minutes}", recipient_email=member.email,
                                   code_salt="s", code_hash="h", created_at=expires - timedelta(minutes=10),
                                   expires_at=expires))
        old_step_up = now - EXPIRED_KEPT - timedelta(hours=1)
        s.add(VerificationCode(account_id=account_id, member_id=member.id, purpose="step_up",
                               operation="close_account", recipient_email=member.email, code_salt="s",
                               code_hash="h", created_at=old_step_up, expires_at=old_step_up))

    reports = _scheduler(world, "a").run_due()

    purge = next(r for r in reports if r.name == "purge_expired_verification")
    assert dict(purge.counts) == {"pending_proofs": 1, "link_codes": 1}
    assert [p.conversation_id for p in world.all(TfaPendingProof)] == ["conv-5"]
    assert sorted((c.purpose, c.channel_user_id) for c in world.all(VerificationCode)) == [
        ("channel_link", "U5"), ("step_up", None)]


def test_the_scheduler_purges_notifications_sent_longer_ago_than_the_retention(world: Any) -> None:
    account_id = world.account("owner@example.com")
    now = world.clock()
    days = world.deps.settings.outbox_retention_days
    with world.session_factory.begin() as s:
        for name, sent_days_ago in (("old", days + 1), ("recent", days - 1)):
            s.add(OutboxNotification(account_id=account_id, kind=name, recipient_email="owner@example.com",
                                     payload={}, created_at=now - timedelta(days=sent_days_ago),
                                     sent_at=now - timedelta(days=sent_days_ago)))
        s.add(OutboxNotification(account_id=account_id, kind="pending", recipient_email="owner@example.com",
                                 payload={}, created_at=now - timedelta(days=days + 5)))

    reports = _scheduler(world, "a").run_due()

    purge = next(r for r in reports if r.name == "purge_outbox")
    assert dict(purge.counts) == {"notifications": 1}
    assert sorted(n.kind for n in world.all(OutboxNotification)) == ["pending", "recent"]


def test_the_scheduler_command_runs_the_due_jobs_once(tmp_path: Any, monkeypatch: Any, capsys: Any) -> None:
    from accounts.db import make_engine, make_session_factory
    from supportbot.scheduler import main

    accounts_url = f"sqlite:///{tmp_path / 'accounts.db'}"
    monkeypatch.setenv("ACCOUNTS_DB_URL", accounts_url)
    monkeypatch.setenv("TRACKER_DB_URL", f"sqlite:///{tmp_path / 'tracker.db'}")
    assert main(["--once"]) == 0
    out = capsys.readouterr().out
    assert "finalize_closures: succeeded {'closed': 0}" in out
    assert "conversation_retention: succeeded" in out
    engine = make_engine(accounts_url)
    try:
        with make_session_factory(engine)() as s:
            names = sorted(s.execute(sa.select(JobRun.name)).scalars())
    finally:
        engine.dispose()
    assert names == ["conversation_retention", "finalize_closures", "purge_expired_verification", "purge_outbox"]


def test_make_run_and_the_cluster_start_one_scheduler_loop() -> None:
    from supportbot.cluster import _spec_argv
    from supportbot.runner import process_specs
    from supportbot.settings import load_settings

    [spec] = [s for s in process_specs(load_settings({})) if s.name == "scheduler"]
    assert spec.argv[-4:] == ["-m", "supportbot.log_redaction", "supportbot.scheduler", "--loop"]
    assert spec.health_url is None
    assert _spec_argv("scheduler", {})[-2:] == ["supportbot.scheduler", "--loop"]
