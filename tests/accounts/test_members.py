"""Tests of accounts.members: invite, accept, disable."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
import sqlalchemy as sa

from accounts import members, step_up
from accounts.models import Account, Invitation, StepUpGrant
from accounts.results import InvitationAccepted, MemberDisabled, MemberInvited, Reason
from accounts.security import hash_secret
from tests.accounts.verification_support import SECRET, enable_tfa, key, last_code, totp

TEAM = [
    ("admin@example.com", "admin", "active"),
    ("member@example.com", "member", "active"),
    ("owner2@example.com", "owner", "active"),
]


def invite(world, acc, email="new@example.com", role="member", key="inv", actor="owner@example.com", deps=None,
           conversation=None):
    return members.invite_member(
        deps or world.deps, world.actor(acc, actor), email=email, role=role, idempotency_key=key,
        step_up_conversation=conversation,
    )


def step_up_for_invite(world, acc, email, role, actor="owner@example.com", conversation=None, code=None):
    """Prove an e-mailed step-up code for inviting ``email`` as ``role`` (member without TFA)."""
    if code is None:
        assert step_up.start_step_up(world.deps, world.actor(acc, actor), "invite_member",
                                     idempotency_key=key("start")).ok
        code = last_code(world, "step_up")
    granted = step_up.verify_step_up(world.deps, world.actor(acc, actor), "invite_member", code,
                                     idempotency_key=key("verify"), conversation_id=conversation,
                                     params={"email": email, "role": role})
    assert granted.ok, granted


# --------------------------------------------------------------------------- invite


def test_invite_creates_invited_member_and_hashed_single_use_invitation(world):
    acc = world.account()
    step_up_for_invite(world, acc, "new@example.com", "admin")
    before_audits, before_mails = len(world.audits()), len(world.outbox())

    result = invite(world, acc, email=" New@Example.com ", role="admin")

    assert isinstance(result, MemberInvited)
    token = result.token
    assert token == world.tokens.issued[-1]
    assert (result.email, result.role, result.expires_at) == (
        "new@example.com", "admin", world.clock() + timedelta(days=7),
    )
    member = world.member(acc, "new@example.com")
    assert (member.status, member.role, member.invited_at) == ("invited", "admin", world.clock())
    [invitation] = world.all(Invitation)
    assert invitation.token_hash == hash_secret(token) and invitation.id == result.invitation_id
    consumed, audit = world.audits()[before_audits:]
    assert (consumed.action, audit.action) == ("step_up_consumed", "invite_member")
    assert audit.details["email"] == "new@example.com"
    [note] = world.outbox()[before_mails:]
    assert (note.kind, note.recipient_email) == ("member_invitation", "new@example.com")
    assert note.payload["secret_link"] == f"https://portal.example.com/invitations/accept?token={token}"
    # the raw token exists only in the outbox's secret_link
    assert token not in world.dump(exclude=("outbox_notifications",))
    assert token not in str({k: v for k, v in note.payload.items() if k != "secret_link"})


@pytest.mark.parametrize(
    "email, role, reason",
    [("not-an-email", "member", "invalid_email"), ("a@b", "member", "invalid_email"), ("x@example.com", "boss", "invalid_role")],
)
def test_invalid_input(world, email, role, reason):
    acc = world.account()
    before = world.snapshot()
    world.assert_refused(before, invite(world, acc, email=email, role=role), reason)


@pytest.mark.parametrize(
    "actor, role",
    [("member@example.com", "member"), ("admin@example.com", "owner"), ("nobody@example.com", "member")],
)
def test_permissions(world, actor, role):
    acc = world.account(members=TEAM)
    before = world.snapshot()
    world.assert_refused(before, invite(world, acc, role=role, actor=actor), "not_permitted")


def test_admin_may_invite_admins_and_members(world):
    acc = world.account(members=TEAM)
    step_up_for_invite(world, acc, "a@example.com", "admin", actor="admin@example.com")
    assert invite(world, acc, "a@example.com", "admin", "k1", actor="admin@example.com").ok
    assert invite(world, acc, "b@example.com", "member", "k2", actor="admin@example.com").ok


def test_no_duplicate_active_or_invited_member(world):
    acc = world.account(members=TEAM)
    invite(world, acc, key="first")
    before = world.snapshot()

    active = invite(world, acc, email="member@example.com", key="k1")
    world.assert_refused(before, active, "already_member")
    invited = invite(world, acc, key="k2")
    world.assert_refused(before, invited, "already_invited")
    assert invited.details["expires_at"] == (world.clock() + timedelta(days=7)).isoformat()


def test_expired_invitation_or_disabled_member_can_be_invited_again(world):
    acc = world.account(members=[("gone@example.com", "member", "disabled")])
    first = invite(world, acc, key="k1")
    world.clock.advance(days=7)

    step_up_for_invite(world, acc, "new@example.com", "admin")
    again = invite(world, acc, key="k2", role="admin")
    back = invite(world, acc, email="gone@example.com", key="k3")

    assert again.ok and back.ok
    old, new, gone = world.all(Invitation)
    assert old.revoked_at == world.clock() and new.revoked_at is None
    assert world.member(acc, "new@example.com").role == "admin"
    assert world.member(acc, "gone@example.com").status == "invited"
    refused = members.accept_invitation(world.deps, token=first.token, idempotency_key="acc-old")
    assert refused.reason == Reason.TOKEN_REVOKED


@pytest.mark.parametrize("status", ["closing", "closed"])
def test_account_must_be_active_to_invite(world, status):
    acc = world.account(status=status)
    before = world.snapshot()
    world.assert_refused(before, invite(world, acc), "account_not_active")


def test_invite_retry_returns_same_result_without_token(world):
    acc = world.account()
    first = invite(world, acc)
    again = invite(world, acc)
    other = invite(world, acc, email="other@example.com")

    assert again == dataclasses.replace(first, token=None)
    assert first.token is not None
    assert other.reason == Reason.IDEMPOTENCY_KEY_REUSED
    assert world.count(Invitation) == 1 and len(world.outbox()) == 1 and len(world.audits(outcome="succeeded")) == 1
    assert first.token not in world.dump(exclude=("outbox_notifications",))


def test_invite_all_or_nothing(world):
    acc = world.account()
    before = world.snapshot(exclude=())
    with pytest.raises(Exception):
        invite(world, acc, deps=world.broken_deps())
    world.assert_nothing_written(before)


@pytest.mark.parametrize("role", ["owner", "admin"])
def test_inviting_an_owner_or_admin_needs_a_step_up_for_that_address_and_role(world, role):
    """Issue #12: the TFA owner invited intruder@evil.example as owner with a portal token alone."""
    acc = world.account()
    enable_tfa(world, acc)
    before = world.snapshot()

    world.assert_refused(before, invite(world, acc, "intruder@evil.example", role, key="k1"), "step_up_required")

    # a grant for another address, another role, or another conversation does not do
    for params, conversation in (({"email": "someone@example.com", "role": role}, "chat-1"),
                                 ({"email": "intruder@evil.example", "role": "member"}, "chat-1"),
                                 ({"email": "intruder@evil.example", "role": role}, "chat-2")):
        world.clock.advance(seconds=30)
        assert step_up.verify_step_up(world.deps, world.actor(acc), "invite_member", totp(SECRET, world.clock()),
                                      idempotency_key=key(), conversation_id=conversation, params=params).ok
        refused = invite(world, acc, "intruder@evil.example", role, key=key(), conversation="chat-1")
        assert refused.reason == Reason.STEP_UP_REQUIRED
    assert world.member(acc, "owner@example.com").role == "owner"
    assert [r.email for r in world.all(Invitation)] == []

    world.clock.advance(seconds=30)
    assert step_up.verify_step_up(world.deps, world.actor(acc), "invite_member", totp(SECRET, world.clock()),
                                  idempotency_key=key(), conversation_id="chat-1",
                                  params={"email": "Intruder@Evil.example ", "role": role.upper()}).ok
    invited = invite(world, acc, "intruder@evil.example", role, key="k2", conversation="chat-1")
    assert invited.ok and invited.role == role
    assert [g.consumed_at for g in world.all(StepUpGrant)][-1] == world.clock()
    assert invite(world, acc, "second@evil.example", role, key="k3",
                  conversation="chat-1").reason == Reason.STEP_UP_REQUIRED  # used up


def test_inviting_a_plain_member_needs_no_step_up(world):
    acc = world.account()
    assert invite(world, acc, "helper@example.com", "member").ok
    assert world.count(StepUpGrant) == 0


def test_invitations_are_limited_per_account_and_day(world):
    world.settings = dataclasses.replace(world.settings, invitations_per_day=3)
    deps = world.with_deps(settings=world.settings)
    acc = world.account()
    for i in range(3):
        assert invite(world, acc, f"p{i}@example.com", key=f"k{i}", deps=deps).ok
        world.clock.advance(hours=1)
    before = world.snapshot()

    refused = invite(world, acc, "p3@example.com", key="k3", deps=deps)

    world.assert_refused(before, refused, "rate_limited")
    assert refused.details["retry_after_seconds"] == 21 * 3600  # the first one leaves the window
    world.clock.advance(hours=21)
    assert invite(world, acc, "p3@example.com", key="k4", deps=deps).ok


# --------------------------------------------------------------------------- accept


def test_accept_makes_active_member_once(world):
    acc = world.account()
    step_up_for_invite(world, acc, "new@example.com", "admin")
    token = invite(world, acc, role="admin").token
    world.clock.advance(days=6, hours=23)

    result = members.accept_invitation(world.deps, token=token, idempotency_key="a1")
    replay = members.accept_invitation(world.deps, token=token, idempotency_key="a1")
    second = members.accept_invitation(world.deps, token=token, idempotency_key="a2")

    assert result == replay == InvitationAccepted(account_id=acc, email="new@example.com", role="admin")
    member = world.member(acc, "new@example.com")
    assert (member.status, member.joined_at) == ("active", world.clock())
    assert second.reason == Reason.TOKEN_USED
    [audit] = world.audits(action="accept_invitation", outcome="succeeded")
    assert audit.actor == "invitee:new@example.com" and audit.account_id == acc
    [note] = world.outbox("member_joined")
    assert note.recipient_email == "owner@example.com"
    assert token not in world.dump(exclude=("outbox_notifications",))


def test_accept_expired_invitation(world):
    acc = world.account()
    token = invite(world, acc).token
    world.clock.advance(days=7)
    before = world.snapshot()
    world.assert_refused(before, members.accept_invitation(world.deps, token=token, idempotency_key="a"), "token_expired")
    assert world.member(acc, "new@example.com").status == "invited"


def test_accept_unknown_token(world):
    world.account()
    before = world.snapshot()
    world.assert_refused(
        before, members.accept_invitation(world.deps, token="forged", idempotency_key="a"), "invalid_token"
    )


def test_accept_after_member_was_disabled(world):
    acc = world.account()
    token = invite(world, acc).token
    members.disable_member(world.deps, world.actor(acc), email="new@example.com", idempotency_key="d")
    before = world.snapshot()
    world.assert_refused(before, members.accept_invitation(world.deps, token=token, idempotency_key="a"), "token_revoked")


def test_accept_on_closing_account(world):
    acc = world.account()
    token = invite(world, acc).token
    world.execute(sa.update(Account).where(Account.id == acc).values(status="closing"))
    before = world.snapshot()
    world.assert_refused(
        before, members.accept_invitation(world.deps, token=token, idempotency_key="a"), "account_not_active"
    )


def test_accept_all_or_nothing(world):
    acc = world.account()
    token = invite(world, acc).token
    before = world.snapshot(exclude=())
    with pytest.raises(Exception):
        members.accept_invitation(world.broken_deps(), token=token, idempotency_key="a")
    world.assert_nothing_written(before)


# --------------------------------------------------------------------------- disable


@pytest.mark.parametrize(
    "actor, target",
    [
        ("owner@example.com", "admin@example.com"),
        ("owner@example.com", "owner2@example.com"),
        ("admin@example.com", "member@example.com"),
    ],
)
def test_disable_member(world, actor, target):
    acc = world.account(members=TEAM)

    result = members.disable_member(world.deps, world.actor(acc, actor), email=target.upper(), idempotency_key="d")

    assert result == MemberDisabled(account_id=acc, email=target)
    member = world.member(acc, target)
    assert (member.status, member.disabled_at) == ("disabled", world.clock())
    [audit] = world.audits()
    assert audit.details["email"] == target
    [note] = world.outbox()
    assert (note.kind, note.recipient_email) == ("member_disabled", target)
    assert members.disable_member(world.deps, world.actor(acc, actor), email=target, idempotency_key="d") == result
    assert len(world.audits()) == 1


def test_disable_invited_member_revokes_invitation(world):
    acc = world.account()
    invite(world, acc)
    assert members.disable_member(world.deps, world.actor(acc), email="new@example.com", idempotency_key="d").ok
    [invitation] = world.all(Invitation)
    assert invitation.revoked_at == world.clock()
    assert world.audits()[-1].details["invitations_revoked"] == 1


@pytest.mark.parametrize(
    "actor, target, reason",
    [
        ("member@example.com", "admin@example.com", "not_permitted"),
        ("owner@example.com", "ghost@example.com", "member_not_found"),
        ("owner@example.com", "gone@example.com", "already_disabled"),
        ("owner@example.com", "owner@example.com", "cannot_disable_self"),
        ("admin@example.com", "admin@example.com", "cannot_disable_self"),
        ("admin@example.com", "owner@example.com", "cannot_disable_owner"),
        ("admin@example.com", "owner2@example.com", "cannot_disable_owner"),
    ],
)
def test_disable_refusals(world, actor, target, reason):
    acc = world.account(members=TEAM + [("gone@example.com", "member", "disabled")])
    before = world.snapshot()
    result = members.disable_member(world.deps, world.actor(acc, actor), email=target, idempotency_key="d")
    world.assert_refused(before, result, reason)


@pytest.mark.parametrize(
    "actor, target, reason",
    [
        ("member@example.com", "admin@example.com", "not_permitted"),
        ("owner@example.com", "ghost@example.com", "member_not_found"),
        ("owner@example.com", "gone@example.com", "already_disabled"),
        ("owner@example.com", "owner@example.com", "cannot_disable_self"),
        ("admin@example.com", "owner@example.com", "cannot_disable_owner"),
        ("owner@example.com", "member@example.com", None),
        ("admin@example.com", "member@example.com", None),
    ],
)
def test_the_disable_check_gives_the_operations_verdict_without_changing_anything(world, actor, target,
                                                                                reason):
    acc = world.account(members=TEAM + [("gone@example.com", "member", "disabled")])
    before = world.snapshot()
    refusal = members.check_disable_member(world.deps, world.actor(acc, actor), email=target)
    assert (refusal.reason.value if refusal else None) == reason
    assert world.snapshot() == before


def test_disable_on_closed_account(world):
    acc = world.account(status="closed", members=TEAM)
    before = world.snapshot()
    result = members.disable_member(world.deps, world.actor(acc), email="member@example.com", idempotency_key="d")
    world.assert_refused(before, result, "account_closed")


def test_last_owner_guard(world):
    """The last active owner can never be disabled, whoever asks: with one owner
    the only possible requester among owners is that owner (cannot_disable_self)
    and admins cannot touch owners; the explicit guard backs this up."""
    acc = world.account(members=[("admin@example.com", "admin", "active")])
    for actor in ("owner@example.com", "admin@example.com"):
        result = members.disable_member(world.deps, world.actor(acc, actor), email="owner@example.com", idempotency_key=actor)
        assert not result.ok
    assert world.member(acc, "owner@example.com").status == "active"


def test_disable_all_or_nothing(world):
    acc = world.account(members=TEAM)
    before = world.snapshot(exclude=())
    with pytest.raises(Exception):
        members.disable_member(world.broken_deps(), world.actor(acc), email="member@example.com", idempotency_key="d")
    world.assert_nothing_written(before)
