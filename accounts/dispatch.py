"""Delivery of outbox notifications: claim, send, record, retry with backoff.

:func:`dispatch_pending` sends the *due* notifications, oldest first. A row is
due while ``sent_at`` and ``failed_at`` are empty and ``next_attempt_at`` is
empty or has passed. Each row gets its own write transaction:

1. **claim** the oldest due row: ``SELECT ... FOR UPDATE SKIP LOCKED`` on
   PostgreSQL, so concurrent dispatchers never hold the same row (one takes
   the next free one instead of waiting); on SQLite the write transaction
   (``BEGIN IMMEDIATE``) already serialises dispatchers. The row stays locked
   while it is sent.
2. **send** it through the injected :class:`~accounts.mail.Mailer`.
3. **record** the outcome in the same transaction and commit:

   * accepted: ``sent_at``;
   * a failure: ``attempts + 1``, ``last_error`` (the server's short answer,
     scrubbed of the payload's secrets, never the body) and ``next_attempt_at``
     after an exponential backoff (:class:`RetryPolicy`: 30 s, doubling,
     capped at 1 h);
   * a permanent rejection (5xx for this message), or a temporary one (4xx)
     when ``attempts`` reaches ``max_attempts`` (10): ``failed_at``, so the row
     stops retrying and stays in the table, with ``last_error``, for staff
     (:func:`failed_notifications`, :func:`requeue_failed`).

   When the server cannot be used at all (refused, timed out, TLS or login
   failure) the row is rescheduled as above but **never** given up, and the
   rest of the batch is left for the next round instead of waiting for one
   timeout per row: nothing is lost however long the server is down.

No secret at rest: the transaction that sets ``sent_at`` or ``failed_at``
also removes the payload's ``secret_*`` fields (codes, tokens inside links:
:func:`accounts.outbox.redact_payload`), so after delivery the account
database holds no code or token in clear. A notification requeued after
that goes out without them (the templates then say the code or link is
missing and to ask for a new one). :func:`purge_old_notifications` deletes
sent and given-up rows older than ``Settings.outbox_retention_days`` (30);
a scheduler calls it (``python -m accounts purge-outbox``).

Delivery guarantee: a row is marked sent only in the transaction that sent
it, and never claimed by two dispatchers at once, so each successful delivery
happens once. The one edge is *at least once*: if the process dies (or the
database fails) after the SMTP server accepted a message but before the commit,
the row is still pending and is sent again. Both copies carry the same
``Message-ID`` (``<outbox-{id}@{domain}>``), so receivers and staff can detect
the duplicate.

Every failure is logged (row id, kind, attempt, error), never a secret value
or the body. On SQLite the database write lock is held while a message is
sent (bounded by the SMTP timeout): fine for development, use PostgreSQL with
several processes.
"""

from __future__ import annotations

import logging
import threading
import traceback
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, List, Optional, Sequence, Tuple

import sqlalchemy as sa
from sqlalchemy.orm import Session

from accounts.db import read_session, write_session
from accounts.deps import Deps
from accounts.mail import Mailer, MailError, compose, secret_values
from accounts.redaction import mask_known_secrets
from accounts.models import OUTBOX_ERROR_LENGTH, OutboxNotification
from accounts.outbox import SECRET_PREFIX, redact_payload
from accounts.worker import run_rounds

logger = logging.getLogger("accounts.dispatch")

DEFAULT_BATCH = 50
DEFAULT_INTERVAL_SECONDS = 2.0


@dataclass(frozen=True)
class RetryPolicy:
    """When to retry a failed notification and when to give up.

    Attributes:
        first_delay: Wait after the first failure.
        max_delay: Longest wait between two attempts.
        max_attempts: Attempts after which a temporary (4xx) failure becomes final.
    """

    first_delay: timedelta = timedelta(seconds=30)
    max_delay: timedelta = timedelta(hours=1)
    max_attempts: int = 10

    def delay(self, attempts: int) -> timedelta:
        """Return the wait after the ``attempts``-th failure (30 s, 60 s, 120 s ... 1 h)."""
        exponent = max(0, min(attempts - 1, 30))
        return min(self.first_delay * (2**exponent), self.max_delay)


DEFAULT_POLICY = RetryPolicy()


@dataclass(frozen=True)
class DispatchReport:
    """What one :func:`dispatch_pending` call did.

    Attributes:
        sent: Ids of the rows delivered.
        retrying: Ids of the rows that failed and are scheduled again.
        failed: Ids of the rows given up (``failed_at`` set).
        server_unavailable: The mail server could not be used; the batch stopped early.
    """

    sent: Tuple[int, ...] = ()
    retrying: Tuple[int, ...] = ()
    failed: Tuple[int, ...] = ()
    server_unavailable: bool = False

    @property
    def handled(self) -> int:
        """Number of rows attempted."""
        return len(self.sent) + len(self.retrying) + len(self.failed)

    def summary(self) -> str:
        """One line for people: counts of sent, retrying and failed rows."""
        text = f"sent {len(self.sent)}, retrying {len(self.retrying)}, failed {len(self.failed)}"
        return text + (" (mail server unavailable)" if self.server_unavailable else "")


def _due(now: datetime) -> List[sa.sql.ColumnElement]:
    n = OutboxNotification
    return [
        n.sent_at.is_(None),
        n.failed_at.is_(None),
        sa.or_(n.next_attempt_at.is_(None), n.next_attempt_at <= now),
    ]


def _claim(session: Session, now: datetime) -> Optional[OutboxNotification]:
    stmt = (
        sa.select(OutboxNotification)
        .where(*_due(now))
        .order_by(OutboxNotification.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    return session.execute(stmt).scalar_one_or_none()


def _unexpected(exc: BaseException, secrets: Sequence[str]) -> str:
    """Describe a non-MailError exception (a bug or an odd library error), scrubbed."""
    return mask_known_secrets(f"{type(exc).__name__}: {exc}", secrets)[:300]


def forget_secrets(row: OutboxNotification) -> None:
    """Drop the ``secret_*`` payload fields of a row that will not be sent again (in its transaction)."""
    payload = row.payload or {}
    if any(key.startswith(SECRET_PREFIX) for key in payload):
        row.payload = redact_payload(payload)


def _attempt(row: OutboxNotification, mailer: Mailer, at: datetime) -> Optional[Tuple[str, bool, bool]]:
    """Build and send one row's message; None when accepted, else (error, permanent, server down)."""
    secrets = secret_values(row.payload)
    try:
        message = compose(row.id, row.kind, row.recipient_email, row.payload, sender=mailer.sender, date=at)
    except Exception as exc:  # noqa: BLE001 - e.g. a malformed address: retrying cannot help
        return "cannot build the message: " + _unexpected(exc, secrets), True, False
    try:
        mailer.send(message)
    except MailError as exc:
        return mask_known_secrets(str(exc), secrets), exc.permanent, exc.server_unavailable
    except Exception as exc:  # noqa: BLE001 - a bug or an odd library error: recorded, logged, retried
        logger.error(
            "outbox %s (%s): unexpected error while sending:\n%s", row.id, row.kind,
            mask_known_secrets("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)), secrets),
        )
        return _unexpected(exc, secrets), False, False
    return None


def dispatch_pending(
    deps: Deps,
    mailer: Mailer,
    *,
    batch: int = DEFAULT_BATCH,
    now: Optional[datetime] = None,
    policy: RetryPolicy = DEFAULT_POLICY,
    should_stop: Optional[Callable[[], bool]] = None,
) -> DispatchReport:
    """Send up to ``batch`` due notifications, oldest first, each in its own transaction.

    Args:
        deps: Gives the session factory and the clock.
        mailer: Sends one message or raises :class:`~accounts.mail.MailError`.
        batch: Most rows to handle in this call.
        now: Time to use for the whole call (default: ``deps.clock`` per row).
        policy: Backoff and give-up rules.
        should_stop: Checked before each row; True ends the call early (shutdown).

    Returns:
        A :class:`DispatchReport`. Failures are recorded on the rows and logged, not raised;
        database errors propagate.
    """
    sent: List[int] = []
    retrying: List[int] = []
    failed: List[int] = []
    unavailable = False
    for _ in range(max(0, batch)):
        if should_stop is not None and should_stop():
            break
        at = now or deps.now()
        server_down = False
        with write_session(deps.session_factory) as session:
            row = _claim(session, at)
            if row is None:
                break
            failure = _attempt(row, mailer, at)
            if failure is None:
                row.sent_at = at
                forget_secrets(row)
                sent.append(row.id)
                logger.info("outbox %s (%s): sent%s", row.id, row.kind,
                            f" after {row.attempts} failed attempt(s)" if row.attempts else "")
                continue
            error, permanent, server_down = failure
            row.attempts = (row.attempts or 0) + 1
            row.last_error = error[:OUTBOX_ERROR_LENGTH]
            give_up = permanent or (row.attempts >= policy.max_attempts and not server_down)
            if give_up:
                row.failed_at = at
                row.next_attempt_at = None
                forget_secrets(row)
                failed.append(row.id)
                logger.error("outbox %s (%s): giving up after attempt %d: %s",
                             row.id, row.kind, row.attempts, error)
            else:
                row.next_attempt_at = at + policy.delay(row.attempts)
                retrying.append(row.id)
                logger.warning("outbox %s (%s): attempt %d failed, next at %s: %s",
                               row.id, row.kind, row.attempts, row.next_attempt_at.isoformat(), error)
        if server_down:
            unavailable = True
            break
    return DispatchReport(sent=tuple(sent), retrying=tuple(retrying), failed=tuple(failed),
                          server_unavailable=unavailable)


def run_loop(
    deps: Deps,
    mailer: Mailer,
    *,
    stop: threading.Event,
    interval: float = DEFAULT_INTERVAL_SECONDS,
    batch: int = DEFAULT_BATCH,
    policy: RetryPolicy = DEFAULT_POLICY,
) -> None:
    """Dispatch until ``stop`` is set (the loop of :func:`accounts.worker.run_rounds`).

    Args:
        deps: Session factory and clock.
        mailer: The mailer.
        stop: Set it (e.g. from a signal handler) to end the loop after the current row.
        interval: Seconds between rounds when idle.
        batch: Rows per round.
        policy: Backoff and give-up rules.
    """
    logger.info("dispatcher started (every %g s, %s)", interval, type(mailer).__name__)
    run_rounds(
        "dispatcher",
        lambda: dispatch_pending(deps, mailer, batch=batch, policy=policy, should_stop=stop.is_set),
        DispatchReport, stop=stop, interval=interval, batch=batch,
        peer_unavailable=lambda report: report.server_unavailable, log=logger,
    )


@dataclass(frozen=True)
class FailedNotification:
    """A notification given up, for staff: no payload, so no secrets."""

    id: int
    kind: str
    recipient_email: str
    attempts: int
    last_error: Optional[str]
    created_at: datetime
    failed_at: datetime


def failed_notifications(deps: Deps, *, limit: int = 100) -> List[FailedNotification]:
    """Return the most recently given-up notifications, newest first.

    Args:
        deps: Gives the session factory.
        limit: Most rows to return.

    Returns:
        The failed rows, without their payloads.
    """
    n = OutboxNotification
    with read_session(deps.session_factory) as session:
        rows = session.execute(
            sa.select(n.id, n.kind, n.recipient_email, n.attempts, n.last_error, n.created_at, n.failed_at)
            .where(n.failed_at.is_not(None))
            .order_by(n.failed_at.desc(), n.id.desc())
            .limit(limit)
        ).all()
    return [FailedNotification(*row) for row in rows]


def requeue_failed(deps: Deps, ids: Sequence[int], *, now: Optional[datetime] = None) -> int:
    """Put given-up notifications back in the queue (after staff fixed the cause).

    Attempts restart at zero; ``last_error`` is kept until the next attempt.

    Args:
        deps: Gives the session factory and the clock.
        ids: Rows to requeue (only failed, unsent ones change).
        now: When they become due (default: now).

    Returns:
        The number of rows requeued.
    """
    if not ids:
        return 0
    n = OutboxNotification
    with write_session(deps.session_factory) as session:
        result = session.execute(
            sa.update(n)
            .where(n.id.in_(list(ids)), n.failed_at.is_not(None), n.sent_at.is_(None))
            .values(failed_at=None, attempts=0, next_attempt_at=now or deps.now())
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount or 0)


def purge_old_notifications(deps: Deps, *, now: Optional[datetime] = None,
                            retention_days: Optional[int] = None) -> int:
    """Delete sent and given-up notifications older than the retention period (a scheduler's job).

    Pending rows stay, however old: they are still to be delivered.

    Args:
        deps: Gives the session factory, the clock and ``settings.outbox_retention_days``.
        now: The time to count from (default: the clock).
        retention_days: Override of ``deps.settings.outbox_retention_days``.

    Returns:
        The number of rows deleted.
    """
    days = deps.settings.outbox_retention_days if retention_days is None else retention_days
    if days <= 0:
        raise ValueError("retention_days must be positive")
    cutoff = (now or deps.now()) - timedelta(days=days)
    n = OutboxNotification
    with write_session(deps.session_factory) as session:
        result = session.execute(
            sa.delete(n).where(sa.or_(n.sent_at < cutoff, n.failed_at < cutoff))
            .execution_options(synchronize_session=False)
        )
        purged = int(result.rowcount or 0)
    logger.info("outbox: purged %d notification(s) sent or given up before %s", purged, cutoff.isoformat())
    return purged


__all__ = [
    "DEFAULT_POLICY",
    "DispatchReport",
    "FailedNotification",
    "RetryPolicy",
    "dispatch_pending",
    "failed_notifications",
    "forget_secrets",
    "purge_old_notifications",
    "requeue_failed",
    "run_loop",
]
