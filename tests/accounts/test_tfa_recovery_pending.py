"""Lost authenticator app over two messages: a pending proof in the account store, judged once.

Step one (:func:`hold_recovery_code`) notes which recovery code row the typed
code matches, or none, without using it; step two
(:func:`complete_held_tfa_recovery`) checks the e-mailed code and uses up both
in one transaction. Every test runs on SQLite and PostgreSQL (``world``).
"""

from __future__ import annotations

import json

import pytest

from accounts import tfa_recovery
from accounts.models import TfaEnrolment, TfaEnrollmentToken, TfaPendingProof, TfaRecoveryCode, VerificationFailure
from accounts.results import Reason
from accounts.security import hash_secret, normalize_code
from tests.accounts.verification_support import (
    RECOVERY,
    assert_no_secret_stored_or_logged,
    enable_tfa,
    key,
    last_code,
    mails,
)
from tests.secret_scan import contains_secret

CONVERSATION = "web-conversation-1"


def start(world, acc, email="owner@example.com"):
    return tfa_recovery.start_tfa_recovery(world.deps, world.actor(acc, email), idempotency_key=key("start"))


def hold(world, acc, code, conversation=CONVERSATION, email="owner@example.com", idempotency_key=None):
    return tfa_recovery.hold_recovery_code(world.deps, world.actor(acc, email), conversation_id=conversation,
                                           recovery_code=code, idempotency_key=idempotency_key or key("hold"))


def finish(world, acc, email_code, conversation=CONVERSATION, email="owner@example.com", idempotency_key=None):
    return tfa_recovery.complete_held_tfa_recovery(
        world.deps, world.actor(acc, email), conversation_id=conversation, email_code=email_code,
        idempotency_key=idempotency_key or key("finish"))


def wrong(code):
    return "000000" if code != "000000" else "111111"


def used_codes(world):
    return {c.code_hash for c in world.all(TfaRecoveryCode, TfaRecoveryCode.used_at.is_not(None))}


def test_a_held_recovery_code_and_the_emailed_code_reset_the_app(world):
    acc = world.account()
    enrolment_id = enable_tfa(world, acc)
    start(world, acc)

    held = hold(world, acc, " aaaa-bbbb-cccc-dddd ")
    assert held.ok and used_codes(world) == set()  # nothing used up yet
    done = finish(world, acc, last_code(world, "tfa_recovery"))

    assert done.ok
    assert used_codes(world) == {hash_secret(RECOVERY[0])}
    assert not world.get(TfaEnrolment, enrolment_id).enabled
    assert len(mails(world, "tfa_enrollment_link")) == 1
    [proof] = world.all(TfaPendingProof)
    assert (proof.attempts, proof.closed_at) == (1, world.clock())


def test_holding_a_code_says_nothing_about_it_and_counts_nothing(world):
    acc = world.account()
    enable_tfa(world, acc)
    start(world, acc)

    right = hold(world, acc, RECOVERY[1], conversation="a")
    bad = hold(world, acc, "ZZZZ-ZZZZ-ZZZZ-ZZZZ", conversation="b")

    assert right.to_dict() == bad.to_dict()
    assert used_codes(world) == set() and world.count(VerificationFailure) == 0
    assert {p.recovery_code_id is None for p in world.all(TfaPendingProof)} == {True, False}


def test_one_wrong_proof_refuses_without_saying_which_and_each_counts(world):
    acc = world.account()
    enrolment_id = enable_tfa(world, acc)
    start(world, acc)
    code = last_code(world, "tfa_recovery")

    hold(world, acc, "ZZZZ-ZZZZ-ZZZZ-ZZZZ")
    bad_recovery = finish(world, acc, code)
    hold(world, acc, RECOVERY[0])
    bad_email = finish(world, acc, wrong(code))

    assert bad_recovery.to_dict() == bad_email.to_dict()
    assert bad_recovery.reason == Reason.CODE_INVALID
    assert world.get(TfaEnrolment, enrolment_id).enabled and used_codes(world) == set()
    assert [a.details["failed"] for a in world.audits(outcome="refused", action="complete_held_tfa_recovery")
            ] == [["recovery_code"], ["email_code"]]
    hold(world, acc, RECOVERY[0])
    assert finish(world, acc, code).ok


def test_replaying_step_two_does_nothing_twice(world):
    acc = world.account()
    enable_tfa(world, acc)
    start(world, acc)
    code = last_code(world, "tfa_recovery")
    hold(world, acc, "ZZZZ-ZZZZ-ZZZZ-ZZZZ")

    # a refusal replayed (same key: the stored answer; a new key: nothing left to judge) counts once
    refused = finish(world, acc, code, idempotency_key="turn-7")
    assert refused.reason == Reason.CODE_INVALID
    assert finish(world, acc, code, idempotency_key="turn-7").to_dict() == refused.to_dict()
    assert finish(world, acc, code).details == {"proof": "recovery_code"}
    [counter] = world.all(VerificationFailure)
    assert (counter.authenticator, counter.failures) == ("recovery_code", 1)

    # a success replayed returns the stored result and resets nothing again
    hold(world, acc, RECOVERY[0])
    first = finish(world, acc, code, idempotency_key="turn-9")
    again = finish(world, acc, code, idempotency_key="turn-9")
    assert first.ok and again.to_dict() == first.to_dict()
    assert finish(world, acc, code).reason == Reason.NO_CODE_PENDING
    assert len(mails(world, "tfa_enrollment_link")) == 1 and world.count(TfaEnrollmentToken) == 1
    assert used_codes(world) == {hash_secret(RECOVERY[0])}


def test_a_recovery_code_stays_single_use(world):
    acc = world.account()
    enable_tfa(world, acc)
    start(world, acc)
    hold(world, acc, RECOVERY[0])
    assert finish(world, acc, last_code(world, "tfa_recovery")).ok
    world.clock.advance(minutes=1)
    start(world, acc)

    hold(world, acc, RECOVERY[0])
    assert finish(world, acc, last_code(world, "tfa_recovery")).reason == Reason.CODE_INVALID
    hold(world, acc, RECOVERY[1])
    assert finish(world, acc, last_code(world, "tfa_recovery")).ok
    assert used_codes(world) == {hash_secret(RECOVERY[0]), hash_secret(RECOVERY[1])}


def test_an_expired_pending_proof_refuses(world):
    acc = world.account()
    enable_tfa(world, acc)
    start(world, acc)
    hold(world, acc, RECOVERY[0])
    world.clock.advance(minutes=9)
    start(world, acc)  # a fresh e-mailed code: only the pending proof is old
    world.clock.advance(minutes=1)

    refused = finish(world, acc, last_code(world, "tfa_recovery"))

    assert refused.reason == Reason.CODE_EXPIRED and refused.details["proof"] == "recovery_code"
    assert used_codes(world) == set() and world.count(VerificationFailure) == 0
    hold(world, acc, RECOVERY[0])  # typing the recovery code again goes on
    assert finish(world, acc, last_code(world, "tfa_recovery")).ok


def test_the_pending_proof_belongs_to_its_conversation_and_member(world):
    acc = world.account(members=[("admin@example.com", "admin", "active")])
    enable_tfa(world, acc)
    enable_tfa(world, acc, "admin@example.com", recovery=("QQQQ-RRRR-SSSS-TTTT",))
    start(world, acc)
    code = last_code(world, "tfa_recovery")
    hold(world, acc, RECOVERY[0])

    assert finish(world, acc, code, conversation="another").reason == Reason.NO_CODE_PENDING
    assert finish(world, acc, code, email="admin@example.com").reason == Reason.NO_CODE_PENDING
    other = world.account("other@example.com")
    assert finish(world, other, code).reason == Reason.NOT_PERMITTED
    assert finish(world, acc, code).ok


def test_a_newer_code_replaces_the_held_one(world):
    acc = world.account()
    enable_tfa(world, acc)
    start(world, acc)
    hold(world, acc, "ZZZZ-ZZZZ-ZZZZ-ZZZZ")
    hold(world, acc, RECOVERY[2])

    assert finish(world, acc, last_code(world, "tfa_recovery")).ok
    assert used_codes(world) == {hash_secret(RECOVERY[2])}


def test_attempt_limits_count_across_held_codes(world):
    acc = world.account()
    enable_tfa(world, acc)
    start(world, acc)
    code = last_code(world, "tfa_recovery")
    for i in range(5):
        hold(world, acc, f"XXXX-XXXX-XXXX-XXX{i}")
        last = finish(world, acc, code)
    assert last.details["retry_after_seconds"] == 30

    assert hold(world, acc, RECOVERY[0]).reason == Reason.TOO_MANY_ATTEMPTS
    world.clock.advance(seconds=30)
    hold(world, acc, RECOVERY[0])
    assert finish(world, acc, code).ok


@pytest.mark.parametrize("who", ["anonymous conversation", "no tfa"])
def test_nothing_is_held_without_a_conversation_or_an_enrolment(world, who):
    acc = world.account()
    if who == "no tfa":
        assert hold(world, acc, RECOVERY[0]).reason == Reason.TFA_NOT_ENABLED
    else:
        enable_tfa(world, acc)
        assert hold(world, acc, RECOVERY[0], conversation="").reason == Reason.INVALID_REQUEST
    assert world.count(TfaPendingProof) == 0


def test_the_pending_proof_table_holds_no_code(world, caplog):
    acc = world.account()
    enable_tfa(world, acc)
    start(world, acc)
    email_code = last_code(world, "tfa_recovery")
    hold(world, acc, RECOVERY[1])
    finish(world, acc, wrong(email_code))
    hold(world, acc, RECOVERY[0])
    finish(world, acc, email_code)

    rows = json.dumps([[getattr(p, c.name) for c in TfaPendingProof.__table__.columns]
                       for p in world.all(TfaPendingProof)], default=str)
    for secret in (email_code, *RECOVERY):
        assert not contains_secret(rows, secret) and not contains_secret(rows, hash_secret(normalize_code(secret)))
    assert_no_secret_stored_or_logged(world, [email_code, *RECOVERY], caplog.records)


def test_step_two_sent_twice_at_once_to_two_servers_resets_once(world):
    acc = world.account()
    enable_tfa(world, acc)
    start(world, acc)
    code = last_code(world, "tfa_recovery")
    hold(world, acc, RECOVERY[0])

    results = world.run_threads(4, lambda i: finish(world, acc, code, idempotency_key=f"server-{i}"))

    assert sorted(r.ok for r in results) == [False, False, False, True]
    assert {r.reason for r in results if not r.ok} == {Reason.NO_CODE_PENDING}
    assert len(mails(world, "tfa_enrollment_link")) == 1
    assert used_codes(world) == {hash_secret(RECOVERY[0])}
