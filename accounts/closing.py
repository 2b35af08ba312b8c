"""Closing an account: request, undo within the grace period, finalize.

Rules (FAQ: "cancel services on the portal and settle the unpaid bills"):

* Only an active **owner** may request or undo a closure.
* A closure may be requested only when every service is cancelled and no
  invoice is unpaid; otherwise the refusal lists the unpaid invoices and the
  active services (``reason`` is the first of ``blocking``:
  ``unpaid_invoices``, ``active_services``).
* A request puts the account in ``closing`` for a grace period (default
  ``Settings.grace_period_days`` = 14 days, or ``grace_period_days``); it can be
  undone until the period ends.
* :func:`finalize_due_closures`, run by a scheduler, closes every account whose
  grace period has ended.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import List, Optional

import sqlalchemy as sa
from sqlalchemy.orm import Session

from accounts.db import read_session
from accounts.deps import Actor, Deps
from accounts.guards import (
    OWNER_ONLY,
    active_services,
    load_locked_account,
    require_role,
    unpaid_invoices,
)
from accounts.models import Account
from accounts.operation import OperationContext, run_operation
from accounts.results import (
    ClosureRequested,
    ClosuresFinalized,
    ClosureUndone,
    Reason,
    Refused,
    Result,
)
from accounts.step_up import consume_grant

FINALIZER_ACTOR = "system:closure_finalizer"


def _closure_refusal(session: Session, account: Account, *, lock: bool) -> Optional[Refused]:
    """Why the account cannot be closed now, or None if it can (the FAQ's rule)."""
    if account.status == "closing":
        return Refused(
            reason=Reason.ALREADY_CLOSING,
            details={"grace_period_ends_at": account.grace_period_ends_at},
        )
    if account.status == "closed":
        return Refused(reason=Reason.ACCOUNT_CLOSED)
    invoices = unpaid_invoices(session, account.id, lock=lock)
    services = active_services(session, account.id)
    blocking: List[Reason] = []
    if invoices:
        blocking.append(Reason.UNPAID_INVOICES)
    if services:
        blocking.append(Reason.ACTIVE_SERVICES)
    if blocking:
        return Refused(
            reason=blocking[0], blocking=tuple(blocking), invoices=tuple(invoices), services=tuple(services)
        )
    return None


def check_closure(deps: Deps, actor: Actor) -> Optional[Refused]:
    """Tell, without changing anything, whether the actor may close the account now.

    Args:
        deps: Injected dependencies.
        actor: The verified acting member.

    Returns:
        None if :func:`request_closure` would succeed now, else the refusal it
        would return (with the blocking invoices and services).
    """
    with read_session(deps.session_factory) as session:
        account = session.get(Account, actor.account_id)
        if account is None:
            return Refused(reason=Reason.ACCOUNT_NOT_FOUND, details={"account_id": actor.account_id})
        member = require_role(session, actor, OWNER_ONLY, lock=False)
        if isinstance(member, Refused):
            return member
        return _closure_refusal(session, account, lock=False)


def request_closure(
    deps: Deps,
    actor: Actor,
    *,
    idempotency_key: str,
    grace_period_days: Optional[int] = None,
    require_step_up: bool = False,
    step_up_conversation: Optional[str] = None,
) -> Result:
    """Put the actor's account into ``closing`` for a grace period.

    Args:
        deps: Injected dependencies.
        actor: The verified acting member (must be an active owner).
        idempotency_key: Caller's key; a retry with it returns the same result.
        grace_period_days: Override of ``deps.settings.grace_period_days``.
        require_step_up: Refuse with ``step_up_required`` unless the actor holds a
            step-up grant for ``close_account`` (:mod:`accounts.step_up`); the grant is
            used up in this transaction, after every other check passed.
        step_up_conversation: The conversation that proved the step-up (the grant is bound to it).

    Returns:
        :class:`ClosureRequested`, or :class:`Refused` with reason
        ``account_not_found``, ``not_permitted``, ``already_closing``,
        ``account_closed``, ``unpaid_invoices``, ``active_services`` or
        ``step_up_required``.
    """
    days = deps.settings.grace_period_days if grace_period_days is None else grace_period_days
    if days < 0:
        raise ValueError("grace_period_days must not be negative")

    def body(ctx: OperationContext) -> Result:
        account = load_locked_account(ctx.session, actor.account_id)
        if isinstance(account, Refused):
            return account
        member = require_role(ctx.session, actor, OWNER_ONLY)
        if isinstance(member, Refused):
            return member
        refusal = _closure_refusal(ctx.session, account, lock=True)
        if refusal is not None:
            return refusal
        if require_step_up:
            refusal = consume_grant(ctx, actor, "close_account", conversation_id=step_up_conversation)
            if refusal is not None:
                return refusal

        ends_at = ctx.now + timedelta(days=days)
        account.status = "closing"
        account.closing_requested_at = ctx.now
        account.grace_period_ends_at = ends_at
        ctx.notify(
            account_id=account.id,
            recipient_email=account.primary_email,
            kind="closure_requested",
            payload={"grace_period_ends_at": ends_at, "requested_by": member.email},
        )
        ctx.audit(
            account_id=account.id,
            details={"grace_period_days": days, "grace_period_ends_at": ends_at},
        )
        return ClosureRequested(account_id=account.id, grace_period_ends_at=ends_at)

    return run_operation(
        deps,
        operation="request_closure",
        idempotency_key=idempotency_key,
        actor=actor,
        params={"grace_period_days": days},
        body=body,
    )


def undo_closure(deps: Deps, actor: Actor, *, idempotency_key: str) -> Result:
    """Withdraw a closure request while the grace period runs.

    Args:
        deps: Injected dependencies.
        actor: The verified acting member (must be an active owner).
        idempotency_key: Caller's key.

    Returns:
        :class:`ClosureUndone`, or :class:`Refused` with reason
        ``account_not_found``, ``not_permitted``, ``account_closed``,
        ``not_closing`` or ``grace_period_over``.
    """

    def body(ctx: OperationContext) -> Result:
        account = load_locked_account(ctx.session, actor.account_id)
        if isinstance(account, Refused):
            return account
        member = require_role(ctx.session, actor, OWNER_ONLY)
        if isinstance(member, Refused):
            return member
        if account.status == "closed":
            return Refused(reason=Reason.ACCOUNT_CLOSED)
        if account.status != "closing":
            return Refused(reason=Reason.NOT_CLOSING)
        assert account.grace_period_ends_at is not None
        if ctx.now >= account.grace_period_ends_at:
            return Refused(
                reason=Reason.GRACE_PERIOD_OVER,
                details={"grace_period_ended_at": account.grace_period_ends_at},
            )
        previous_end = account.grace_period_ends_at
        account.status = "active"
        account.closing_requested_at = None
        account.grace_period_ends_at = None
        ctx.notify(
            account_id=account.id,
            recipient_email=account.primary_email,
            kind="closure_undone",
            payload={"undone_by": member.email},
        )
        ctx.audit(account_id=account.id, details={"grace_period_ends_at": previous_end})
        return ClosureUndone(account_id=account.id)

    return run_operation(
        deps,
        operation="undo_closure",
        idempotency_key=idempotency_key,
        actor=actor,
        params={},
        body=body,
    )


def finalize_due_closures(
    deps: Deps, *, idempotency_key: str, now: Optional[datetime] = None
) -> Result:
    """Close every ``closing`` account whose grace period ended (scheduler job).

    Each closed account gets its own audit event and notification, all in one
    transaction.

    Args:
        deps: Injected dependencies.
        idempotency_key: Caller's key (e.g. ``"finalize:2024-06-01T03"``).
        now: Cut-off time; defaults to the injected clock.

    Returns:
        :class:`ClosuresFinalized` listing the closed account ids (maybe none).
    """

    def body(ctx: OperationContext) -> Result:
        cutoff = now or ctx.now
        stmt = (
            sa.select(Account)
            .where(Account.status == "closing", Account.grace_period_ends_at <= cutoff)
            .order_by(Account.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        closed: List[int] = []
        for account in ctx.session.execute(stmt).scalars().all():
            account.status = "closed"
            account.closed_at = cutoff
            ctx.notify(
                account_id=account.id,
                recipient_email=account.primary_email,
                kind="account_closed",
                payload={"closed_at": cutoff},
            )
            ctx.audit(account_id=account.id, action="finalize_closure", details={"closed_at": cutoff})
            closed.append(account.id)
        return ClosuresFinalized(account_ids=tuple(closed))

    return run_operation(
        deps,
        operation="finalize_due_closures",
        idempotency_key=idempotency_key,
        actor=None,
        actor_label=FINALIZER_ACTOR,
        params={"now": now},
        body=body,
    )
