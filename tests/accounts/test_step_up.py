"""Step-up before sensitive operations: TOTP (drift, replay, races), e-mailed codes, grants, delays.

Every test runs on SQLite and PostgreSQL (the ``world`` fixture).
"""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from accounts import business, closing, currency, members, step_up
from accounts.codes import accept_step, delay_after, matching_step, totp_step
from accounts.db import write_session
from accounts.models import Account, Member, StepUpGrant, TfaEnrolment, VerificationCode, VerificationFailure
from accounts.operation import OperationContext
from accounts.results import Reason
from accounts.security import salted_hash
from tests.accounts.verification_support import (
    SECRET,
    assert_no_secret_stored_or_logged,
    enable_tfa,
    key,
    last_code,
    mails,
    totp,
)

OP = "close_account"


def verify(world, acc, code, operation=OP, email="owner@example.com", conversation=None, params=None):
    return step_up.verify_step_up(world.deps, world.actor(acc, email), operation, code, idempotency_key=key("v"),
                                  conversation_id=conversation, params=params)


# --------------------------------------------------------------------------- TOTP


def test_totp_member_is_asked_for_the_app_and_gets_a_grant_for_that_operation(world):
    acc = world.account()
    enable_tfa(world, acc)

    started = step_up.start_step_up(world.deps, world.actor(acc), OP, idempotency_key=key())
    assert (started.method, started.expires_in_minutes) == ("totp", None)
    assert mails(world, "verification_code") == []

    granted = verify(world, acc, totp(SECRET, world.clock()))
    assert granted.ok and granted.operation == OP
    assert granted.expires_at == world.clock() + timedelta(minutes=world.settings.step_up_ttl_minutes)
    assert step_up.has_step_up(world.deps, world.actor(acc), OP)
    assert world.all(TfaEnrolment)[0].last_accepted_step == totp_step(world.clock())
    assert [a.action for a in world.audits(outcome="succeeded")] == ["step_up_started", "step_up_granted"]


@pytest.mark.parametrize("steps, accepted", [(-2, False), (-1, True), (0, True), (1, True), (2, False)])
def test_totp_drift_of_one_step_is_accepted_and_two_refused(world, steps, accepted):
    acc = world.account()
    enable_tfa(world, acc)
    world.clock.advance(seconds=7)  # inside a step, not on its edge

    result = verify(world, acc, totp(SECRET, world.clock(), steps))

    assert result.ok is accepted
    if not accepted:
        assert result.reason == Reason.CODE_INVALID
        assert world.all(VerificationFailure)[0].failures == 1


def test_a_totp_step_is_accepted_once_and_older_steps_never_after_it(world):
    acc = world.account()
    enable_tfa(world, acc)
    now = world.clock()

    assert verify(world, acc, totp(SECRET, now, 1)).ok
    replay = verify(world, acc, totp(SECRET, now, 1))
    older = verify(world, acc, totp(SECRET, now, 0))

    assert replay.reason == Reason.CODE_USED and older.reason == Reason.CODE_USED
    assert world.count(StepUpGrant) == 1
    assert world.count(VerificationFailure) == 0  # a replay is not a guess


def test_fifty_parallel_submissions_of_one_valid_code_succeed_exactly_once(world):
    acc = world.account()
    enable_tfa(world, acc)
    code = totp(SECRET, world.clock())
    step_up.start_step_up(world.deps, world.actor(acc), OP, idempotency_key=key())

    results = world.run_threads(50, lambda i: verify(world, acc, code))

    assert sum(r.ok for r in results) == 1
    assert {r.reason for r in results if not r.ok} == {Reason.CODE_USED}
    assert world.count(StepUpGrant) == 1
    assert len(world.audits(action="step_up_granted")) == 1


def test_the_compare_and_set_alone_accepts_a_step_once_under_fifty_threads(world):
    """accept_step without any account lock: the UPDATE ... WHERE last_accepted_step < :step decides."""
    acc = world.account()
    enrolment_id = enable_tfa(world, acc)
    step = totp_step(world.clock())

    def attempt(_):
        with write_session(world.session_factory) as session:
            ctx = OperationContext(session=session, now=world.clock(), deps=world.deps, operation="t",
                                   actor_label="t", idempotency_key="t")
            return accept_step(ctx, enrolment_id, step)

    assert sum(world.run_threads(50, attempt)) == 1
    assert world.get(TfaEnrolment, enrolment_id).last_accepted_step == step


def test_matching_step_and_delays_are_plain_functions():
    from datetime import datetime, timezone

    now = datetime(2024, 6, 3, 9, 0, 10, tzinfo=timezone.utc)
    assert matching_step(SECRET, totp(SECRET, now, -1), now) == totp_step(now) - 1
    assert matching_step(SECRET, "12 34 5", now) is None and matching_step("", "123456", now) is None
    assert [delay_after(n, 5, 30, 3600) for n in (4, 5, 6, 7, 12, 40)] == [0, 30, 60, 120, 3600, 3600]


# --------------------------------------------------------------------------- failures and delays


def test_five_wrong_totp_codes_then_growing_delays_and_a_success_resets(world):
    acc = world.account()
    enable_tfa(world, acc)
    wrong = "000000" if totp(SECRET, world.clock()) != "000000" else "111111"

    results = [verify(world, acc, wrong) for _ in range(5)]
    assert [r.reason for r in results] == [Reason.CODE_INVALID] * 5
    assert "retry_after_seconds" not in results[3].details and results[4].details["retry_after_seconds"] == 30

    blocked = verify(world, acc, totp(SECRET, world.clock()))  # even the right code waits
    assert blocked.reason == Reason.TOO_MANY_ATTEMPTS and blocked.details["retry_after_seconds"] == 30

    world.clock.advance(seconds=30)
    assert verify(world, acc, wrong).details["retry_after_seconds"] == 60
    world.clock.advance(seconds=59)
    assert verify(world, acc, wrong).reason == Reason.TOO_MANY_ATTEMPTS
    world.clock.advance(seconds=1)
    assert verify(world, acc, totp(SECRET, world.clock())).ok
    counter = world.all(VerificationFailure)[0]
    assert (counter.failures, counter.next_allowed_at) == (0, None)


def test_a_new_emailed_code_does_not_reset_the_failure_count(world):
    acc = world.account()
    actor = world.actor(acc)
    step_up.start_step_up(world.deps, actor, OP, idempotency_key=key())
    for _ in range(3):
        assert verify(world, acc, "999999" if last_code(world) != "999999" else "888888").reason == Reason.CODE_INVALID
    step_up.start_step_up(world.deps, actor, OP, idempotency_key=key())  # a new code
    for _ in range(2):
        result = verify(world, acc, "999999" if last_code(world) != "999999" else "888888")
    assert result.reason == Reason.CODE_INVALID and result.details["retry_after_seconds"] == 30

    world.clock.advance(seconds=5)
    step_up.start_step_up(world.deps, actor, OP, idempotency_key=key())  # and another one
    refused = verify(world, acc, last_code(world))
    assert refused.reason == Reason.TOO_MANY_ATTEMPTS and refused.details["retry_after_seconds"] == 25
    world.clock.advance(seconds=25)
    assert verify(world, acc, last_code(world)).ok


# --------------------------------------------------------------------------- e-mailed codes


def test_without_tfa_a_code_bound_to_the_operation_is_emailed_to_the_member(world):
    acc = world.account(members=[("admin@example.com", "admin", "active")])

    started = step_up.start_step_up(world.deps, world.actor(acc, "admin@example.com"), "change_currency",
                                    idempotency_key=key())

    assert (started.method, started.expires_in_minutes) == ("email_code", 10)
    [mail] = mails(world, "verification_code")
    assert mail.recipient_email == "admin@example.com"
    assert set(mail.payload) == {"secret_code", "purpose", "expires_in_minutes"}
    assert (mail.payload["purpose"], mail.payload["expires_in_minutes"]) == ("step_up", 10)
    code = mail.payload["secret_code"]
    assert len(code) == 6 and code.isdigit()
    [row] = world.all(VerificationCode)
    assert row.operation == "change_currency" and row.code_hash == salted_hash(row.code_salt, code)

    wrong_op = verify(world, acc, code, operation=OP, email="admin@example.com")
    assert wrong_op.reason == Reason.NO_CODE_PENDING
    assert verify(world, acc, code, operation="change_currency", email="admin@example.com").ok
    assert verify(world, acc, code, operation="change_currency", email="admin@example.com").reason == \
        Reason.NO_CODE_PENDING  # single use


def test_an_emailed_code_expires_after_ten_minutes(world):
    acc = world.account()
    step_up.start_step_up(world.deps, world.actor(acc), OP, idempotency_key=key())
    world.clock.advance(minutes=10)

    result = verify(world, acc, last_code(world))

    assert result.reason == Reason.CODE_EXPIRED
    assert world.count(StepUpGrant) == 0


def test_a_newer_code_voids_the_older_one_and_five_wrong_entries_void_a_code(world):
    acc = world.account()
    step_up.start_step_up(world.deps, world.actor(acc), OP, idempotency_key=key())
    first = last_code(world)
    world.clock.advance(seconds=10)
    step_up.start_step_up(world.deps, world.actor(acc), OP, idempotency_key=key())
    second = last_code(world)
    if first != second:
        assert verify(world, acc, first).reason == Reason.CODE_INVALID

    wrong = "000000" if second != "000000" else "111111"
    left = []
    for _ in range(5):
        world.execute(VerificationFailure.__table__.update().values(next_allowed_at=None))  # only the per-code limit
        result = verify(world, acc, wrong)
        left.append(result.details.get("attempts_left"))
        if left[-1] == 0:
            break
    assert left[-1] == 0 and left == sorted(left, reverse=True)
    world.execute(VerificationFailure.__table__.update().values(next_allowed_at=None))
    assert verify(world, acc, second).reason == Reason.NO_CODE_PENDING


def test_emailed_codes_are_limited_per_account_against_mail_flooding(world):
    acc = world.account()
    results = [step_up.start_step_up(world.deps, world.actor(acc), OP, idempotency_key=key()) for _ in range(4)]

    assert [r.ok for r in results] == [True, True, True, False]
    assert results[3].reason == Reason.RATE_LIMITED and results[3].details["retry_after_seconds"] == 600
    assert len(mails(world, "verification_code")) == 3


def test_the_code_limit_counts_per_operation_so_a_fourth_operation_still_gets_its_code(world):
    acc = world.account()
    for operation in ("close_account", "change_currency", "switch_to_business"):
        assert step_up.start_step_up(world.deps, world.actor(acc), operation, idempotency_key=key()).ok

    fourth = step_up.start_step_up(world.deps, world.actor(acc), "disable_member", idempotency_key=key())

    assert fourth.ok and fourth.method == "email_code"
    assert len(mails(world, "verification_code")) == 4


# --------------------------------------------------------------------------- grants


def test_a_grant_authorises_only_its_operation_member_and_account_once(world):
    acc = world.account(members=[("admin@example.com", "admin", "active")])
    other = world.account("other@example.com")
    enable_tfa(world, acc)
    assert verify(world, acc, totp(SECRET, world.clock())).ok

    assert step_up.consume_step_up(world.deps, world.actor(acc), "change_currency",
                                   idempotency_key=key()).reason == Reason.STEP_UP_REQUIRED
    assert step_up.consume_step_up(world.deps, world.actor(acc, "admin@example.com"), OP,
                                   idempotency_key=key()).reason == Reason.STEP_UP_REQUIRED
    assert step_up.consume_step_up(world.deps, world.actor(other, "owner@example.com"), OP,
                                   idempotency_key=key()).reason == Reason.NOT_PERMITTED
    assert step_up.consume_step_up(world.deps, world.actor(other, "other@example.com"), OP,
                                   idempotency_key=key()).reason == Reason.STEP_UP_REQUIRED
    assert step_up.consume_step_up(world.deps, world.actor(acc), OP, idempotency_key=key()).ok
    assert step_up.consume_step_up(world.deps, world.actor(acc), OP,
                                   idempotency_key=key()).reason == Reason.STEP_UP_REQUIRED


def test_a_grant_expires(world):
    acc = world.account()
    enable_tfa(world, acc)
    assert verify(world, acc, totp(SECRET, world.clock())).ok
    world.clock.advance(minutes=5)

    assert not step_up.has_step_up(world.deps, world.actor(acc), OP)
    assert step_up.consume_step_up(world.deps, world.actor(acc), OP,
                                   idempotency_key=key()).reason == Reason.STEP_UP_REQUIRED


def test_unknown_operations_and_strangers_are_refused(world):
    acc = world.account()
    assert step_up.start_step_up(world.deps, world.actor(acc), "delete_everything",
                                 idempotency_key=key()).reason == Reason.UNSUPPORTED_OPERATION
    assert step_up.start_step_up(world.deps, world.actor(acc, "stranger@example.com"), OP,
                                 idempotency_key=key()).reason == Reason.NOT_PERMITTED
    assert step_up.start_step_up(world.deps, world.actor(acc + 1000), OP,
                                 idempotency_key=key()).reason == Reason.ACCOUNT_NOT_FOUND


def test_the_sensitive_operations_require_and_use_up_a_grant(world):
    acc = world.account(members=[("member@example.com", "member", "active")])
    enable_tfa(world, acc)
    actor = world.actor(acc)
    calls = {
        "change_currency": lambda: currency.change_currency(
            world.deps, actor, currency="USD", idempotency_key=key(), require_step_up=True),
        "disable_member": lambda: members.disable_member(
            world.deps, actor, email="member@example.com", idempotency_key=key(), require_step_up=True),
        "switch_to_business": lambda: business.switch_to_business(
            world.deps, actor, company_name="ACME GmbH", registration_number="HRB 1", vat_id="DE123456789",
            company_address="Street 1, Berlin", idempotency_key=key(), require_step_up=True),
        "close_account": lambda: closing.request_closure(world.deps, actor, idempotency_key=key(),
                                                         require_step_up=True),
    }
    bound = {"change_currency": {"currency": "usd"}, "disable_member": {"email": "member@example.com"},
             "switch_to_business": {"company_name": "ACME GmbH", "vat_id": "DE123456789"}, "close_account": None}
    for operation, call in calls.items():
        before = world.snapshot()
        world.assert_refused(before, call(), "step_up_required")
        world.clock.advance(seconds=30)
        assert verify(world, acc, totp(SECRET, world.clock()), operation=operation, params=bound[operation]).ok
        assert call().ok, operation
        assert not step_up.has_step_up(world.deps, actor, operation)
    assert world.get(Account, acc).status == "closing"
    assert world.member(acc, "member@example.com").status == "disabled"


def test_a_refused_operation_keeps_the_grant(world):
    acc = world.account(invoices=[("INV-1", "10.00", "unpaid")])
    enable_tfa(world, acc)
    assert verify(world, acc, totp(SECRET, world.clock())).ok

    result = closing.request_closure(world.deps, world.actor(acc), idempotency_key=key(), require_step_up=True)

    assert result.reason == Reason.UNPAID_INVOICES
    assert step_up.has_step_up(world.deps, world.actor(acc), OP)


def test_no_code_reaches_audit_events_idempotency_records_or_logs(world, caplog):
    caplog.set_level(logging.DEBUG, logger="accounts")
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")  # SQL echo, as someone debugging might
    acc = world.account(members=[("admin@example.com", "admin", "active")])
    enable_tfa(world, acc)
    used = []
    step_up.start_step_up(world.deps, world.actor(acc, "admin@example.com"), OP, idempotency_key=key())
    used.append(last_code(world))
    verify(world, acc, "000000" if used[0] != "000000" else "111111", email="admin@example.com")
    assert verify(world, acc, used[0], email="admin@example.com").ok
    used.append(totp(SECRET, world.clock()))
    assert verify(world, acc, used[1]).ok

    assert_no_secret_stored_or_logged(world, used + [SECRET], caplog.records)
    sql = [r.getMessage() for r in caplog.records if r.name.startswith("sqlalchemy.engine")]
    assert any("parameters hidden" in m for m in sql)  # SQL is logged at INFO, its parameters never
    assert world.count(Member) == 2


def test_parallel_guessing_is_counted_one_by_one(world):
    acc = world.account()
    enable_tfa(world, acc)
    wrong = "000000" if totp(SECRET, world.clock()) != "000000" else "111111"

    results = world.run_threads(20, lambda i: verify(world, acc, wrong))

    reasons = [r.reason for r in results]
    assert reasons.count(Reason.CODE_INVALID) == 5 and reasons.count(Reason.TOO_MANY_ATTEMPTS) == 15
    assert world.all(VerificationFailure)[0].failures == 5


def test_the_idempotency_record_of_a_verification_says_nothing_about_the_code(world):
    """A SHA-256 of a 6-digit code (or of JSON around it) is reversed by trying a million codes."""
    acc = world.account()
    enable_tfa(world, acc)
    assert verify(world, acc, totp(SECRET, world.clock())).ok
    world.clock.advance(minutes=2)
    assert verify(world, acc, totp(SECRET, world.clock())).ok

    verifications = [r for r in world.idempotency_records() if r.operation == "verify_step_up"]
    assert len(verifications) == 2
    assert verifications[0].request_hash == verifications[1].request_hash


# --------------------------------------------------------------------------- binding (issue #12, item 2)


def test_a_grant_is_bound_to_its_conversation_and_parameters(world):
    acc = world.account()
    enable_tfa(world, acc)
    actor = world.actor(acc)
    assert verify(world, acc, totp(SECRET, world.clock()), operation="change_currency",
                  conversation="chat-a", params={"currency": "USD"}).ok

    def change(code, conversation):
        return currency.change_currency(world.deps, actor, currency=code, idempotency_key=key(),
                                        require_step_up=True, step_up_conversation=conversation)

    assert step_up.has_step_up(world.deps, actor, "change_currency", conversation_id="chat-a",
                               params={"currency": "usd"}, bound=True)
    assert not step_up.has_step_up(world.deps, actor, "change_currency", conversation_id="chat-b",
                                   params={"currency": "USD"}, bound=True)
    assert not step_up.has_step_up(world.deps, actor, "change_currency", conversation_id="chat-a",
                                   params={"currency": "GBP"}, bound=True)
    assert change("GBP", "chat-a").reason == Reason.STEP_UP_REQUIRED  # another currency
    assert change("USD", "chat-b").reason == Reason.STEP_UP_REQUIRED  # another conversation
    assert change("USD", None).reason == Reason.STEP_UP_REQUIRED  # no conversation
    assert change(" usd ", "chat-a").ok
    assert world.get(Account, acc).currency == "USD"


def test_a_new_grant_ends_the_members_older_open_grants(world):
    acc = world.account()
    enable_tfa(world, acc)
    assert verify(world, acc, totp(SECRET, world.clock()), operation="close_account", conversation="c1").ok
    world.clock.advance(seconds=30)
    assert verify(world, acc, totp(SECRET, world.clock()), operation="change_currency", conversation="c1",
                  params={"currency": "USD"}).ok

    older, newer = world.all(StepUpGrant)
    assert older.expires_at == world.clock() and newer.expires_at > world.clock()
    assert not step_up.has_step_up(world.deps, world.actor(acc), "close_account")
    assert step_up.has_step_up(world.deps, world.actor(acc), "change_currency")
    granted = [a for a in world.audits(action="step_up_granted")]
    assert [a.details["older_grants_ended"] for a in granted] == [0, 1]
