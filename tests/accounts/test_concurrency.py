"""Concurrent calls: ten threads, different idempotency keys, one winner where only one may win.

Runs on SQLite (BEGIN IMMEDIATE serialises writers) and PostgreSQL
(SELECT ... FOR UPDATE on the account row, advisory lock per reset address).
"""

from __future__ import annotations

from accounts import closing, members, password_reset
from accounts.models import Account, Invitation, Member, PasswordResetAttempt
from accounts.results import Reason

N = 10


def test_ten_concurrent_closures_one_success(world):
    acc = world.account()

    results = world.run_threads(
        N, lambda i: closing.request_closure(world.deps, world.actor(acc), idempotency_key=f"close-{i}")
    )

    assert sum(r.ok for r in results) == 1
    assert {r.reason for r in results if not r.ok} == {Reason.ALREADY_CLOSING}
    assert world.get(Account, acc).status == "closing"
    assert len(world.audits(outcome="succeeded")) == 1 and len(world.outbox()) == 1


def test_ten_concurrent_invitations_of_one_address_one_success(world):
    acc = world.account()

    results = world.run_threads(
        N,
        lambda i: members.invite_member(
            world.deps, world.actor(acc), email="new@example.com", role="member", idempotency_key=f"inv-{i}"
        ),
    )

    assert sum(r.ok for r in results) == 1
    assert {r.reason for r in results if not r.ok} == {Reason.ALREADY_INVITED}
    assert world.count(Invitation) == 1 and world.count(Member, Member.email == "new@example.com") == 1


def test_two_owners_disabling_each_other_leaves_one_owner(world):
    acc = world.account(members=[("owner2@example.com", "owner", "active")])
    pairs = [("owner@example.com", "owner2@example.com"), ("owner2@example.com", "owner@example.com")]

    results = world.run_threads(
        N,
        lambda i: members.disable_member(
            world.deps, world.actor(acc, pairs[i % 2][0]), email=pairs[i % 2][1], idempotency_key=f"dis-{i}"
        ),
    )

    assert sum(r.ok for r in results) == 1
    owners = world.all(Member, Member.account_id == acc, Member.role == "owner", Member.status == "active")
    assert len(owners) == 1
    assert len(world.audits(outcome="succeeded")) == 1


def test_same_key_from_ten_threads_runs_once(world):
    acc = world.account()

    results = world.run_threads(
        N, lambda i: closing.request_closure(world.deps, world.actor(acc), idempotency_key="one-key")
    )

    assert all(r.ok for r in results) and len({r.grace_period_ends_at for r in results}) == 1
    assert len(world.audits()) == 1 and len(world.outbox()) == 1 and len(world.idempotency_records()) == 1


def test_concurrent_reset_requests_respect_the_rate_limit(world):
    world.account()

    results = world.run_threads(
        N,
        lambda i: password_reset.request_password_reset(
            world.deps, email="owner@example.com", idempotency_key=f"reset-{i}"
        ),
    )

    assert sum(r.ok for r in results) == 3
    assert {r.reason for r in results if not r.ok} == {Reason.RATE_LIMITED}
    assert world.count(PasswordResetAttempt) == 3 and len(world.outbox()) == 3


def test_concurrent_acceptance_of_one_invitation(world):
    acc = world.account()
    token = members.invite_member(
        world.deps, world.actor(acc), email="new@example.com", role="member", idempotency_key="inv"
    ).token

    results = world.run_threads(
        N, lambda i: members.accept_invitation(world.deps, token=token, idempotency_key=f"acc-{i}")
    )

    assert sum(r.ok for r in results) == 1
    assert {r.reason for r in results if not r.ok} == {Reason.TOKEN_USED}
    assert len(world.outbox("member_joined")) == 1
