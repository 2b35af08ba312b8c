"""Handing a case to human support.

A support request is stored *first* - before any message tells the customer
"we have passed this on" - and is idempotent by key, so a retried hand-off
never opens a second ticket. The customer (``contact_email``, else the
account's primary e-mail) gets an acknowledgement with the reference
(``SR-000042``) through the outbox.

``context`` is free JSON for the support agent (conversation id, slots,
blocking reasons...). Keys that look like secrets (``password``, ``token``,
``code``, ``secret*``...) are replaced by ``"[redacted]"`` before storing.

Anonymous visitors (no ``account_id``) open at most
``Settings.support_requests_per_sender`` (3) requests per conversation
(``context["conversation"]``), ``support_requests_per_address`` (3) per
contact address and ``support_requests_anonymous_per_hour`` (200) all
together per hour (``rate_limited``, ``retry_after_seconds``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Dict, Mapping, Optional

import sqlalchemy as sa

from accounts.db import lock_row, read_session, write_session
from accounts.deps import Actor, Deps
from accounts.models import RELEASED_BY_LENGTH, Account, AuditEvent, SupportRequest
from accounts.operation import OperationContext, run_operation
from accounts.redaction import redact_secret_keys
from accounts.results import Reason, Refused, Result, SupportRequestCreated, support_reference, to_jsonable
from accounts.security import is_valid_email, normalize_email

MAX_CHANNEL = 32
MAX_REASON = 64
MAX_SUMMARY = 5000


def open_support_request(
    ctx: OperationContext,
    *,
    account_id: Optional[int],
    channel: str,
    reason: str,
    summary: str,
    context: Mapping[str, Any],
    contact_email: Optional[str],
) -> SupportRequest:
    """Store a support request inside a running operation (no validation).

    Writes the request, an acknowledgement to ``contact_email`` (if any) and
    a ``support_request_created`` audit event, and marks the transaction changed.

    Args:
        ctx: The running operation's context.
        account_id: Account concerned, if known.
        channel: Where the customer asked (``chat``, ``email``...).
        reason: Short machine code (``business_switch_blocked``...).
        summary: Human-readable summary for the agent.
        context: JSON data for the agent (secrets redacted here).
        contact_email: Address for the acknowledgement.

    Returns:
        The flushed :class:`SupportRequest`.
    """
    request = SupportRequest(
        account_id=account_id,
        channel=channel,
        reason=reason,
        summary=summary,
        context=to_jsonable(redact_secret_keys(context)),
        contact_email=contact_email,
        status="open",
        created_at=ctx.now,
    )
    ctx.session.add(request)
    ctx.session.flush()
    reference = support_reference(request.id)
    if contact_email:
        ctx.notify(
            account_id=account_id,
            recipient_email=contact_email,
            kind="support_request_received",
            payload={"reference": reference, "reason": reason},
        )
    ctx.audit(
        account_id=account_id,
        action="support_request_created",
        details={"support_request_id": request.id, "reference": reference, "channel": channel, "reason": reason},
    )
    ctx.mark_changed()
    return request


def _anonymous_limit(ctx: OperationContext, conversation: Any, address: Optional[str]) -> Optional[Refused]:
    """Refuse an anonymous request beyond the hourly limits (per conversation, per address, overall)."""
    settings = ctx.deps.settings
    since = ctx.now - timedelta(hours=1)
    recent = ctx.session.execute(
        sa.select(SupportRequest.created_at, SupportRequest.context, SupportRequest.contact_email)
        .where(SupportRequest.account_id.is_(None), SupportRequest.created_at > since)
        .order_by(SupportRequest.created_at)
    ).all()
    checks = [(list(recent), settings.support_requests_anonymous_per_hour)]
    if conversation:
        checks.append(([r for r in recent if (r.context or {}).get("conversation") == conversation],
                       settings.support_requests_per_sender))
    if address:
        checks.append(([r for r in recent if r.contact_email == address], settings.support_requests_per_address))
    wait = 0
    for rows, limit in checks:
        if len(rows) >= limit:
            frees_at: datetime = rows[len(rows) - limit].created_at + timedelta(hours=1)
            wait = max(wait, int((frees_at - ctx.now).total_seconds() + 0.999))
    if wait:
        return Refused(reason=Reason.RATE_LIMITED, details={"retry_after_seconds": max(1, wait)})
    return None


def create_support_request(
    deps: Deps,
    *,
    account_id: Optional[int],
    channel: str,
    reason: str,
    summary: str,
    idempotency_key: str,
    context: Optional[Mapping[str, Any]] = None,
    contact_email: Optional[str] = None,
    actor: Optional[Actor] = None,
) -> Result:
    """Store a support request (idempotent by key) and acknowledge it.

    Args:
        deps: Injected dependencies.
        account_id: Account concerned, or None when the customer is unverified.
        channel: Where the customer asked (``chat``, ``email``, ``web``...).
        reason: Short machine code, e.g. ``lost_tfa_device``.
        summary: Human-readable summary for the agent.
        idempotency_key: Caller's key.
        context: JSON data for the agent (secret-looking keys are redacted).
        contact_email: Address for the acknowledgement (default: account's
            primary e-mail).
        actor: The verified member asking, if any (for the audit log).

    Returns:
        :class:`SupportRequestCreated`, or :class:`Refused` with reason
        ``invalid_request`` (details: ``field``), ``invalid_email``,
        ``account_not_found`` or ``rate_limited`` (anonymous requests;
        ``retry_after_seconds``).
    """
    channel = channel.strip().lower()
    reason = reason.strip()
    summary = summary.strip()
    address = normalize_email(contact_email) if contact_email else None
    data = dict(context or {})

    def body(ctx: OperationContext) -> Result:
        for name, value, limit in (
            ("channel", channel, MAX_CHANNEL),
            ("reason", reason, MAX_REASON),
            ("summary", summary, MAX_SUMMARY),
        ):
            if not value or len(value) > limit:
                return Refused(reason=Reason.INVALID_REQUEST, details={"field": name, "max_length": limit})
        try:
            json.dumps(to_jsonable(data))
        except (TypeError, ValueError):
            return Refused(reason=Reason.INVALID_REQUEST, details={"field": "context"})
        if address is not None and not is_valid_email(address):
            return Refused(reason=Reason.INVALID_EMAIL, details={"email": address})
        recipient = address
        if account_id is not None:
            account = ctx.session.get(Account, account_id)
            if account is None:
                return Refused(reason=Reason.ACCOUNT_NOT_FOUND, details={"account_id": account_id})
            recipient = recipient or account.primary_email
        else:
            refused = _anonymous_limit(ctx, data.get("conversation"), address)
            if refused:
                return refused
        request = open_support_request(
            ctx,
            account_id=account_id,
            channel=channel,
            reason=reason,
            summary=summary,
            context=data,
            contact_email=recipient,
        )
        return SupportRequestCreated(support_request_id=request.id, reference=support_reference(request.id))

    return run_operation(
        deps,
        operation="create_support_request",
        idempotency_key=idempotency_key,
        actor=actor,
        actor_label="customer" if account_id is not None else "anonymous",
        account_id=account_id,
        params={
            "account_id": account_id,
            "channel": channel,
            "reason": reason,
            "summary": summary,
            "context": redact_secret_keys(data),
            "contact_email": address,
        },
        body=body,
    )


# --------------------------------------------------------------------------- release

#: ``SR-000042`` (our reference, the Zendesk ``external_id``) or a bare id.
REFERENCE_RE = re.compile(r"^(?:SR-)?0*(\d{1,12})$", re.IGNORECASE)


class UnknownSupportRequest(LookupError):
    """No support request has this id or reference (nothing was changed)."""


@dataclass(frozen=True)
class HandoffRelease:
    """A conversation given back to the assistant.

    Attributes:
        support_request_id: The request.
        reference: Its ``SR-...`` reference.
        released_at: When it was first released.
        released_by: Who released it first (``helpdesk``, ``console:<email>``).
        already_released: True when an earlier call had released it (nothing changed now).
        status: The request's status afterwards (``resolved`` when the helpdesk solved it).
    """

    support_request_id: int
    reference: str
    released_at: datetime
    released_by: str
    already_released: bool
    status: str


def parse_reference(value: Any) -> Optional[int]:
    """The support request id of ``42``, ``"42"`` or ``"SR-000042"``; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    match = REFERENCE_RE.match(str(value).strip()) if isinstance(value, str) else None
    return int(match.group(1)) if match and int(match.group(1)) > 0 else None


def release_support_request(deps: Deps, request_id: int, *, released_by: str, resolve: bool = False,
                            via: str = "console") -> HandoffRelease:
    """Give the paused conversation of support request ``request_id`` back to the assistant.

    Idempotent: the first call sets ``released_at``/``released_by`` and writes a
    ``support_request_released`` audit event; later calls change nothing (except
    ``resolve``, which still marks the request resolved) and report
    ``already_released``. The assistant notices the release on the customer's
    next message (:func:`supportbot.handoff_thread.handoff_released`).

    Args:
        deps: Session factory and clock.
        request_id: The support request.
        released_by: Who releases it, for the audit log (``helpdesk``,
            ``console:lead@example.com``); cut to 100 characters.
        resolve: Also mark the request ``resolved`` (the helpdesk solved the ticket).
        via: How it was released (``helpdesk_webhook``, ``console``), for the audit log.

    Returns:
        The :class:`HandoffRelease`.

    Raises:
        UnknownSupportRequest: No such request.
    """
    who = (released_by or "unknown").strip()[:RELEASED_BY_LENGTH]
    with write_session(deps.session_factory) as session:
        request = lock_row(session, SupportRequest, request_id)
        if request is None:
            raise UnknownSupportRequest(f"support request {request_id} not found")
        already = request.released_at is not None
        now = deps.now()
        if resolve and request.status != "resolved":
            request.status = "resolved"
        if not already:
            request.released_at, request.released_by = now, who
            session.add(AuditEvent(
                account_id=request.account_id, actor=who, action="support_request_released",
                outcome="succeeded", at=now,
                details={"support_request_id": request.id, "reference": support_reference(request.id),
                         "via": via, "resolved": bool(resolve)},
            ))
        return HandoffRelease(
            support_request_id=request.id, reference=support_reference(request.id),
            released_at=request.released_at, released_by=request.released_by or who,
            already_released=already, status=request.status,
        )


def is_released(deps: Deps, request_id: int) -> bool:
    """Whether support request ``request_id`` was released (False when it does not exist)."""
    with read_session(deps.session_factory) as session:
        released_at = session.execute(
            sa.select(SupportRequest.released_at).where(SupportRequest.id == request_id)
        ).scalar_one_or_none()
    return released_at is not None
