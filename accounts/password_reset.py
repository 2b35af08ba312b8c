"""Password recovery by e-mailed link.

* :func:`request_password_reset` answers the **same** for every well-formed
  address - :class:`PasswordResetRequested` - whether or not it belongs to a
  member, so the answer reveals nothing. If it belongs to an active member of
  an account that is not closed, a random single-use token (stored as its
  SHA-256 hash) valid for ``Settings.reset_token_ttl_minutes`` (30) is created
  and the link is written to the outbox under the ``secret_link`` key.
* Requests are **rate-limited per address**: at most ``reset_rate_limit`` (3)
  accepted requests per ``reset_rate_window_minutes`` (60), counted in the
  database (``password_reset_attempts``, address stored hashed) for known and
  unknown addresses alike; further requests get ``Refused(rate_limited)`` with
  ``retry_after_seconds``. Concurrent requests are serialised per address
  (advisory lock on PostgreSQL, the write lock on SQLite).
* :func:`consume_password_reset` checks the token (unknown, used, expired),
  sets the new password and marks the token - and every other open token of
  that person - used.

The domain never sees a clear-text password: the caller passes a password
hash made by the identity provider, or a callback that sets the password there.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Callable, List, Optional, Union
from urllib.parse import urlencode

import sqlalchemy as sa

from accounts.db import lock_account, lock_name, lock_row
from accounts.deps import Deps
from accounts.models import Account, Member, PasswordResetAttempt, PasswordResetToken
from accounts.operation import OperationContext, run_operation
from accounts.results import PasswordChanged, PasswordResetRequested, Reason, Refused, Result
from accounts.security import hash_secret, is_valid_email, normalize_email

RESET_PATH = "/password-reset"

#: Sets a new password in the identity provider; called with the member's e-mail.
PasswordSetter = Callable[[str], None]


def reset_link(base_url: str, token: str) -> str:
    """Return the e-mailed password-reset link.

    Args:
        base_url: Portal base URL.
        token: Raw reset token.

    Returns:
        The link.
    """
    return f"{base_url.rstrip('/')}{RESET_PATH}?{urlencode({'token': token})}"


def _active_members(ctx: OperationContext, email: str) -> List[Member]:
    stmt = (
        sa.select(Member)
        .join(Account, Account.id == Member.account_id)
        .where(Member.email == email, Member.status == "active", Account.status != "closed")
        .order_by(Member.id)
    )
    return list(ctx.session.execute(stmt).scalars())


def request_password_reset(
    deps: Deps,
    *,
    email: str,
    idempotency_key: str,
    link_base_url: Optional[str] = None,
) -> Result:
    """Send a reset link if the address belongs to a member; answer the same either way.

    Args:
        deps: Injected dependencies.
        email: Address typed by the customer.
        idempotency_key: Caller's key.
        link_base_url: Base of the link; defaults to ``Settings.portal_base_url``.

    Returns:
        :class:`PasswordResetRequested`, or :class:`Refused` with reason
        ``invalid_email`` or ``rate_limited`` (details: ``retry_after_seconds``).
    """
    address = normalize_email(email)
    email_hash = hash_secret(address)
    settings = deps.settings

    def body(ctx: OperationContext) -> Result:
        if not is_valid_email(address):
            return Refused(reason=Reason.INVALID_EMAIL)
        lock_name(ctx.session, f"password_reset:{email_hash}")
        window_start = ctx.now - timedelta(minutes=settings.reset_rate_window_minutes)
        recent = list(
            ctx.session.execute(
                sa.select(PasswordResetAttempt.requested_at)
                .where(
                    PasswordResetAttempt.email_hash == email_hash,
                    PasswordResetAttempt.requested_at > window_start,
                )
                .order_by(PasswordResetAttempt.requested_at)
            ).scalars()
        )
        if len(recent) >= settings.reset_rate_limit:
            reopens = recent[len(recent) - settings.reset_rate_limit] + timedelta(
                minutes=settings.reset_rate_window_minutes
            )
            return Refused(
                reason=Reason.RATE_LIMITED,
                details={"retry_after_seconds": max(1, int((reopens - ctx.now).total_seconds()))},
            )
        ctx.session.add(PasswordResetAttempt(email_hash=email_hash, requested_at=ctx.now))

        members = _active_members(ctx, address)
        if not members:
            ctx.audit(account_id=None, details={"email_hash": email_hash, "address_known": False})
        else:
            member = members[0]
            token = ctx.deps.tokens()
            expires_at = ctx.now + timedelta(minutes=settings.reset_token_ttl_minutes)
            row = PasswordResetToken(
                member_id=member.id, token_hash=hash_secret(token), created_at=ctx.now, expires_at=expires_at
            )
            ctx.session.add(row)
            ctx.session.flush()
            ctx.notify(
                account_id=member.account_id,
                recipient_email=address,
                kind="password_reset",
                payload={
                    "expires_at": expires_at,
                    "expires_in_minutes": settings.reset_token_ttl_minutes,
                    "secret_link": reset_link(link_base_url or settings.portal_base_url, token),
                },
            )
            ctx.audit(
                account_id=member.account_id,
                details={"email": address, "reset_token_id": row.id, "expires_at": expires_at, "address_known": True},
            )
        return PasswordResetRequested(expires_in_minutes=settings.reset_token_ttl_minutes)

    return run_operation(
        deps,
        operation="request_password_reset",
        idempotency_key=idempotency_key,
        actor=None,
        actor_label="anonymous",
        params={"email": address, "link_base_url": link_base_url},
        body=body,
    )


def consume_password_reset(
    deps: Deps,
    *,
    token: str,
    new_password: Union[str, PasswordSetter],
    idempotency_key: str,
) -> Result:
    """Use a reset token once to set a new password.

    Args:
        deps: Injected dependencies.
        token: The raw token from the link.
        new_password: A password *hash* to store on every active membership of
            that e-mail, or a callback ``f(email)`` that sets the password in
            the identity provider (if it raises, nothing is committed).
        idempotency_key: Caller's key.

    Returns:
        :class:`PasswordChanged`, or :class:`Refused` with reason
        ``invalid_token``, ``token_used``, ``token_expired`` or
        ``token_revoked`` (the member was disabled or the account closed since).

    Raises:
        ValueError: If ``new_password`` is an empty string.
    """
    if isinstance(new_password, str) and not new_password:
        raise ValueError("new_password must be a non-empty password hash or a callback")
    token_hash = hash_secret(token)
    password_fingerprint = (
        hashlib.sha256(new_password.encode()).hexdigest() if isinstance(new_password, str) else "callback"
    )

    def body(ctx: OperationContext) -> Result:
        found = ctx.session.execute(
            sa.select(PasswordResetToken.id, Member.account_id)
            .join(Member, Member.id == PasswordResetToken.member_id)
            .where(PasswordResetToken.token_hash == token_hash)
        ).first()
        if found is None:
            return Refused(reason=Reason.INVALID_TOKEN)
        ctx.account_id = found.account_id
        account = lock_account(ctx.session, found.account_id)
        row: PasswordResetToken = lock_row(ctx.session, PasswordResetToken, found.id)
        member = ctx.session.get(Member, row.member_id, populate_existing=True)
        assert member is not None
        ctx.actor_label = f"reset-token-holder:{member.email}"
        if row.used_at is not None:
            return Refused(reason=Reason.TOKEN_USED)
        if ctx.now >= row.expires_at:
            return Refused(reason=Reason.TOKEN_EXPIRED, details={"expired_at": row.expires_at})
        if member.status != "active" or account.status == "closed":
            return Refused(reason=Reason.TOKEN_REVOKED)

        memberships = _active_members(ctx, member.email)
        if isinstance(new_password, str):
            for m in memberships:
                m.password_hash = new_password
        else:
            new_password(member.email)
        open_tokens = ctx.session.execute(
            sa.select(PasswordResetToken)
            .where(
                PasswordResetToken.member_id.in_([m.id for m in memberships] or [member.id]),
                PasswordResetToken.used_at.is_(None),
            )
            .with_for_update()
        ).scalars()
        for t in open_tokens:
            t.used_at = ctx.now
        row.used_at = ctx.now
        ctx.notify(
            account_id=member.account_id,
            recipient_email=member.email,
            kind="password_changed",
            payload={"changed_at": ctx.now},
        )
        ctx.audit(account_id=member.account_id, details={"email": member.email, "reset_token_id": row.id})
        return PasswordChanged(email=member.email)

    return run_operation(
        deps,
        operation="consume_password_reset",
        idempotency_key=idempotency_key,
        actor=None,
        actor_label="reset-token-holder",
        params={"token_hash": token_hash, "new_password_sha256": password_fingerprint},
        body=body,
    )
