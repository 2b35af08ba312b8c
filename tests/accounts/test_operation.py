"""Tests of the operation frame (accounts.operation) and the outbox rules (accounts.outbox)."""

from __future__ import annotations

from datetime import datetime

import pytest

from accounts import closing
from accounts.deps import Actor
from accounts.operation import fingerprint, run_operation
from accounts.outbox import check_no_secrets, redact_payload
from accounts.results import ClosureUndone


@pytest.mark.parametrize("key", ["", "x" * 201])
def test_idempotency_key_must_be_given(sqlite_world, key):
    acc = sqlite_world.account()
    with pytest.raises(ValueError):
        closing.request_closure(sqlite_world.deps, sqlite_world.actor(acc), idempotency_key=key)


def test_clock_must_be_aware(sqlite_world):
    acc = sqlite_world.account()
    deps = sqlite_world.with_deps(clock=lambda: datetime(2024, 1, 1))
    with pytest.raises(ValueError, match="aware"):
        closing.request_closure(deps, sqlite_world.actor(acc), idempotency_key="k")
    assert sqlite_world.idempotency_records() == []


def test_fingerprint_covers_operation_actor_and_params():
    a = Actor(1, "A@example.com")
    base = fingerprint("op", a, {"x": 1})
    assert base == fingerprint("op", Actor(1, "a@example.com "), {"x": 1})
    assert len({base, fingerprint("op2", a, {"x": 1}), fingerprint("op", Actor(2, "a@example.com"), {"x": 1}),
                fingerprint("op", a, {"x": 2}), fingerprint("op", None, {"x": 1})}) == 5


def test_same_key_by_another_actor_is_refused(sqlite_world):
    acc = sqlite_world.account(members=[("owner2@example.com", "owner", "active")])
    assert closing.request_closure(sqlite_world.deps, sqlite_world.actor(acc), idempotency_key="k").ok
    other = closing.request_closure(
        sqlite_world.deps, sqlite_world.actor(acc, "owner2@example.com"), idempotency_key="k"
    )
    assert other.reason.value == "idempotency_key_reused"


def test_audit_refuses_secret_fields(sqlite_world):
    def body(ctx):
        ctx.audit(account_id=None, details={"token": "abc"})
        return ClosureUndone(account_id=1)

    with pytest.raises(ValueError, match="secret"):
        run_operation(sqlite_world.deps, operation="x", idempotency_key="k", actor=None, params={}, body=body)
    assert sqlite_world.idempotency_records() == [] and sqlite_world.audits() == []


def test_outbox_payload_rules():
    payload = {"expires_in_minutes": 30, "secret_link": "https://p/reset?token=abc"}
    assert redact_payload(payload) == {"expires_in_minutes": 30}
    check_no_secrets(payload, allow_secret_prefix=True)
    with pytest.raises(ValueError):
        check_no_secrets(payload)
    with pytest.raises(ValueError):
        check_no_secrets({"nested": {"password": "x"}}, allow_secret_prefix=True)
