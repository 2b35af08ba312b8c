"""Tests of accounts.password_reset: same answer, rate limit, single-use expiring tokens."""

from __future__ import annotations

from datetime import timedelta

import pytest

from accounts import password_reset as pr
from accounts.models import Member, PasswordResetAttempt, PasswordResetToken
from accounts.results import PasswordChanged, PasswordResetRequested, Reason
from accounts.security import hash_secret


def request(world, email="owner@example.com", key="r", deps=None, **kw):
    return pr.request_password_reset(deps or world.deps, email=email, idempotency_key=key, **kw)


def test_known_address_gets_hashed_token_and_link(world):
    acc = world.account()

    result = request(world, email="  OWNER@example.com", link_base_url="https://help.example.org/")

    assert result == PasswordResetRequested(expires_in_minutes=30)
    token = world.tokens.issued[-1]
    [row] = world.all(PasswordResetToken)
    assert row.token_hash == hash_secret(token)
    assert row.expires_at == world.clock() + timedelta(minutes=30) and row.used_at is None
    [note] = world.outbox()
    assert (note.kind, note.recipient_email, note.account_id) == ("password_reset", "owner@example.com", acc)
    assert note.payload["secret_link"] == f"https://help.example.org/password-reset?token={token}"
    [audit] = world.audits()
    assert audit.details["address_known"] is True
    assert token not in world.dump(exclude=("outbox_notifications",))


def test_unknown_address_gets_the_same_answer_and_nothing_else(world):
    world.account()
    known = request(world, key="k1")
    unknown = request(world, email="nobody@example.com", key="k2")

    assert unknown == known
    assert unknown.to_dict() == known.to_dict()
    assert world.count(PasswordResetToken) == 1 and len(world.outbox()) == 1
    assert world.count(PasswordResetAttempt) == 2
    assert "nobody@example.com" not in world.dump()


@pytest.mark.parametrize("status", ["disabled", "invited"])
def test_inactive_member_is_treated_as_unknown(world, status):
    world.account(members=[("x@example.com", "member", status)])
    assert request(world, email="x@example.com") == PasswordResetRequested(expires_in_minutes=30)
    assert world.count(PasswordResetToken) == 0 and world.outbox() == []


def test_closed_account_is_treated_as_unknown(world):
    world.account(status="closed")
    assert request(world).ok
    assert world.count(PasswordResetToken) == 0


@pytest.mark.parametrize("email", ["owner@example.com", "nobody@example.com"])
def test_rate_limit_per_address_also_for_unknown_addresses(world, email):
    world.account()
    for i in range(3):
        assert request(world, email=email, key=f"k{i}").ok
        world.clock.advance(minutes=10)
    before = world.snapshot()

    limited = request(world, email=email, key="k3")

    world.assert_refused(before, limited, "rate_limited")
    assert limited.details["retry_after_seconds"] == 30 * 60  # first attempt leaves the window at +60 min
    assert request(world, email="other@example.com", key="other").ok
    world.clock.advance(minutes=30)
    assert request(world, email=email, key="k4").ok


def test_rate_limited_answer_is_the_same_for_known_and_unknown(world):
    world.account()
    for i in range(3):
        request(world, email="owner@example.com", key=f"a{i}")
        request(world, email="nobody@example.com", key=f"b{i}")
    assert request(world, email="owner@example.com", key="a9") == request(world, email="nobody@example.com", key="b9")


def test_invalid_address(world):
    before = world.snapshot()
    world.assert_refused(before, request(world, email="no-at-sign"), "invalid_email")


def test_request_is_idempotent(world):
    world.account()
    first = request(world, key="same")
    second = request(world, key="same")
    assert first == second
    assert world.count(PasswordResetToken) == 1 and world.count(PasswordResetAttempt) == 1
    assert request(world, email="else@example.com", key="same").reason == Reason.IDEMPOTENCY_KEY_REUSED


def test_request_all_or_nothing(world):
    world.account()
    before = world.snapshot(exclude=())
    with pytest.raises(Exception):
        request(world, deps=world.broken_deps())
    world.assert_nothing_written(before)


# --------------------------------------------------------------------------- consume


def _token(world, email="owner@example.com", key="r"):
    request(world, email=email, key=key)
    return world.tokens.issued[-1]


def test_consume_sets_password_once(world):
    acc = world.account()
    token = _token(world)
    world.clock.advance(minutes=29)

    result = pr.consume_password_reset(world.deps, token=token, new_password="argon2$hash", idempotency_key="c1")
    replay = pr.consume_password_reset(world.deps, token=token, new_password="argon2$hash", idempotency_key="c1")
    again = pr.consume_password_reset(world.deps, token=token, new_password="argon2$other", idempotency_key="c2")

    assert result == replay == PasswordChanged(email="owner@example.com")
    assert again.reason == Reason.TOKEN_USED
    assert world.member(acc, "owner@example.com").password_hash == "argon2$hash"
    [row] = world.all(PasswordResetToken)
    assert row.used_at == world.clock()
    [note] = world.outbox("password_changed")
    assert note.recipient_email == "owner@example.com"
    [audit] = world.audits(action="consume_password_reset", outcome="succeeded")
    assert audit.account_id == acc and "argon2" not in str(audit.details)
    assert token not in world.dump(exclude=("outbox_notifications",))


def test_consume_invalidates_other_open_tokens_and_all_memberships(world):
    a = world.account()
    b = world.account("b@example.com", members=[("owner@example.com", "admin", "active")])
    first = _token(world, key="r1")
    second = _token(world, key="r2")

    assert pr.consume_password_reset(world.deps, token=second, new_password="h2", idempotency_key="c").ok

    assert world.member(a, "owner@example.com").password_hash == "h2"
    assert world.member(b, "owner@example.com").password_hash == "h2"
    assert pr.consume_password_reset(world.deps, token=first, new_password="h1", idempotency_key="c1").reason == (
        Reason.TOKEN_USED
    )


def test_consume_expired_token(world):
    world.account()
    token = _token(world)
    world.clock.advance(minutes=30)
    before = world.snapshot()
    result = pr.consume_password_reset(world.deps, token=token, new_password="h", idempotency_key="c")
    world.assert_refused(before, result, "token_expired")


def test_consume_unknown_token(world):
    before = world.snapshot()
    result = pr.consume_password_reset(world.deps, token="forged", new_password="h", idempotency_key="c")
    world.assert_refused(before, result, "invalid_token")


def test_consume_after_member_disabled(world):
    acc = world.account(members=[("m@example.com", "member", "active")])
    token = _token(world, email="m@example.com")
    world.execute(
        Member.__table__.update().where(Member.email == "m@example.com").values(status="disabled")
    )
    before = world.snapshot()
    result = pr.consume_password_reset(world.deps, token=token, new_password="h", idempotency_key="c")
    world.assert_refused(before, result, "token_revoked")
    assert world.audits()[-1].account_id == acc


def test_consume_with_identity_provider_callback(world):
    world.account()
    token = _token(world)
    calls = []
    result = pr.consume_password_reset(world.deps, token=token, new_password=calls.append, idempotency_key="c")
    assert result.ok and calls == ["owner@example.com"]


def test_failing_callback_commits_nothing(world):
    world.account()
    token = _token(world)
    before = world.snapshot(exclude=())

    def broken(email):
        raise ConnectionError("identity provider down")

    with pytest.raises(ConnectionError):
        pr.consume_password_reset(world.deps, token=token, new_password=broken, idempotency_key="c")
    world.assert_nothing_written(before)


def test_consume_all_or_nothing(world):
    world.account()
    token = _token(world)
    before = world.snapshot(exclude=())
    with pytest.raises(Exception):
        pr.consume_password_reset(world.broken_deps(), token=token, new_password="h", idempotency_key="c")
    world.assert_nothing_written(before)


def test_empty_password_hash_is_a_programming_error(world):
    with pytest.raises(ValueError):
        pr.consume_password_reset(world.deps, token="t", new_password="", idempotency_key="c")
