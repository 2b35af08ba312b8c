"""Inviting, admitting and disabling the users (members) of an account.

Rules (FAQ: "Profile -> User Management"):

* **invite_member**: active owners and admins invite; only owners may invite
  another owner. Inviting an **owner or admin** (also re-inviting a disabled
  member with such a role) needs a step-up grant for ``invite_member`` bound
  to that address and role (:mod:`accounts.step_up`), consumed with the
  invitation, whatever the caller asks: a chat or token alone never creates
  a new owner. An account sends at most ``Settings.invitations_per_day``
  (20) invitations per 24 hours (``rate_limited``). The address must be well-formed and not already an active or
  invited member (an invitation that expired, or a disabled member, may be
  invited again). The invitation token is random, stored only as its SHA-256
  hash, single-use and expires after ``Settings.invitation_ttl_days`` (7).
  The raw token is returned to the caller once (:class:`MemberInvited.token`)
  and the invitation e-mail with the link is written to the outbox under the
  ``secret_link`` payload key; neither the audit log nor the stored
  idempotent result contains it.
* **accept_invitation**: whoever holds a valid token becomes an active member.
* **disable_member**: active owners and admins disable members (an invited one
  has the invitation revoked). Nobody can disable themselves, admins cannot
  disable owners, and the last active owner cannot be disabled.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import List, Optional, Union
from urllib.parse import urlencode

import sqlalchemy as sa

from accounts.db import lock_account, lock_row, read_session
from accounts.deps import Actor, Deps
from accounts.guards import (
    OWNER_ONLY,
    OWNER_OR_ADMIN,
    active_owner_count,
    find_member,
    load_locked_account,
    require_role,
)
from accounts.models import MEMBER_ROLES, Account, Invitation, Member
from accounts.operation import OperationContext, run_operation
from accounts.results import (
    InvitationAccepted,
    MemberDisabled,
    MemberInvited,
    Reason,
    Refused,
    Result,
)
from accounts.security import hash_secret, is_valid_email, normalize_email
from accounts.step_up import consume_grant

INVITATION_PATH = "/invitations/accept"
#: Roles whose invitation needs a step-up grant.
STEP_UP_ROLES = ("owner", "admin")


def invitation_link(base_url: str, token: str) -> str:
    """Return the e-mailed link that accepts an invitation.

    Args:
        base_url: Portal base URL.
        token: Raw invitation token.

    Returns:
        The link.
    """
    return f"{base_url.rstrip('/')}{INVITATION_PATH}?{urlencode({'token': token})}"


def _pending_invitations(ctx: OperationContext, member_id: int) -> list:
    stmt = (
        sa.select(Invitation)
        .where(
            Invitation.member_id == member_id,
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
        )
        .with_for_update()
    )
    return list(ctx.session.execute(stmt).scalars())


def _invitations_today(ctx: OperationContext, account_id: int) -> List[Invitation]:
    since = ctx.now - timedelta(days=1)
    return list(ctx.session.execute(
        sa.select(Invitation).where(Invitation.account_id == account_id, Invitation.created_at > since)
        .order_by(Invitation.created_at)
    ).scalars())


def invite_member(
    deps: Deps, actor: Actor, *, email: str, role: str, idempotency_key: str,
    step_up_conversation: Optional[str] = None,
) -> Result:
    """Invite a person to the actor's account with a role.

    Args:
        deps: Injected dependencies.
        actor: The verified acting member (active owner or admin).
        email: Address of the person to invite.
        role: ``owner``, ``admin`` or ``member`` (``owner`` needs an owner).
        idempotency_key: Caller's key. A replay returns the stored result with
            ``token=None``; the e-mail is already in the outbox.
        step_up_conversation: The conversation that proved the step-up (owner
            and admin invitations; the grant is bound to it).

    Returns:
        :class:`MemberInvited` (with the raw token), or :class:`Refused` with
        reason ``invalid_email``, ``invalid_role``, ``account_not_found``,
        ``not_permitted``, ``account_not_active``, ``already_member``,
        ``already_invited`` (details: ``expires_at``), ``rate_limited``
        (``retry_after_seconds``) or ``step_up_required`` (owner or admin).
    """
    address = normalize_email(email)
    role = role.strip().lower()

    def body(ctx: OperationContext) -> Result:
        if not is_valid_email(address):
            return Refused(reason=Reason.INVALID_EMAIL, details={"email": address})
        if role not in MEMBER_ROLES:
            return Refused(reason=Reason.INVALID_ROLE, details={"roles": list(MEMBER_ROLES)})
        account = load_locked_account(ctx.session, actor.account_id)
        if isinstance(account, Refused):
            return account
        inviter = require_role(ctx.session, actor, OWNER_ONLY if role == "owner" else OWNER_OR_ADMIN)
        if isinstance(inviter, Refused):
            return inviter
        if account.status != "active":
            return Refused(reason=Reason.ACCOUNT_NOT_ACTIVE, details={"status": account.status})

        member = find_member(ctx.session, account.id, address)
        if member is not None and member.status == "active":
            return Refused(reason=Reason.ALREADY_MEMBER, details={"email": address, "role": member.role})
        if member is not None and member.status == "invited":
            pending = _pending_invitations(ctx, member.id)
            live = [i for i in pending if i.expires_at > ctx.now]
            if live:
                return Refused(
                    reason=Reason.ALREADY_INVITED,
                    details={"email": address, "expires_at": max(i.expires_at for i in live)},
                )
        recent = _invitations_today(ctx, account.id)
        if len(recent) >= ctx.deps.settings.invitations_per_day:
            oldest = recent[len(recent) - ctx.deps.settings.invitations_per_day]
            wait = (oldest.created_at + timedelta(days=1) - ctx.now).total_seconds()
            return Refused(reason=Reason.RATE_LIMITED, details={"retry_after_seconds": max(1, int(wait + 0.999))})
        if role in STEP_UP_ROLES:
            refusal = consume_grant(ctx, actor, "invite_member", conversation_id=step_up_conversation,
                                    params={"email": address, "role": role})
            if refusal is not None:
                return refusal
        if member is not None and member.status == "invited":
            for old in _pending_invitations(ctx, member.id):  # expired: replace by a fresh invitation
                old.revoked_at = ctx.now
        if member is None:
            member = Member(account_id=account.id, email=address, created_at=ctx.now)
            ctx.session.add(member)
        member.role = role
        member.status = "invited"
        member.invited_at = ctx.now
        member.invited_by_member_id = inviter.id
        member.joined_at = None
        member.disabled_at = None
        ctx.session.flush()

        token = ctx.deps.tokens()
        expires_at = ctx.now + timedelta(days=ctx.deps.settings.invitation_ttl_days)
        invitation = Invitation(
            account_id=account.id,
            member_id=member.id,
            email=address,
            role=role,
            token_hash=hash_secret(token),
            invited_by_member_id=inviter.id,
            created_at=ctx.now,
            expires_at=expires_at,
        )
        ctx.session.add(invitation)
        ctx.session.flush()
        ctx.notify(
            account_id=account.id,
            recipient_email=address,
            kind="member_invitation",
            payload={
                "role": role,
                "invited_by": inviter.email,
                "account_name": account.company_name or account.primary_email,
                "expires_at": expires_at,
                "secret_link": invitation_link(ctx.deps.settings.portal_base_url, token),
            },
        )
        ctx.audit(
            account_id=account.id,
            details={"email": address, "role": role, "invitation_id": invitation.id, "expires_at": expires_at},
        )
        return MemberInvited(
            account_id=account.id,
            email=address,
            role=role,
            invitation_id=invitation.id,
            expires_at=expires_at,
            token=token,
        )

    return run_operation(
        deps,
        operation="invite_member",
        idempotency_key=idempotency_key,
        actor=actor,
        params={"email": address, "role": role},
        body=body,
    )


def accept_invitation(deps: Deps, *, token: str, idempotency_key: str) -> Result:
    """Turn the invited member holding ``token`` into an active member.

    Args:
        deps: Injected dependencies.
        token: The raw token from the invitation link.
        idempotency_key: Caller's key.

    Returns:
        :class:`InvitationAccepted`, or :class:`Refused` with reason
        ``invalid_token``, ``token_used``, ``token_revoked``, ``token_expired``
        or ``account_not_active``.
    """
    token_hash = hash_secret(token)

    def body(ctx: OperationContext) -> Result:
        found = ctx.session.execute(
            sa.select(Invitation.id, Invitation.account_id).where(Invitation.token_hash == token_hash)
        ).first()
        if found is None:
            return Refused(reason=Reason.INVALID_TOKEN)
        ctx.account_id = found.account_id
        account = lock_account(ctx.session, found.account_id)
        invitation: Invitation = lock_row(ctx.session, Invitation, found.id)
        member: Member = lock_row(ctx.session, Member, invitation.member_id)
        ctx.actor_label = f"invitee:{invitation.email}"
        if invitation.accepted_at is not None:
            return Refused(reason=Reason.TOKEN_USED)
        if invitation.revoked_at is not None or member.status != "invited":
            return Refused(reason=Reason.TOKEN_REVOKED)
        if ctx.now >= invitation.expires_at:
            return Refused(reason=Reason.TOKEN_EXPIRED, details={"expired_at": invitation.expires_at})
        if account.status != "active":
            return Refused(reason=Reason.ACCOUNT_NOT_ACTIVE, details={"status": account.status})

        invitation.accepted_at = ctx.now
        member.status = "active"
        member.role = invitation.role
        member.joined_at = ctx.now
        ctx.notify(
            account_id=account.id,
            recipient_email=account.primary_email,
            kind="member_joined",
            payload={"email": member.email, "role": member.role},
        )
        ctx.audit(
            account_id=account.id,
            details={"email": member.email, "role": member.role, "invitation_id": invitation.id},
        )
        return InvitationAccepted(account_id=account.id, email=member.email, role=member.role)

    return run_operation(
        deps,
        operation="accept_invitation",
        idempotency_key=idempotency_key,
        actor=None,
        actor_label="invitee",
        params={"token_hash": token_hash},
        body=body,
    )


def disable_member(
    deps: Deps, actor: Actor, *, email: str, idempotency_key: str, require_step_up: bool = False,
    step_up_conversation: Optional[str] = None,
) -> Result:
    """Revoke a member's access to the actor's account.

    Args:
        deps: Injected dependencies.
        actor: The verified acting member (active owner or admin).
        email: Address of the member to disable.
        idempotency_key: Caller's key.
        require_step_up: Refuse with ``step_up_required`` unless the actor holds a
            step-up grant for ``disable_member`` (:mod:`accounts.step_up`); the grant is
            used up in this transaction, after every other check passed; it must
            have been granted for this member's address.
        step_up_conversation: The conversation that proved the step-up (the grant is bound to it).

    Returns:
        :class:`MemberDisabled`, or :class:`Refused` with reason
        ``account_not_found``, ``not_permitted``, ``account_closed``,
        ``member_not_found``, ``already_disabled``, ``cannot_disable_self``,
        ``cannot_disable_owner`` (admins), ``last_owner`` or ``step_up_required``.
    """
    address = normalize_email(email)

    def body(ctx: OperationContext) -> Result:
        account = load_locked_account(ctx.session, actor.account_id)
        if isinstance(account, Refused):
            return account
        acting = require_role(ctx.session, actor, OWNER_OR_ADMIN)
        if isinstance(acting, Refused):
            return acting
        if account.status == "closed":
            return Refused(reason=Reason.ACCOUNT_CLOSED)
        target = find_member(ctx.session, account.id, address)
        refusal = _disable_refusal(ctx.session, account.id, acting, target, address)
        if refusal is not None:
            return refusal
        if require_step_up:
            refusal = consume_grant(ctx, actor, "disable_member", conversation_id=step_up_conversation,
                                    params={"email": address})
            if refusal is not None:
                return refusal

        previous_status = target.status
        target.status = "disabled"
        target.disabled_at = ctx.now
        revoked = 0
        for invitation in _pending_invitations(ctx, target.id):
            invitation.revoked_at = ctx.now
            revoked += 1
        ctx.notify(
            account_id=account.id,
            recipient_email=target.email,
            kind="member_disabled",
            payload={"account_name": account.company_name or account.primary_email, "disabled_by": acting.email},
        )
        ctx.audit(
            account_id=account.id,
            details={
                "email": address,
                "role": target.role,
                "previous_status": previous_status,
                "invitations_revoked": revoked,
            },
        )
        return MemberDisabled(account_id=account.id, email=address)

    return run_operation(
        deps,
        operation="disable_member",
        idempotency_key=idempotency_key,
        actor=actor,
        params={"email": address},
        body=body,
    )


def _disable_refusal(session, account_id: int, acting: Member, target: Optional[Member],
                     address: str) -> Optional[Refused]:
    """Why ``acting`` may not disable ``target`` (None when they may)."""
    if target is None:
        return Refused(reason=Reason.MEMBER_NOT_FOUND, details={"email": address})
    if target.status == "disabled":
        return Refused(reason=Reason.ALREADY_DISABLED, details={"email": address})
    if target.id == acting.id:
        return Refused(reason=Reason.CANNOT_DISABLE_SELF)
    if acting.role != "owner" and target.role == "owner":
        return Refused(reason=Reason.CANNOT_DISABLE_OWNER, details={"email": address})
    if target.role == "owner" and target.status == "active":
        # Defence in depth: with the checks above an active owner always
        # remains, but keep the invariant explicit.
        if active_owner_count(session, account_id, excluding_member_id=target.id) == 0:
            return Refused(reason=Reason.LAST_OWNER)
    return None


def check_disable_member(deps: Deps, actor: Actor, *, email: str) -> Optional[Refused]:
    """Tell, without changing anything, why :func:`disable_member` would refuse ``email`` now.

    The same checks as the operation, so a conversation can refuse before it
    asks for a step-up code.

    Returns:
        None when the actor may disable that member, else the :class:`Refused`
        the operation would return (except ``step_up_required``).
    """
    address = normalize_email(email)
    with read_session(deps.session_factory) as session:
        account = session.get(Account, actor.account_id)
        if account is None:
            return Refused(reason=Reason.ACCOUNT_NOT_FOUND, details={"account_id": actor.account_id})
        acting = require_role(session, actor, OWNER_OR_ADMIN, lock=False)
        if isinstance(acting, Refused):
            return acting
        if account.status == "closed":
            return Refused(reason=Reason.ACCOUNT_CLOSED)
        return _disable_refusal(session, account.id, acting, find_member(session, account.id, address, lock=False),
                                address)


@dataclass(frozen=True)
class MemberView:
    """A member of an account as shown to its owners and admins."""

    email: str
    role: str
    status: str


def list_members(deps: Deps, actor: Actor) -> Union[List[MemberView], Refused]:
    """The account's members, for owners and admins (read-only).

    Args:
        deps: Injected dependencies.
        actor: The verified acting member.

    Returns:
        Members ordered by role (owners first) and e-mail, or
        ``Refused(NOT_PERMITTED)`` for other members.
    """
    order = {role: index for index, role in enumerate(MEMBER_ROLES)}
    with read_session(deps.session_factory) as session:
        member = require_role(session, actor, OWNER_OR_ADMIN, lock=False)
        if isinstance(member, Refused):
            return member
        rows = session.execute(
            sa.select(Member).where(Member.account_id == actor.account_id)
        ).scalars().all()
        return sorted(
            (MemberView(email=m.email, role=m.role, status=m.status) for m in rows),
            key=lambda view: (order.get(view.role, 99), view.email),
        )
