"""Step-up: a fresh second factor before a sensitive operation.

The sensitive operations are :data:`OPERATIONS`: ``close_account``
(:func:`accounts.closing.request_closure`), ``change_currency``,
``disable_member``, ``switch_to_business`` and ``invite_member`` (inviting
an owner or an admin).

1. :func:`start_step_up` tells the dialogue which factor to ask for: the
   acting member's authenticator app (``totp``) when their TFA enrolment is
   enabled, otherwise a 6-digit code it has just e-mailed to the member's own
   address (``email_code``, bound to that operation, valid 10 minutes).
2. :func:`verify_step_up` checks the code (see :mod:`accounts.codes`: TOTP
   within ±1 step, each step once; e-mailed codes single use; failure
   counter with growing delays) and stores a :class:`~accounts.models.StepUpGrant`
   for that member and that operation, valid ``Settings.step_up_ttl_minutes``
   (5). The grant is bound to the conversation that proved the factor
   (``conversation_id``) and to a SHA-256 of the operation's parameters
   (:func:`params_digest`: which currency, which user, which role); issuing
   it ends the member's older open grants.
3. The operation uses the grant up, once: inside its own transaction with
   :func:`consume_grant` (``require_step_up=True`` on the sensitive
   operations; always for an owner or admin invitation), or on its own with
   :func:`consume_step_up`. A grant for one operation never authorises
   another, another member, another account, another conversation or other
   parameters; a used or expired grant authorises nothing
   (``step_up_required``).

The verdict is the grant in the database, never a word in the chat: the
dialogue only forwards what the customer typed.

A TFA recovery revokes the member's open grants (they may come from the lost
device).
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any, Mapping, Optional, Union

import sqlalchemy as sa

from accounts import codes
from accounts.db import read_session
from accounts.deps import Actor, Deps
from accounts.guards import find_member, load_locked_account
from accounts.models import STEP_UP_OPERATIONS, Member, StepUpGrant, TfaEnrolment
from accounts.operation import OperationContext, run_operation
from accounts.results import (
    Reason,
    Refused,
    Result,
    StepUpConsumed,
    StepUpGranted,
    StepUpStarted,
)

#: Operations that need a step-up grant.
OPERATIONS = STEP_UP_OPERATIONS
PURPOSE = "step_up"


def params_digest(params: Optional[Mapping[str, Any]]) -> str:
    """SHA-256 of an operation's bound parameters, insensitive to case and spacing.

    The dialogue (at verification) and the operation (at consumption) pass
    the same values, possibly spelled differently (``usd`` / ``USD``).

    Args:
        params: Parameter name -> value (None: no parameters).

    Returns:
        64 hex characters.
    """
    canonical = {str(k): " ".join(str(v).split()).casefold() if v is not None else None
                 for k, v in (params or {}).items()}
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _same(column: Any, value: Optional[str]) -> Any:
    return column.is_(None) if value is None else column == value


def _unsupported(operation: str) -> Optional[Refused]:
    if operation not in OPERATIONS:
        return Refused(reason=Reason.UNSUPPORTED_OPERATION, details={"operation": operation,
                                                                     "supported": list(OPERATIONS)})
    return None


def _active_member(ctx: OperationContext, actor: Actor) -> Union[Member, Refused]:
    account = load_locked_account(ctx.session, actor.account_id)
    if isinstance(account, Refused):
        return account
    if account.status == "closed":
        return Refused(reason=Reason.ACCOUNT_CLOSED)
    member = find_member(ctx.session, actor.account_id, actor.member_email)
    if member is None or member.status != "active":
        return Refused(reason=Reason.NOT_PERMITTED, details={"required_roles": [], "role": None})
    return member


def enabled_enrolment(ctx: OperationContext, member_id: int) -> Optional[TfaEnrolment]:
    """Return the member's enabled TFA enrolment (locked), if any."""
    return ctx.session.execute(
        sa.select(TfaEnrolment)
        .where(TfaEnrolment.member_id == member_id, TfaEnrolment.enabled.is_(True))
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def start_step_up(deps: Deps, actor: Actor, operation: str, *, idempotency_key: str) -> Result:
    """Begin a step-up for ``operation``: say which factor to ask for, e-mailing a code if needed.

    Args:
        deps: Injected dependencies.
        actor: The verified acting member.
        operation: One of :data:`OPERATIONS`.
        idempotency_key: Caller's key.

    Returns:
        :class:`StepUpStarted` (``method`` ``totp`` or ``email_code``), or
        :class:`Refused` with ``unsupported_operation``, ``account_not_found``,
        ``account_closed``, ``not_permitted`` or ``rate_limited``
        (``retry_after_seconds``: too many codes e-mailed recently for this
        operation; each operation has its own ``code_send_limit``).
    """

    def body(ctx: OperationContext) -> Result:
        refused = _unsupported(operation)
        if refused:
            return refused
        member = _active_member(ctx, actor)
        if isinstance(member, Refused):
            return member
        if enabled_enrolment(ctx, member.id) is not None:
            ctx.audit(account_id=actor.account_id, action="step_up_started",
                      details={"operation": operation, "method": "totp", "member_email": member.email})
            return StepUpStarted(operation=operation, method="totp")
        if not codes.send_allowed(ctx, actor.account_id, PURPOSE, operation):
            return Refused(reason=Reason.RATE_LIMITED, details={
                "retry_after_seconds": codes.next_send_in_seconds(ctx, actor.account_id, PURPOSE,
                                                                  operation)})
        codes.issue_email_code(
            ctx, account_id=actor.account_id, member_id=member.id, recipient_email=member.email,
            purpose=PURPOSE, operation=operation,
        )
        ctx.audit(account_id=actor.account_id, action="step_up_started",
                  details={"operation": operation, "method": "email_code", "member_email": member.email})
        return StepUpStarted(operation=operation, method="email_code",
                             expires_in_minutes=deps.settings.code_ttl_minutes)

    return run_operation(
        deps, operation="start_step_up", idempotency_key=idempotency_key, actor=actor,
        params={"operation": operation}, body=body,
    )


def verify_step_up(
    deps: Deps, actor: Actor, operation: str, code: str, *, idempotency_key: str,
    conversation_id: Optional[str] = None, params: Optional[Mapping[str, Any]] = None,
) -> Result:
    """Check the second factor for ``operation`` and grant it once, for minutes.

    The factor is the one :func:`start_step_up` named at the time of this call:
    the authenticator app if the member's TFA is enabled, else the newest
    e-mailed code for this very operation.

    Args:
        deps: Injected dependencies.
        actor: The verified acting member.
        operation: One of :data:`OPERATIONS`.
        code: As typed by the customer (spaces ignored).
        idempotency_key: Caller's key.
        conversation_id: The conversation the code was typed in; only it can use the grant.
        params: The operation's bound parameters (see :func:`params_digest`).

    Returns:
        :class:`StepUpGranted`, or :class:`Refused` with ``code_invalid``
        (details: ``attempts_left`` for e-mailed codes, ``retry_after_seconds``
        once delays apply), ``code_used`` (TOTP step already accepted),
        ``code_expired``, ``no_code_pending``, ``too_many_attempts``
        (``retry_after_seconds``), ``unsupported_operation``,
        ``account_not_found``, ``account_closed`` or ``not_permitted``.
    """

    def body(ctx: OperationContext) -> Result:
        refused = _unsupported(operation)
        if refused:
            return refused
        member = _active_member(ctx, actor)
        if isinstance(member, Refused):
            return member
        enrolment = enabled_enrolment(ctx, member.id)
        if enrolment is not None:
            method = "totp"
            refused = codes.throttle(ctx, actor.account_id, "totp") or codes.verify_totp(
                ctx, enrolment, code, account_id=actor.account_id)
        else:
            method = "email_code"
            refused = codes.throttle(ctx, actor.account_id, "email_code")
            if refused is None:
                row = codes.pending_code(ctx, purpose=PURPOSE, account_id=actor.account_id,
                                         member_id=member.id, operation=operation)
                refused = codes.check_email_code(ctx, row, code, account_id=actor.account_id)
        if refused:
            return refused
        ended = revoke_open_grants(ctx, account_id=actor.account_id, member_id=member.id)
        expires_at = ctx.now + timedelta(minutes=deps.settings.step_up_ttl_minutes)
        grant = StepUpGrant(account_id=actor.account_id, member_id=member.id, operation=operation,
                            authenticator=method, created_at=ctx.now, expires_at=expires_at,
                            conversation_id=conversation_id, params_sha256=params_digest(params))
        ctx.session.add(grant)
        ctx.session.flush()
        ctx.audit(account_id=actor.account_id, action="step_up_granted",
                  details={"operation": operation, "method": method, "grant_id": grant.id,
                           "member_email": member.email, "expires_at": expires_at,
                           "older_grants_ended": ended})
        return StepUpGranted(operation=operation, grant_id=grant.id, expires_at=expires_at)

    return run_operation(
        deps, operation="verify_step_up", idempotency_key=idempotency_key, actor=actor,
        params={"operation": operation, "conversation_id": conversation_id,
                "params_sha256": params_digest(params)}, body=body,  # never the code: see fingerprint()
    )


def _open_grant(ctx: OperationContext, member_id: int, account_id: int, operation: str, *,
                conversation_id: Optional[str], params: Optional[Mapping[str, Any]]) -> Optional[StepUpGrant]:
    return ctx.session.execute(
        sa.select(StepUpGrant)
        .where(
            StepUpGrant.account_id == account_id,
            StepUpGrant.member_id == member_id,
            StepUpGrant.operation == operation,
            StepUpGrant.consumed_at.is_(None),
            StepUpGrant.expires_at > ctx.now,
            _same(StepUpGrant.conversation_id, conversation_id),
            StepUpGrant.params_sha256 == params_digest(params),
        )
        .order_by(StepUpGrant.id)
        .limit(1)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def consume_grant(ctx: OperationContext, actor: Actor, operation: str, *,
                  conversation_id: Optional[str] = None,
                  params: Optional[Mapping[str, Any]] = None) -> Optional[Refused]:
    """Use up the actor's grant for ``operation`` inside a running operation.

    Call it as the *last* check of an operation body, right before its state
    change, so a refusal for another reason keeps the grant; the consumption
    then commits (or rolls back) with the change itself.

    Args:
        ctx: The running operation (account row locked).
        actor: The verified acting member.
        operation: One of :data:`OPERATIONS`.
        conversation_id: The conversation asking (must be the grant's).
        params: The operation's bound parameters (must hash to the grant's).

    Returns:
        None if a grant was consumed, else ``Refused(step_up_required)``
        (details: ``operation``).
    """
    member = find_member(ctx.session, actor.account_id, actor.member_email)
    grant = None if member is None else _open_grant(ctx, member.id, actor.account_id, operation,
                                                    conversation_id=conversation_id, params=params)
    if grant is None:
        return Refused(reason=Reason.STEP_UP_REQUIRED, details={"operation": operation})
    grant.consumed_at = ctx.now
    ctx.session.flush()
    ctx.audit(account_id=actor.account_id, action="step_up_consumed",
              details={"operation": operation, "grant_id": grant.id, "by": ctx.operation})
    return None


def consume_step_up(deps: Deps, actor: Actor, operation: str, *, idempotency_key: str,
                    conversation_id: Optional[str] = None, params: Optional[Mapping[str, Any]] = None) -> Result:
    """Use up the actor's grant for ``operation`` in its own transaction.

    Prefer ``require_step_up=True`` on the operation itself (the grant then
    goes with the change). This stand-alone form is for callers that do the
    sensitive work elsewhere.

    Args:
        deps: Injected dependencies.
        actor: The verified acting member.
        operation: One of :data:`OPERATIONS`.
        idempotency_key: Caller's key.
        conversation_id: The conversation asking (must be the grant's).
        params: The operation's bound parameters.

    Returns:
        :class:`StepUpConsumed`, or :class:`Refused` with ``step_up_required``,
        ``unsupported_operation``, ``account_not_found``, ``account_closed`` or
        ``not_permitted``.
    """

    def body(ctx: OperationContext) -> Result:
        refused = _unsupported(operation)
        if refused:
            return refused
        member = _active_member(ctx, actor)
        if isinstance(member, Refused):
            return member
        grant = _open_grant(ctx, member.id, actor.account_id, operation,
                            conversation_id=conversation_id, params=params)
        if grant is None:
            return Refused(reason=Reason.STEP_UP_REQUIRED, details={"operation": operation})
        grant.consumed_at = ctx.now
        ctx.audit(account_id=actor.account_id, action="step_up_consumed",
                  details={"operation": operation, "grant_id": grant.id, "by": "consume_step_up"})
        return StepUpConsumed(operation=operation, grant_id=grant.id)

    return run_operation(
        deps, operation="consume_step_up", idempotency_key=idempotency_key, actor=actor,
        params={"operation": operation, "conversation_id": conversation_id,
                "params_sha256": params_digest(params)}, body=body,
    )


def has_step_up(deps: Deps, actor: Actor, operation: str, *, conversation_id: Optional[str] = None,
                params: Optional[Mapping[str, Any]] = None, bound: bool = False) -> bool:
    """Whether the actor holds an unused, unexpired grant for ``operation`` (read-only).

    Lets the dialogue skip asking for a code it already has; the operation
    still checks and consumes the grant itself.

    Args:
        deps: Injected dependencies.
        actor: The verified acting member.
        operation: Operation name.
        conversation_id: With ``bound``: the conversation that must hold the grant.
        params: With ``bound``: the operation's values the grant must be for.
        bound: Only count a grant that :func:`consume_grant` would accept for
            ``conversation_id`` and ``params``.

    Returns:
        True if a grant is open.
    """
    now = deps.now()
    with read_session(deps.session_factory) as session:
        member = find_member(session, actor.account_id, actor.member_email, lock=False)
        if member is None or member.status != "active":
            return False
        found = session.execute(
            sa.select(StepUpGrant.id).where(
                StepUpGrant.account_id == actor.account_id,
                StepUpGrant.member_id == member.id,
                StepUpGrant.operation == operation,
                StepUpGrant.consumed_at.is_(None),
                StepUpGrant.expires_at > now,
                *((_same(StepUpGrant.conversation_id, conversation_id),
                   StepUpGrant.params_sha256 == params_digest(params)) if bound else ()),
            ).limit(1)
        ).first()
        return found is not None


def revoke_open_grants(ctx: OperationContext, *, account_id: int, member_id: Optional[int] = None) -> int:
    """End the open grants of a member (or of the whole account) now; return how many.

    Args:
        ctx: The running operation.
        account_id: The account.
        member_id: The member, or None for every member.

    Returns:
        Number of grants ended.
    """
    where = [StepUpGrant.account_id == account_id, StepUpGrant.consumed_at.is_(None),
             StepUpGrant.expires_at > ctx.now]
    if member_id is not None:
        where.append(StepUpGrant.member_id == member_id)
    grants = list(ctx.session.execute(sa.select(StepUpGrant).where(*where).with_for_update()).scalars())
    for grant in grants:
        grant.expires_at = ctx.now
    return len(grants)
