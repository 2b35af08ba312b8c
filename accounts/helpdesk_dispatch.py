"""Delivery of support requests (and their later messages) to the helpdesk.

A support request is stored first (:mod:`accounts.support_requests`) with
``delivery_status = 'pending'``; :func:`deliver_pending` then hands it to the
helpdesk, the same way :mod:`accounts.dispatch` e-mails the outbox:

1. **claim** the oldest due request (pending, ``next_attempt_at`` empty or
   passed) in its own write transaction: ``FOR UPDATE SKIP LOCKED`` on
   PostgreSQL, so several deliverers never hold the same row; the
   ``BEGIN IMMEDIATE`` write lock on SQLite.
2. **send** it through the injected :class:`~accounts.helpdesk.HelpdeskClient`
   with ``Idempotency-Key: support-request-<id>``.
3. **record** the outcome and commit:

   * a ticket (2xx with an id, or 409 "already have it"): ``delivered``,
     ``delivered_at``, ``helpdesk_ticket_id``, ``helpdesk_url``;
   * unavailable (connection error, timeout, 408, 429, 5xx): ``attempts + 1``,
     ``last_error``, ``next_attempt_at`` after 30 s, doubling, at most 1 h
     (:class:`accounts.dispatch.RetryPolicy`). Never given up, and the rest
     of the round waits for the next one: nothing is lost while the helpdesk
     is down;
   * rejected (another 4xx, a malformed 2xx body): ``failed`` with
     ``last_error``, visible to staff (:func:`failed_support_requests`,
     :func:`support_request_status`) until :func:`requeue_support_requests`.

Then the pending **messages** of delivered requests (customer and assistant
messages stored with :func:`append_message` while the bot is paused) are
appended to their tickets the same way, oldest first and in order per request
(a message waits while an earlier one of the same request is pending), with
``Idempotency-Key: support-request-<id>-message-<message id>``.

Guarantee: a request is marked delivered only in the transaction that sent
it, and no two deliverers hold it at once. If the answer is lost (timeout,
crash before the commit), the retry carries the same idempotency key, so a
helpdesk that honours it (the generic API must; Zendesk does for ticket
creation) returns the existing ticket instead of creating another, and the
Zendesk adapter also finds it by ``external_id`` on a 409.

No HTTP call happens while nothing is due. With no helpdesk configured
(``HELPDESK_URL`` unset) requests simply stay pending and visible;
:func:`run_loop` logs that once.
"""

from __future__ import annotations

import logging
import threading
import traceback
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, List, Optional, Sequence, Tuple

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased

from accounts.db import read_session, write_session
from accounts.deps import Deps
from accounts.dispatch import DEFAULT_POLICY, RetryPolicy
from accounts.worker import run_rounds
from accounts.helpdesk import HelpdeskClient, HelpdeskError, TicketComment, TicketRequest, transcript_of
from accounts.models import MESSAGE_AUTHORS, OUTBOX_ERROR_LENGTH, SupportRequest, SupportRequestMessage
from accounts.results import support_reference

logger = logging.getLogger("accounts.helpdesk")

DEFAULT_BATCH = 50
DEFAULT_INTERVAL_SECONDS = 5.0
MAX_MESSAGE_TEXT = 5000


@dataclass(frozen=True)
class DeliveryReport:
    """What one :func:`deliver_pending` call did (ids of support requests and of messages).

    Attributes:
        delivered: Requests now delivered.
        retrying: Requests that failed and are scheduled again.
        failed: Requests rejected (``failed``).
        messages_delivered: Messages appended to their tickets.
        messages_retrying: Messages scheduled again.
        messages_failed: Messages rejected.
        helpdesk_unavailable: The helpdesk was down; the round stopped early.
    """

    delivered: Tuple[int, ...] = ()
    retrying: Tuple[int, ...] = ()
    failed: Tuple[int, ...] = ()
    messages_delivered: Tuple[int, ...] = ()
    messages_retrying: Tuple[int, ...] = ()
    messages_failed: Tuple[int, ...] = ()
    helpdesk_unavailable: bool = False

    @property
    def handled(self) -> int:
        """Number of rows attempted."""
        return sum(len(x) for x in (self.delivered, self.retrying, self.failed, self.messages_delivered,
                                    self.messages_retrying, self.messages_failed))

    def summary(self) -> str:
        """One line for people."""
        text = (f"delivered {len(self.delivered)}, retrying {len(self.retrying)}, failed {len(self.failed)}; "
                f"messages delivered {len(self.messages_delivered)}, retrying {len(self.messages_retrying)}, "
                f"failed {len(self.messages_failed)}")
        return text + (" (helpdesk unavailable)" if self.helpdesk_unavailable else "")


def _due(column: sa.Column, now: datetime) -> sa.sql.ColumnElement:
    return sa.or_(column.is_(None), column <= now)


def _claim_request(session: Session, now: datetime) -> Optional[SupportRequest]:
    r = SupportRequest
    stmt = (
        sa.select(r)
        .where(r.delivery_status == "pending", _due(r.next_attempt_at, now))
        .order_by(r.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    return session.execute(stmt).scalar_one_or_none()


def _claim_message(session: Session, now: datetime) -> Optional[Tuple[SupportRequestMessage, str]]:
    m, r = SupportRequestMessage, SupportRequest
    earlier = aliased(SupportRequestMessage)
    waiting = (
        sa.select(earlier.id)
        .where(earlier.support_request_id == m.support_request_id, earlier.id < m.id,
               earlier.delivered_at.is_(None), earlier.failed_at.is_(None))
        .exists()
    )
    stmt = (
        sa.select(m, r.helpdesk_ticket_id)
        .join(r, r.id == m.support_request_id)
        .where(m.delivered_at.is_(None), m.failed_at.is_(None), _due(m.next_attempt_at, now),
               r.delivery_status == "delivered", r.helpdesk_ticket_id.is_not(None), ~waiting)
        .order_by(m.id)
        .limit(1)
        .with_for_update(skip_locked=True, of=m)
        .execution_options(populate_existing=True)
    )
    row = session.execute(stmt).first()
    return (row[0], row[1]) if row else None


def ticket_request(row: SupportRequest) -> TicketRequest:
    """The :class:`TicketRequest` of a stored support request."""
    return TicketRequest(
        support_request_id=row.id,
        reference=support_reference(row.id),
        reason=row.reason,
        summary=row.summary,
        channel=row.channel,
        account_id=row.account_id,
        email=row.contact_email,
        transcript=tuple(transcript_of(row.context)),
        created_at=row.created_at,
    )


def _failure(what: str, call: Callable[[], object]) -> Tuple[object, Optional[Tuple[str, bool]]]:
    """Run ``call``; return (its result, None) or (None, (error, retry))."""
    try:
        return call(), None
    except HelpdeskError as exc:
        return None, (str(exc), exc.retry)
    except Exception as exc:  # noqa: BLE001 - a bug or an odd library error: recorded, logged, retried
        logger.error("%s: unexpected error:\n%s", what,
                     "".join(traceback.format_exception_only(type(exc), exc)).strip()[:300])
        return None, (f"unexpected {type(exc).__name__}", True)


def _record_failure(row: object, label: str, error: str, retry: bool, at: datetime, policy: RetryPolicy,
                    give_up: Callable[[], None]) -> bool:
    """Count a failed attempt on ``row``; return True when it was given up."""
    row.attempts = (row.attempts or 0) + 1  # type: ignore[attr-defined]
    row.last_error = error[:OUTBOX_ERROR_LENGTH]  # type: ignore[attr-defined]
    if not retry:
        row.next_attempt_at = None  # type: ignore[attr-defined]
        give_up()
        logger.error("%s: rejected by the helpdesk on attempt %d: %s", label, row.attempts, error)  # type: ignore[attr-defined]
        return True
    row.next_attempt_at = at + policy.delay(row.attempts)  # type: ignore[attr-defined]
    logger.warning("%s: attempt %d failed, next at %s: %s", label, row.attempts,  # type: ignore[attr-defined]
                   row.next_attempt_at.isoformat(), error)  # type: ignore[attr-defined]
    return False


def deliver_pending(
    deps: Deps,
    client: HelpdeskClient,
    *,
    batch: int = DEFAULT_BATCH,
    now: Optional[datetime] = None,
    policy: RetryPolicy = DEFAULT_POLICY,
    should_stop: Optional[Callable[[], bool]] = None,
) -> DeliveryReport:
    """Deliver up to ``batch`` due support requests, then due messages, each in its own transaction.

    Args:
        deps: Session factory and clock.
        client: The helpdesk adapter.
        batch: Most rows (requests + messages) to handle in this call.
        now: Time for the whole call (default: ``deps.now()`` per row).
        policy: Backoff (30 s doubling, 1 h cap).
        should_stop: Checked before each row; True ends the call early.

    Returns:
        A :class:`DeliveryReport`. Helpdesk failures are recorded and logged, never raised;
        database errors propagate.
    """
    out: dict = {k: [] for k in ("delivered", "retrying", "failed", "messages_delivered",
                                 "messages_retrying", "messages_failed")}
    unavailable = False
    budget = max(0, batch)
    stage = "requests"
    while budget > 0 and not unavailable:
        if should_stop is not None and should_stop():
            break
        at = now or deps.now()
        with write_session(deps.session_factory) as session:
            if stage == "requests":
                row = _claim_request(session, at)
                if row is None:
                    stage = "messages"
                    continue
                budget -= 1
                label = f"support request {row.id} ({support_reference(row.id)})"
                ticket, failure = _failure(label, lambda: client.create_ticket(ticket_request(row)))
                if failure is None:
                    row.delivery_status, row.delivered_at = "delivered", at
                    row.helpdesk_ticket_id, row.helpdesk_url = ticket.ticket_id, ticket.url  # type: ignore[attr-defined]
                    row.next_attempt_at = None
                    out["delivered"].append(row.id)
                    logger.info("%s: delivered as %s ticket %s%s", label, client.kind, row.helpdesk_ticket_id,
                                " (already there)" if ticket.duplicate else "")  # type: ignore[attr-defined]
                    continue
                error, retry = failure

                def give_up(r: SupportRequest = row) -> None:
                    r.delivery_status = "failed"

                if _record_failure(row, label, error, retry, at, policy, give_up):
                    out["failed"].append(row.id)
                else:
                    out["retrying"].append(row.id)
                    unavailable = True
            else:
                claimed = _claim_message(session, at)
                if claimed is None:
                    break
                budget -= 1
                message, ticket_id = claimed
                label = f"support request {message.support_request_id} message {message.id}"
                comment = TicketComment(
                    support_request_id=message.support_request_id, message_id=message.id,
                    reference=support_reference(message.support_request_id), ticket_id=ticket_id,
                    author=message.author, text=message.text, created_at=message.created_at,
                )
                _, failure = _failure(label, lambda: client.add_comment(comment))
                if failure is None:
                    message.delivered_at = at
                    message.next_attempt_at = None
                    out["messages_delivered"].append(message.id)
                    logger.info("%s: appended to ticket %s", label, ticket_id)
                    continue
                error, retry = failure

                def give_up_message(m: SupportRequestMessage = message) -> None:
                    m.failed_at = at

                if _record_failure(message, label, error, retry, at, policy, give_up_message):
                    out["messages_failed"].append(message.id)
                else:
                    out["messages_retrying"].append(message.id)
                    unavailable = True
    return DeliveryReport(**{k: tuple(v) for k, v in out.items()}, helpdesk_unavailable=unavailable)


def run_loop(
    deps: Deps,
    client: Optional[HelpdeskClient],
    *,
    stop: threading.Event,
    interval: float = DEFAULT_INTERVAL_SECONDS,
    batch: int = DEFAULT_BATCH,
    policy: RetryPolicy = DEFAULT_POLICY,
) -> None:
    """Deliver until ``stop`` is set, waiting ``interval`` seconds when idle.

    With ``client`` None (no helpdesk configured) nothing is sent: the
    requests stay pending and visible; this is logged once and the loop
    just waits for ``stop`` (so the runner keeps its other processes).
    A failed round (database down) is logged and retried after the interval.
    """
    if client is None:
        logger.warning("no helpdesk configured (HELPDESK_URL): support requests stay pending until one is")
        stop.wait()
        return
    logger.info("helpdesk delivery started (%s, every %g s)", client.kind, interval)
    run_rounds(
        "helpdesk delivery",
        lambda: deliver_pending(deps, client, batch=batch, policy=policy, should_stop=stop.is_set),
        DeliveryReport, stop=stop, interval=interval, batch=batch,
        peer_unavailable=lambda report: report.helpdesk_unavailable, log=logger,
    )


# --------------------------------------------------------------------------- thread and staff views


def append_message(deps: Deps, *, support_request_id: int, author: str, text: str,
                   now: Optional[datetime] = None) -> int:
    """Store one message of a handed-over conversation; customer/assistant ones get delivered.

    Args:
        deps: Session factory and clock.
        support_request_id: The request the conversation belongs to.
        author: ``customer``, ``assistant`` or ``agent`` (an agent's message came
            from the helpdesk and is stored as delivered).
        text: The message, already redacted by the caller (cut to 5000 characters).
        now: Time of the message (default: the clock).

    Returns:
        The message id.

    Raises:
        ValueError: Unknown author or empty text.
        LookupError: No such support request.
    """
    if author not in MESSAGE_AUTHORS:
        raise ValueError(f"author must be one of {', '.join(MESSAGE_AUTHORS)}")
    text = (text or "").strip()[:MAX_MESSAGE_TEXT]
    if not text:
        raise ValueError("empty message")
    at = now or deps.now()
    with write_session(deps.session_factory) as session:
        if session.get(SupportRequest, support_request_id) is None:
            raise LookupError(f"support request {support_request_id} not found")
        message = SupportRequestMessage(support_request_id=support_request_id, author=author, text=text,
                                        created_at=at, delivered_at=at if author == "agent" else None)
        session.add(message)
        session.flush()
        return message.id


@dataclass(frozen=True)
class SupportRequestDelivery:
    """Where a support request stands, for support leads (no transcript, no context)."""

    id: int
    reference: str
    status: str
    reason: str
    channel: str
    created_at: datetime
    delivery_status: str
    attempts: int
    next_attempt_at: Optional[datetime]
    last_error: Optional[str]
    delivered_at: Optional[datetime]
    helpdesk_ticket_id: Optional[str]
    helpdesk_url: Optional[str]
    messages_pending: int
    messages_failed: int
    released_at: Optional[datetime] = None
    released_by: Optional[str] = None
    conversation: Optional[str] = None


def _conversation_of(r: type) -> sa.sql.ColumnElement:
    """The conversation (tracker sender id) stored in a request's context by the assistant."""
    return r.context["conversation"].as_string()  # type: ignore[attr-defined]


def _deliveries(session: Session, *where: sa.sql.ColumnElement, limit: int = 100) -> List[SupportRequestDelivery]:
    r, m = SupportRequest, SupportRequestMessage
    pending = (sa.select(sa.func.count(m.id))
               .where(m.support_request_id == r.id, m.delivered_at.is_(None), m.failed_at.is_(None))
               .scalar_subquery())
    failed = (sa.select(sa.func.count(m.id))
              .where(m.support_request_id == r.id, m.failed_at.is_not(None)).scalar_subquery())
    rows = session.execute(
        sa.select(r.id, r.status, r.reason, r.channel, r.created_at, r.delivery_status, r.attempts,
                  r.next_attempt_at, r.last_error, r.delivered_at, r.helpdesk_ticket_id, r.helpdesk_url,
                  pending, failed, r.released_at, r.released_by, _conversation_of(r))
        .where(*where).order_by(r.id.desc()).limit(limit)
    ).all()
    return [SupportRequestDelivery(row[0], support_reference(row[0]), *row[1:]) for row in rows]


def list_support_requests(deps: Deps, *, delivery_status: Optional[str] = None,
                          conversation: Optional[str] = None, limit: int = 100) -> List[SupportRequestDelivery]:
    """Support requests for support leads, newest first.

    Args:
        deps: Session factory.
        delivery_status: Only ``pending``, ``delivered`` or ``failed`` ones (None: all).
        conversation: Only those of this conversation (the tracker's sender id).
        limit: At most this many.
    """
    r = SupportRequest
    where = []
    if delivery_status is not None:
        where.append(r.delivery_status == delivery_status)
    if conversation is not None:
        where.append(_conversation_of(r) == conversation)
    with read_session(deps.session_factory) as session:
        return _deliveries(session, *where, limit=limit)


def support_request_status(deps: Deps, request_id: int) -> Optional[SupportRequestDelivery]:
    """Delivery state of one support request (None if it does not exist)."""
    with read_session(deps.session_factory) as session:
        found = _deliveries(session, SupportRequest.id == request_id, limit=1)
    return found[0] if found else None


def failed_support_requests(deps: Deps, *, limit: int = 100) -> List[SupportRequestDelivery]:
    """Requests the helpdesk rejected, or with a rejected message; newest first."""
    r, m = SupportRequest, SupportRequestMessage
    message_failed = sa.select(m.id).where(m.support_request_id == r.id, m.failed_at.is_not(None)).exists()
    with read_session(deps.session_factory) as session:
        return _deliveries(session, sa.or_(r.delivery_status == "failed", message_failed), limit=limit)


def requeue_support_requests(deps: Deps, ids: Sequence[int], *, now: Optional[datetime] = None) -> int:
    """Put rejected requests, and the rejected messages of these requests, back in the queue.

    Attempts restart at zero; ``last_error`` stays until the next attempt.

    Returns:
        The number of rows (requests + messages) requeued.
    """
    if not ids:
        return 0
    at = now or deps.now()
    r, m = SupportRequest, SupportRequestMessage
    with write_session(deps.session_factory) as session:
        requests_done = session.execute(
            sa.update(r).where(r.id.in_(list(ids)), r.delivery_status == "failed")
            .values(delivery_status="pending", attempts=0, next_attempt_at=at)
            .execution_options(synchronize_session=False)
        ).rowcount
        messages_done = session.execute(
            sa.update(m).where(m.support_request_id.in_(list(ids)), m.failed_at.is_not(None),
                               m.delivered_at.is_(None))
            .values(failed_at=None, attempts=0, next_attempt_at=at)
            .execution_options(synchronize_session=False)
        ).rowcount
    return int(requests_done or 0) + int(messages_done or 0)


__all__ = [
    "DeliveryReport",
    "SupportRequestDelivery",
    "append_message",
    "deliver_pending",
    "failed_support_requests",
    "list_support_requests",
    "requeue_support_requests",
    "run_loop",
    "support_request_status",
    "ticket_request",
]
