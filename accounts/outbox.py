"""Customer notifications, written to the outbox in the operation's own transaction.

An operation never sends e-mail itself: it adds an
:class:`~accounts.models.OutboxNotification` row next to its state change, so
either both are committed or neither is. The dispatcher
(:mod:`accounts.dispatch`, rendering and mailers in :mod:`accounts.mail`)
sends pending rows and sets ``sent_at``, retrying failures with backoff.

Payload rules:

* Payloads carry what the message needs, not secrets. The only exception is a
  value that *must* be e-mailed (a password-reset or invitation link). Such
  keys start with :data:`SECRET_PREFIX` (``secret_link``) so a log redactor or
  the dispatcher's logging can drop them with :func:`redact_payload`.
* Audit events never carry secrets at all (see :func:`check_no_secrets`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping, Optional, Protocol

from sqlalchemy.orm import Session

from accounts.models import OutboxNotification
# The secret-key rules and the safe-to-log payload live with the other redaction rules.
from accounts.redaction import FORBIDDEN_KEYS, SECRET_PREFIX, redact_payload  # noqa: F401 - re-exported


def check_no_secrets(data: Mapping[str, Any], *, allow_secret_prefix: bool = False) -> None:
    """Refuse mappings whose keys look like raw secrets (a guard against mistakes).

    Args:
        data: Audit details or an outbox payload (checked recursively).
        allow_secret_prefix: Whether ``secret_*`` keys are allowed (outbox only).

    Raises:
        ValueError: If a forbidden key is present.
    """
    for key, value in data.items():
        lowered = key.lower()
        if lowered in FORBIDDEN_KEYS or (
            lowered.startswith(SECRET_PREFIX) and not allow_secret_prefix
        ):
            raise ValueError(f"refusing to store a secret-looking field {key!r}")
        if isinstance(value, Mapping):
            check_no_secrets(value, allow_secret_prefix=allow_secret_prefix)


class Outbox(Protocol):
    """Writes one notification inside the caller's transaction."""

    def add(
        self,
        session: Session,
        *,
        account_id: Optional[int],
        recipient_email: str,
        kind: str,
        payload: Mapping[str, Any],
        created_at: datetime,
    ) -> None:
        """Add a notification to the session (flushing is the caller's business)."""


class DbOutbox:
    """The default outbox: an ``outbox_notifications`` row in the same transaction."""

    def add(
        self,
        session: Session,
        *,
        account_id: Optional[int],
        recipient_email: str,
        kind: str,
        payload: Mapping[str, Any],
        created_at: datetime,
    ) -> None:
        """Add an :class:`OutboxNotification` row.

        Args:
            session: The operation's session.
            account_id: Account concerned, if any.
            recipient_email: Where the message goes.
            kind: Template name, e.g. ``"closure_requested"``.
            payload: Template data (``secret_*`` keys for must-mail secrets only).
            created_at: The operation's time.
        """
        check_no_secrets(payload, allow_secret_prefix=True)
        session.add(
            OutboxNotification(
                account_id=account_id,
                recipient_email=recipient_email,
                kind=kind,
                payload=dict(payload),
                created_at=created_at,
            )
        )
