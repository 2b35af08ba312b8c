"""The transaction-and-idempotency frame every operation runs in.

:func:`run_operation` gives an operation body exactly one write transaction
and takes care of:

* **Idempotency.** The caller's key is claimed at the start by inserting an
  :class:`~accounts.models.IdempotencyRecord` (on PostgreSQL a concurrent call
  with the same key waits on the unique index, then replays). A successful
  result is stored under the key in the same transaction; a retry with the same
  key and the same operation, actor and parameters returns the stored result
  without doing anything; a retry with different ones is refused
  (:attr:`Reason.IDEMPOTENCY_KEY_REUSED`).
* **Refusals.** A body returns :class:`~accounts.results.Refused` *before*
  changing anything. The frame then releases the key (a refusal is not
  stored: a later retry is judged on the state at that time), records a
  ``refused`` audit event and commits nothing else.
* **All or nothing.** State change, audit event, outbox notification and the
  stored result commit together; any exception rolls all of them back and
  propagates to the caller (exceptions mean bugs or outages, not refusals).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Dict, Mapping, Optional

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from accounts.db import read_session, write_session
from accounts.deps import Actor, Deps
from accounts.models import Account, AuditEvent, IdempotencyRecord
from accounts.outbox import check_no_secrets
from accounts.results import Reason, Refused, Result, to_jsonable

MAX_KEY_LENGTH = 200


@dataclass
class OperationContext:
    """What an operation body works with inside its transaction.

    Attributes:
        session: The session of the one write transaction.
        now: The operation's time, read once from the injected clock.
        deps: The injected dependencies.
        operation: Operation name (audit action prefix).
        actor_label: Who acts, as written in audit events.
        idempotency_key: The caller's key.
        account_id: Account a refusal's audit event is filed under; the body
            may set it once it knows (e.g. after resolving a token).
        changed: Set by the body (via :meth:`mark_changed`) when it changed
            state even though it returns a refusal (an escalation).
    """

    session: Session
    now: datetime
    deps: Deps
    operation: str
    actor_label: str
    idempotency_key: str
    account_id: Optional[int] = None
    changed: bool = False

    def mark_changed(self) -> None:
        """Tell the frame that this transaction changed state (keep and store it)."""
        self.changed = True

    def audit(
        self,
        *,
        account_id: Optional[int],
        details: Mapping[str, Any],
        action: Optional[str] = None,
        outcome: str = "succeeded",
    ) -> None:
        """Add an audit event to the transaction.

        Args:
            account_id: Account concerned, if any.
            details: JSON facts; must not contain secrets.
            action: Action name; defaults to the operation name.
            outcome: ``succeeded`` or ``refused``.
        """
        check_no_secrets(details)
        self.session.add(
            AuditEvent(
                account_id=account_id,
                actor=self.actor_label,
                action=action or self.operation,
                outcome=outcome,
                details=_json_ready(details),
                idempotency_key=self.idempotency_key,
                at=self.now,
            )
        )

    def notify(
        self,
        *,
        account_id: Optional[int],
        recipient_email: str,
        kind: str,
        payload: Mapping[str, Any],
    ) -> None:
        """Add a customer notification through the injected outbox.

        Args:
            account_id: Account concerned, if any.
            recipient_email: Where the message goes.
            kind: Template name.
            payload: Template data (``secret_*`` keys only for must-mail links).
        """
        self.deps.outbox.add(
            self.session,
            account_id=account_id,
            recipient_email=recipient_email,
            kind=kind,
            payload=_json_ready(payload),
            created_at=self.now,
        )
        self.session.flush()


def _json_ready(data: Mapping[str, Any]) -> Dict[str, Any]:
    return dict(to_jsonable(dict(data)))


def fingerprint(operation: str, actor: Optional[Actor], params: Mapping[str, Any]) -> str:
    """Return the SHA-256 of operation, actor and parameters (canonical JSON).

    The fingerprint is stored with the idempotency key, so ``params`` never
    hold a short code, not even hashed: the SHA-256 of a 6-digit code (or of
    JSON around it) is reversed by trying the million codes. Leaving a code
    out is safe because a key names one message, and so one typed code.

    Args:
        operation: Operation name.
        actor: The acting member, if any.
        params: Parameters; no short codes; long random secrets (tokens,
            recovery codes) only as their SHA-256.

    Returns:
        64 hex characters.
    """
    payload = {
        "operation": operation,
        "actor": None if actor is None else [actor.account_id, actor.member_email.strip().lower()],
        "params": _json_ready(params),
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _replay(record: IdempotencyRecord, operation: str, request_hash: str) -> Result:
    if record.operation != operation or record.request_hash != request_hash:
        return Refused(
            reason=Reason.IDEMPOTENCY_KEY_REUSED,
            details={"operation": record.operation},
        )
    assert record.result is not None
    return Result.from_dict(record.result)


def _find_record(session: Session, key: str) -> Optional[IdempotencyRecord]:
    stmt = sa.select(IdempotencyRecord).where(IdempotencyRecord.key == key)
    return session.execute(stmt).scalar_one_or_none()


def run_operation(
    deps: Deps,
    *,
    operation: str,
    idempotency_key: str,
    actor: Optional[Actor],
    params: Mapping[str, Any],
    body: Callable[[OperationContext], Result],
    actor_label: Optional[str] = None,
    account_id: Optional[int] = None,
) -> Result:
    """Run ``body`` in one write transaction with idempotency, audit and rollback rules.

    Args:
        deps: Injected dependencies.
        operation: Operation name (``"request_closure"``...), also the audit action.
        idempotency_key: The caller's key (1-200 characters).
        actor: The verified acting member, or None (token holders, system jobs).
        params: The parameters, for the fingerprint (secrets hashed beforehand).
        body: The operation; returns a success or a :class:`Refused`.
        actor_label: Audit actor when ``actor`` is None (e.g. ``"system:scheduler"``).
        account_id: Account to file a refusal's audit event under (defaults to
            the actor's account; the body may update ``ctx.account_id``).

    Returns:
        The body's result, or the stored result of an earlier call with this key.

    Raises:
        ValueError: If the idempotency key is empty or too long.
    """
    if not idempotency_key or len(idempotency_key) > MAX_KEY_LENGTH:
        raise ValueError(f"idempotency_key must have 1-{MAX_KEY_LENGTH} characters")
    request_hash = fingerprint(operation, actor, params)
    label = actor.label() if actor is not None else (actor_label or "anonymous")
    if account_id is None and actor is not None:
        account_id = actor.account_id

    try:
        with write_session(deps.session_factory) as session:
            existing = _find_record(session, idempotency_key)
            if existing is not None:
                return _replay(existing, operation, request_hash)
            now = deps.now()
            claim = IdempotencyRecord(
                key=idempotency_key,
                operation=operation,
                request_hash=request_hash,
                result=None,
                created_at=now,
            )
            session.add(claim)
            session.flush()  # claims the key (waits for a concurrent holder on PostgreSQL)
            ctx = OperationContext(
                session=session,
                now=now,
                deps=deps,
                operation=operation,
                actor_label=label,
                idempotency_key=idempotency_key,
                account_id=account_id,
            )
            result = body(ctx)
            if isinstance(result, Refused) and not ctx.changed:
                session.delete(claim)
                ctx.audit(
                    account_id=_existing_account(session, ctx.account_id),
                    outcome="refused",
                    details={"reason": result.reason.value, "blocking": [b.value for b in result.blocking]},
                )
            else:
                claim.result = result.to_dict(include_secrets=False)
            session.flush()
            return result
    except IntegrityError:
        # Lost a race for the same key: replay the winner's result if there is one.
        with read_session(deps.session_factory) as session:
            existing = _find_record(session, idempotency_key)
            if existing is None or existing.result is None:
                raise
            return _replay(existing, operation, request_hash)


def _existing_account(session: Session, account_id: Optional[int]) -> Optional[int]:
    """Return ``account_id`` if that account exists (audit FK), else None."""
    if account_id is None:
        return None
    return account_id if session.get(Account, account_id) is not None else None
