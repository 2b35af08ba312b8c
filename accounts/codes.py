"""Second factors inside an operation's transaction: e-mailed codes, TOTP, the failure counter.

The capability modules (:mod:`accounts.step_up`, :mod:`accounts.channel_links`,
:mod:`accounts.tfa_recovery`) call these helpers from their operation bodies,
after locking the account row, so every check and every count happens in the
one write transaction of :func:`accounts.operation.run_operation`, together
with its audit events and outbox notifications.

Rules (NIST SP 800-63B-4 section 3.1.3/3.1.7, OWASP MFA cheat sheet):

* **E-mailed one-time codes** (:func:`issue_email_code`, :func:`check_email_code`):
  6 random digits from the injected ``deps.codes``; only a salted SHA-256
  hash is stored; valid ``Settings.code_ttl_minutes`` (10); single use; a new
  code for the same subject (account, member, purpose, operation, chat
  identity) voids the older ones; ``Settings.code_max_attempts`` (5) wrong
  entries void a code. The raw code goes only into the outbox payload under
  ``secret_code`` (kind ``verification_code``). Hashes are compared with
  :func:`hmac.compare_digest`. At most ``Settings.code_send_limit`` (3) codes
  are e-mailed per account and purpose within one code lifetime
  (:func:`send_allowed`), against mail flooding.
* **TOTP** (:func:`verify_totp`): RFC 6238 via pyotp (SHA-1, 6 digits, 30 s);
  the current step and one step either side are accepted (``valid_window=1``),
  two steps off are refused. The accepted step is written by an atomic
  compare-and-set, ``UPDATE tfa_enrolments SET last_accepted_step = :step
  WHERE id = :id AND (last_accepted_step IS NULL OR last_accepted_step <
  :step)``, and succeeds only if one row changed: a step (and any older one)
  is accepted once, however many requests race with the same code. A replay
  is refused with ``code_used`` and is not counted as a guess.
* **Failure counter** (:func:`throttle`, :func:`record_failure`,
  :func:`record_success`): consecutive failures per account and
  authenticator (``totp``, ``email_code``, ``recovery_code``,
  ``tfa_enrollment``). From the ``failure_threshold``-th (5th) failure on,
  the next attempt must wait ``base * 2 ** (failures - threshold)`` seconds
  (30 s, 60 s, 120 s ... capped at ``failure_max_delay_seconds``, 1 h); an
  attempt before that time is refused with ``too_many_attempts`` (details:
  ``retry_after_seconds``) without looking at the code. Only a success resets
  the count; sending a new code does not. The count is per account, so
  someone who can submit codes for an account can slow its owner down, but
  never lock them out for more than the cap.
* **Failures per source** (:func:`source_throttle`, :func:`record_source_failure`):
  codes typed by someone who is not yet anybody (a chat identity confirming
  a channel link) are counted on that source's own row, with the same
  delays, and on one global row per kind of source: at most
  ``Settings.link_failure_global_cap`` (300) failures per
  ``link_failure_window_minutes`` (60) from all sources together, after
  which every source waits for the next window. They never touch the
  account's counters, so a stranger can never slow down or lock out the
  owner's own step-up or recovery.

A failed attempt is a refusal that *changed* state (the counts): the helpers
mark the transaction changed and write the ``refused`` audit event
themselves (:func:`refuse_and_keep`), so the count is committed.

Nothing here logs; audit details carry ids, purposes and counts, never codes.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Mapping, Optional, Tuple

import pyotp
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from accounts.models import SourceFailure, TfaEnrolment, VerificationCode, VerificationFailure
from accounts.operation import OperationContext
from accounts.results import Reason, Refused
from accounts.security import normalize_code, salted_hash, same_secret

#: Outbox kind of an e-mailed one-time code (payload: secret_code, purpose, expires_in_minutes).
CODE_MAIL_KIND = "verification_code"
#: Seconds per TOTP step and how many steps either side are accepted.
TOTP_INTERVAL = 30
TOTP_VALID_WINDOW = 1
TOTP_DIGITS = 6
MIN_CODE_DIGITS = 6


# --------------------------------------------------------------------------- refusals


def refuse_and_keep(
    ctx: OperationContext,
    refused: Refused,
    *,
    account_id: Optional[int],
    details: Optional[Mapping[str, Any]] = None,
) -> Refused:
    """Return ``refused`` but keep this transaction's changes (failure counts) and audit it.

    Args:
        ctx: The running operation.
        refused: The refusal to return.
        account_id: Account of the audit event.
        details: Extra audit facts (no secrets).

    Returns:
        ``refused``.
    """
    ctx.mark_changed()
    ctx.audit(
        account_id=account_id,
        outcome="refused",
        details={"reason": refused.reason.value, **dict(details or {})},
    )
    return refused


# --------------------------------------------------------------------------- failure counter


def _counter(ctx: OperationContext, account_id: int, authenticator: str) -> Optional[VerificationFailure]:
    stmt = (
        sa.select(VerificationFailure)
        .where(VerificationFailure.account_id == account_id, VerificationFailure.authenticator == authenticator)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return ctx.session.execute(stmt).scalar_one_or_none()


def retry_after_seconds(now: datetime, next_allowed_at: Optional[datetime]) -> int:
    """Return whole seconds until ``next_allowed_at`` (0 if it passed)."""
    if next_allowed_at is None or next_allowed_at <= now:
        return 0
    return max(1, int((next_allowed_at - now).total_seconds() + 0.999))


def throttle(ctx: OperationContext, account_id: int, *authenticators: str) -> Optional[Refused]:
    """Refuse if any of these authenticators of the account must still wait.

    Call it after locking the account row, before looking at the code.

    Args:
        ctx: The running operation.
        account_id: The account.
        *authenticators: Kinds to check (``totp``, ``email_code``...).

    Returns:
        ``Refused(too_many_attempts)`` with ``retry_after_seconds`` (the
        longest wait), or None.
    """
    wait = 0
    for kind in authenticators:
        row = _counter(ctx, account_id, kind)
        if row is not None:
            wait = max(wait, retry_after_seconds(ctx.now, row.next_allowed_at))
    if wait:
        return Refused(reason=Reason.TOO_MANY_ATTEMPTS, details={"retry_after_seconds": wait})
    return None


def delay_after(failures: int, threshold: int, base_seconds: int, max_seconds: int) -> int:
    """Return the wait in seconds after ``failures`` consecutive failures (0 below the threshold).

    Args:
        failures: Consecutive failures so far.
        threshold: Failures before delays start.
        base_seconds: First delay.
        max_seconds: Cap.

    Returns:
        Seconds to wait before the next attempt.
    """
    if failures < threshold:
        return 0
    return min(max_seconds, base_seconds * 2 ** min(failures - threshold, 30))


def record_failure(ctx: OperationContext, account_id: int, authenticator: str) -> VerificationFailure:
    """Count one failure of an authenticator and set when the next attempt is allowed.

    Args:
        ctx: The running operation (account row already locked).
        account_id: The account.
        authenticator: Kind.

    Returns:
        The updated counter row.
    """
    settings = ctx.deps.settings
    row = _counter(ctx, account_id, authenticator)
    if row is None:
        row = VerificationFailure(account_id=account_id, authenticator=authenticator, failures=0)
        ctx.session.add(row)
    row.failures = (row.failures or 0) + 1
    row.last_failure_at = ctx.now
    wait = delay_after(
        row.failures, settings.failure_threshold, settings.failure_base_delay_seconds,
        settings.failure_max_delay_seconds,
    )
    row.next_allowed_at = ctx.now + timedelta(seconds=wait) if wait else None
    ctx.session.flush()
    return row


def record_success(ctx: OperationContext, account_id: int, authenticator: str) -> None:
    """Reset the failure count of an authenticator after a successful check.

    Args:
        ctx: The running operation.
        account_id: The account.
        authenticator: Kind.
    """
    row = _counter(ctx, account_id, authenticator)
    if row is not None and (row.failures or row.next_allowed_at is not None):
        row.failures = 0
        row.next_allowed_at = None
        ctx.session.flush()


def _source_row(ctx: OperationContext, source: str, *, create: bool) -> Optional[SourceFailure]:
    row = ctx.session.execute(
        sa.select(SourceFailure).where(SourceFailure.source == source).with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if row is None and create:
        try:
            with ctx.session.begin_nested():  # a concurrent first failure may insert it first
                ctx.session.add(SourceFailure(source=source, failures=0))
        except IntegrityError:
            pass
        row = _source_row(ctx, source, create=False)
    return row


def global_source(source: str) -> str:
    """The global counter of a source's kind: ``channel_link:telegram:ab12...`` -> ``channel_link:*``."""
    return source.split(":", 1)[0] + ":*"


def source_throttle(ctx: OperationContext, source: str) -> Optional[Refused]:
    """Refuse if this source, or all sources of its kind together, must still wait.

    Args:
        ctx: The running operation.
        source: ``<kind>:<channel>:<sha256 of the channel's user id>``.

    Returns:
        ``Refused(too_many_attempts)`` with ``retry_after_seconds``, or None.
    """
    wait = 0
    for key in (source, global_source(source)):
        row = _source_row(ctx, key, create=False)
        if row is not None:
            wait = max(wait, retry_after_seconds(ctx.now, row.next_allowed_at))
    if wait:
        return Refused(reason=Reason.TOO_MANY_ATTEMPTS, details={"retry_after_seconds": wait})
    return None


def record_source_failure(ctx: OperationContext, source: str) -> SourceFailure:
    """Count one wrong code of a source (growing delays) and of all sources (windowed cap).

    Args:
        ctx: The running operation.
        source: As for :func:`source_throttle`.

    Returns:
        The source's updated row.
    """
    settings = ctx.deps.settings
    row = _source_row(ctx, source, create=True)
    row.failures = (row.failures or 0) + 1
    row.last_failure_at = ctx.now
    wait = delay_after(row.failures, settings.failure_threshold, settings.failure_base_delay_seconds,
                       settings.failure_max_delay_seconds)
    row.next_allowed_at = ctx.now + timedelta(seconds=wait) if wait else None
    overall = _source_row(ctx, global_source(source), create=True)
    window = timedelta(minutes=settings.link_failure_window_minutes)
    if overall.window_started_at is None or ctx.now >= overall.window_started_at + window:
        overall.window_started_at, overall.failures, overall.next_allowed_at = ctx.now, 0, None
    overall.failures += 1
    overall.last_failure_at = ctx.now
    if overall.failures >= settings.link_failure_global_cap:
        overall.next_allowed_at = overall.window_started_at + window
    ctx.session.flush()
    return row


def record_source_success(ctx: OperationContext, source: str) -> None:
    """Reset a source's own count after a right code (the global window runs on)."""
    row = _source_row(ctx, source, create=False)
    if row is not None and (row.failures or row.next_allowed_at is not None):
        row.failures, row.next_allowed_at = 0, None
        ctx.session.flush()


def failure_refusal(ctx: OperationContext, reason: Reason, counter: Any,
                    **details: Any) -> Refused:
    """Build the refusal of a wrong code, telling when the next attempt is allowed.

    Args:
        ctx: The running operation.
        reason: ``code_invalid`` normally.
        counter: The counter just incremented.
        **details: Further JSON facts for the caller.

    Returns:
        The refusal (``retry_after_seconds`` set once delays apply).
    """
    wait = retry_after_seconds(ctx.now, counter.next_allowed_at)
    if wait:
        details["retry_after_seconds"] = wait
    return Refused(reason=reason, details=details)


# --------------------------------------------------------------------------- e-mailed codes


def _subject_filter(
    *, account_id: int, member_id: int, purpose: str, operation: Optional[str],
    channel: Optional[str], channel_user_id: Optional[str],
) -> Tuple[Any, ...]:
    def same(column: Any, value: Optional[str]) -> Any:
        return column.is_(None) if value is None else column == value

    return (
        VerificationCode.account_id == account_id,
        VerificationCode.member_id == member_id,
        VerificationCode.purpose == purpose,
        same(VerificationCode.operation, operation),
        same(VerificationCode.channel, channel),
        same(VerificationCode.channel_user_id, channel_user_id),
    )


def _counted(account_id: int, purpose: str, operation: Optional[str], since: datetime) -> list:
    conditions = [VerificationCode.account_id == account_id, VerificationCode.purpose == purpose,
                  VerificationCode.created_at > since]
    if operation is not None:
        conditions.append(VerificationCode.operation == operation)
    return conditions


def send_allowed(ctx: OperationContext, account_id: int, purpose: str,
                 operation: Optional[str] = None) -> bool:
    """Whether another code of this purpose may be e-mailed for the account now.

    Args:
        ctx: The running operation (account row locked).
        account_id: The account.
        purpose: Code purpose.
        operation: Count only the codes for this operation (step-up codes: the
            limit is per operation, so one operation's codes never block another).

    Returns:
        False once ``code_send_limit`` codes were sent within one code lifetime.
    """
    settings = ctx.deps.settings
    since = ctx.now - timedelta(minutes=settings.code_ttl_minutes)
    sent = ctx.session.execute(
        sa.select(sa.func.count())
        .select_from(VerificationCode)
        .where(*_counted(account_id, purpose, operation, since))
    ).scalar_one()
    return int(sent) < settings.code_send_limit


def next_send_in_seconds(ctx: OperationContext, account_id: int, purpose: str,
                         operation: Optional[str] = None) -> int:
    """Seconds until :func:`send_allowed` becomes true again (for ``rate_limited`` refusals)."""
    settings = ctx.deps.settings
    since = ctx.now - timedelta(minutes=settings.code_ttl_minutes)
    times = list(
        ctx.session.execute(
            sa.select(VerificationCode.created_at)
            .where(*_counted(account_id, purpose, operation, since))
            .order_by(VerificationCode.created_at.desc())
        ).scalars()
    )
    if len(times) < settings.code_send_limit:
        return 0
    oldest_counted = times[settings.code_send_limit - 1]
    return retry_after_seconds(ctx.now, oldest_counted + timedelta(minutes=settings.code_ttl_minutes))


def issue_email_code(
    ctx: OperationContext,
    *,
    account_id: int,
    member_id: int,
    recipient_email: str,
    purpose: str,
    operation: Optional[str] = None,
    channel: Optional[str] = None,
    channel_user_id: Optional[str] = None,
) -> VerificationCode:
    """Create a one-time code, void older ones of the same subject and e-mail it via the outbox.

    Writes the ``verification_code`` notification (``secret_code``,
    ``purpose``, ``expires_in_minutes``) and a ``verification_code_sent``
    audit event (code id, purpose, no code).

    Args:
        ctx: The running operation (account row locked).
        account_id: Account the code belongs to.
        member_id: Member who may use it.
        recipient_email: Where it is sent.
        purpose: ``channel_link``, ``step_up`` or ``tfa_recovery``.
        operation: The one operation a step-up code authorises.
        channel: Chat channel of a link request.
        channel_user_id: The channel's user id of a link request.

    Returns:
        The flushed row.

    Raises:
        ValueError: If the injected generator returns fewer than 6 digits.
    """
    settings = ctx.deps.settings
    code = normalize_code(ctx.deps.codes())
    if not code.isdigit() or len(code) < MIN_CODE_DIGITS:
        raise ValueError("one-time codes must have at least 6 digits")
    subject = _subject_filter(
        account_id=account_id, member_id=member_id, purpose=purpose, operation=operation,
        channel=channel, channel_user_id=channel_user_id,
    )
    older = ctx.session.execute(
        sa.select(VerificationCode)
        .where(*subject, VerificationCode.used_at.is_(None), VerificationCode.revoked_at.is_(None))
        .with_for_update()
    ).scalars()
    for row in older:
        row.revoked_at = ctx.now
    salt = ctx.deps.tokens()[:32]
    expires_at = ctx.now + timedelta(minutes=settings.code_ttl_minutes)
    row = VerificationCode(
        account_id=account_id,
        member_id=member_id,
        purpose=purpose,
        operation=operation,
        channel=channel,
        channel_user_id=channel_user_id,
        recipient_email=recipient_email,
        code_salt=salt,
        code_hash=salted_hash(salt, code),
        attempts=0,
        created_at=ctx.now,
        expires_at=expires_at,
    )
    ctx.session.add(row)
    ctx.session.flush()
    ctx.notify(
        account_id=account_id,
        recipient_email=recipient_email,
        kind=CODE_MAIL_KIND,
        payload={
            "secret_code": code,
            "purpose": purpose,
            "expires_in_minutes": settings.code_ttl_minutes,
        },
    )
    ctx.audit(
        account_id=account_id,
        action="verification_code_sent",
        details={
            "verification_code_id": row.id,
            "purpose": purpose,
            "operation": operation,
            "channel": channel,
            "recipient_email": recipient_email,
            "expires_at": expires_at,
        },
    )
    return row


def pending_code(
    ctx: OperationContext,
    *,
    purpose: str,
    account_id: Optional[int] = None,
    member_id: Optional[int] = None,
    operation: Optional[str] = None,
    channel: Optional[str] = None,
    channel_user_id: Optional[str] = None,
    lock: bool = True,
) -> Optional[VerificationCode]:
    """Return the newest unused, unvoided code of a subject (locked), expired or not.

    Args:
        ctx: The running operation.
        purpose: Code purpose.
        account_id: Account (None: any, for a channel-link lookup).
        member_id: Member (None: any).
        operation: Bound operation (step-up), matched exactly when given.
        channel: Chat channel (channel links).
        channel_user_id: Channel's user id (channel links).
        lock: Lock the row ``FOR UPDATE`` (False only to find the account to lock first).

    Returns:
        The code row or None.
    """
    where = [
        VerificationCode.purpose == purpose,
        VerificationCode.used_at.is_(None),
        VerificationCode.revoked_at.is_(None),
    ]
    if account_id is not None:
        where.append(VerificationCode.account_id == account_id)
    if member_id is not None:
        where.append(VerificationCode.member_id == member_id)
    if operation is not None:
        where.append(VerificationCode.operation == operation)
    if channel is not None:
        where.append(VerificationCode.channel == channel)
        where.append(VerificationCode.channel_user_id == channel_user_id)
    stmt = (
        sa.select(VerificationCode)
        .where(*where)
        .order_by(VerificationCode.created_at.desc(), VerificationCode.id.desc())
        .limit(1)
        .execution_options(populate_existing=True)
    )
    if lock:
        stmt = stmt.with_for_update()
    return ctx.session.execute(stmt).scalar_one_or_none()


def code_matches(row: VerificationCode, code: str) -> bool:
    """Compare a typed code with a stored one in constant time (no state change)."""
    return same_secret(row.code_hash, salted_hash(row.code_salt, normalize_code(code)))


def check_email_code(
    ctx: OperationContext, row: Optional[VerificationCode], code: str, *, account_id: int,
    source: Optional[str] = None, mark_used: bool = True,
) -> Optional[Refused]:
    """Verify a typed code against a pending row; on failure count it and keep the count.

    Order: no pending code -> ``no_code_pending``; expired -> ``code_expired``
    (not counted); wrong -> the code's ``attempts`` and the account's
    ``email_code`` counter go up, the code is voided after
    ``code_max_attempts``, and ``code_invalid`` is returned (details:
    ``attempts_left`` for this code, ``retry_after_seconds`` once delays
    apply). On success the code is marked used and the counter reset. Call
    :func:`throttle` first.

    Args:
        ctx: The running operation (account row locked).
        row: From :func:`pending_code`.
        code: As typed.
        account_id: Account of the code (and of its counter without ``source``).
        source: Count failures on this unauthenticated source (:func:`record_source_failure`)
            instead of the account's ``email_code`` counter.
        mark_used: False leaves ``used_at`` to the caller (a second factor follows).

    Returns:
        None on success, else the refusal (already audited when it changed state).
    """
    if row is None:
        return Refused(reason=Reason.NO_CODE_PENDING)
    if ctx.now >= row.expires_at:
        return Refused(reason=Reason.CODE_EXPIRED, details={"expired_at": row.expires_at})
    if not code_matches(row, code):
        row.attempts = (row.attempts or 0) + 1
        left = max(0, ctx.deps.settings.code_max_attempts - row.attempts)
        if left == 0:
            row.revoked_at = ctx.now
        counter = (record_failure(ctx, account_id, "email_code") if source is None
                   else record_source_failure(ctx, source))
        refused = failure_refusal(ctx, Reason.CODE_INVALID, counter, attempts_left=left)
        return refuse_and_keep(
            ctx, refused, account_id=account_id,
            details={"verification_code_id": row.id, "purpose": row.purpose, "failures": counter.failures},
        )
    if mark_used:
        row.used_at = ctx.now
    if source is None:
        record_success(ctx, account_id, "email_code")
    else:
        record_source_success(ctx, source)
    return None


# --------------------------------------------------------------------------- TOTP


def totp_step(now: datetime) -> int:
    """Return the RFC 6238 time step (30-second counter) of an aware datetime."""
    return int(now.timestamp()) // TOTP_INTERVAL


def matching_step(secret: str, code: str, now: datetime) -> Optional[int]:
    """Return the step within ±1 of ``now`` whose TOTP equals ``code``, else None.

    Every candidate is compared in constant time, without an early exit.

    Args:
        secret: Base32 secret.
        code: As typed.
        now: The operation's time.

    Returns:
        The highest matching step, or None.
    """
    typed = normalize_code(code)
    if len(typed) != TOTP_DIGITS or not typed.isdigit() or not secret:
        return None
    totp = pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_INTERVAL)
    current = totp_step(now)
    matched: Optional[int] = None
    for step in range(current - TOTP_VALID_WINDOW, current + TOTP_VALID_WINDOW + 1):
        if same_secret(totp.generate_otp(step), typed):
            matched = step
    return matched


def accept_step(ctx: OperationContext, enrolment_id: int, step: int) -> bool:
    """Atomically move ``last_accepted_step`` forward to ``step``; False if it was not behind.

    ``UPDATE tfa_enrolments SET last_accepted_step = :step WHERE id = :id AND
    (last_accepted_step IS NULL OR last_accepted_step < :step)``: of many
    transactions racing with one code, exactly one changes the row.

    Args:
        ctx: The running operation.
        enrolment_id: The enrolment.
        step: The step of the accepted code.

    Returns:
        True if this call accepted the step.
    """
    stmt = (
        sa.update(TfaEnrolment)
        .where(
            TfaEnrolment.id == enrolment_id,
            sa.or_(TfaEnrolment.last_accepted_step.is_(None), TfaEnrolment.last_accepted_step < step),
        )
        .values(last_accepted_step=step)
        .execution_options(synchronize_session=False)
    )
    changed = ctx.session.execute(stmt).rowcount == 1
    enrolment = ctx.session.get(TfaEnrolment, enrolment_id)
    if enrolment is not None:
        ctx.session.expire(enrolment, ["last_accepted_step"])
    return changed


def verify_totp(
    ctx: OperationContext, enrolment: TfaEnrolment, code: str, *, account_id: int,
    authenticator: str = "totp",
) -> Optional[Refused]:
    """Check a code from the customer's authenticator app and accept its step once.

    Wrong code (or two steps off): ``code_invalid``, counted under
    ``authenticator``. Right code of a step already accepted: ``code_used``,
    not counted. Success resets the counter. Call :func:`throttle` first.

    Args:
        ctx: The running operation (account row locked).
        enrolment: The member's enabled enrolment.
        code: As typed.
        account_id: Account of the counter.
        authenticator: Counter kind (``totp``).

    Returns:
        None on success, else the refusal.
    """
    step = matching_step(enrolment.secret, code, ctx.now)
    if step is None:
        counter = record_failure(ctx, account_id, authenticator)
        refused = failure_refusal(ctx, Reason.CODE_INVALID, counter)
        return refuse_and_keep(
            ctx, refused, account_id=account_id,
            details={"authenticator": authenticator, "failures": counter.failures},
        )
    if not accept_step(ctx, enrolment.id, step):
        return Refused(reason=Reason.CODE_USED)
    record_success(ctx, account_id, authenticator)
    return None
