"""Lost authenticator app: recovery with two independent proofs, then a fresh enrolment.

Flow (NIST SP 800-63B-4 section 4.2 account recovery; OWASP MFA cheat sheet
"resetting MFA"):

1. :func:`start_tfa_recovery` - the verified customer says the app is lost
   (any channel). If the member has an enabled (or recovery-revoked)
   enrolment with unused recovery codes, a 6-digit code is e-mailed
   (purpose ``tfa_recovery``) and :class:`TfaRecoveryStarted` returned.
   Otherwise nothing is reset: a support request (reason
   ``lost_tfa_device``) is opened for a manual identity check, with the
   conversation the caller passes in, scrubbed of anything that looks like a
   code, token or password, and the refusal ``no_recovery_codes`` /
   ``tfa_not_enabled`` carries its id. An open request of that kind is
   reused, not duplicated. The assistant never resets TFA on chat evidence.
2. :func:`complete_tfa_recovery` - both proofs are required in one call: one
   unused recovery code (stored hashed, compared in constant time) **and**
   the e-mailed code. Which one was wrong is not said (``code_invalid``);
   each wrong proof counts on its own failure counter (``recovery_code``,
   ``email_code``; growing delays after 5, see :mod:`accounts.codes`).
   A chat gets the two proofs in two messages, possibly on two action
   servers: :func:`hold_recovery_code` checks the recovery code without
   using it and stores only a pending proof (conversation, member, which
   recovery-code row matched or none, expiry; never the code), and
   :func:`complete_held_tfa_recovery` judges it with the e-mailed code, once,
   in one transaction, with the same refusals and counters.
3. On success, in the same transaction: the recovery code and the e-mailed
   code are used up; the old TOTP secret is revoked at once (enrolment
   disabled, secret blanked, ``revoked_at``); the member's open step-up
   grants and older enrolment links end; a single-use enrolment link valid
   ``Settings.enrollment_ttl_minutes`` (15) is e-mailed (kind
   ``tfa_enrollment_link``, ``secret_link`` to
   ``{enrollment base}/tfa/enroll?token=...``). The remaining recovery codes
   stay valid until the new app is enrolled, so an expired link can be
   replaced by recovering again.
4. Every address on the account (primary address and every active member)
   gets ``tfa_reset`` with its own single-use "this was not me" link
   (``secret_report_link`` to ``/tfa/not-me?token=...``, stored hashed,
   valid ``Settings.report_ttl_days``). :func:`report_not_me` records the
   report, revokes every unused enrolment link, open step-up grant and
   channel link of the account, switches off an app enrolled since the
   notice (with its recovery codes: they were shown to whoever enrolled it)
   and opens a support request (reason ``tfa_reset_not_me``). The
   ``channel_linked`` notice of :mod:`accounts.channel_links` carries the
   same kind of link ("this wasn't me: unlink"; reason
   ``channel_link_not_me``).
5. :func:`begin_enrollment` (the page, GET) creates the pending secret once
   and returns it with its ``otpauth://`` URI; repeated views show the same
   secret (mail scanners may open links), nothing is activated.
   :func:`complete_enrollment` (the page, POST) activates it only with a
   valid code from the new app (±1 step, counted on ``tfa_enrollment``),
   uses the link up, replaces all recovery codes with 10 fresh ones
   (returned once, stored hashed) and sends ``tfa_enabled``.

Addresses: "the primary e-mail" of the customer is the acting member's own
address, which for the account owner is the account's primary e-mail. The
code and the enrolment link go there; the "not me" notices go everywhere.

The new secret and the recovery codes never go into a chat, an audit event,
a support request or a log; audit events record each step with ids only.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, List, Mapping, Optional, Tuple, Union
from urllib.parse import urlencode

import pyotp
import sqlalchemy as sa

from accounts import codes
from accounts.db import lock_account, lock_row, read_session
from accounts.deps import Actor, Deps
from accounts.guards import find_member, load_locked_account
from accounts.models import (
    CONVERSATION_LENGTH,
    Account,
    Member,
    SecurityReportToken,
    SupportRequest,
    TfaEnrolment,
    TfaEnrollmentToken,
    TfaPendingProof,
    TfaRecoveryCode,
    VerificationCode,
)
from accounts.operation import OperationContext, run_operation
from accounts.results import (
    EnrollmentStarted,
    NotMeReported,
    Reason,
    Refused,
    Result,
    TfaEnrolled,
    TfaRecoveryCompleted,
    TfaRecoveryStarted,
    support_reference,
    to_jsonable,
)
from accounts.redaction import redact_value
from accounts.security import hash_secret, normalize_code, same_secret
from accounts.step_up import revoke_open_grants
from accounts.support_requests import open_support_request

PURPOSE = "tfa_recovery"
ENROLL_PATH = "/tfa/enroll"
REPORT_PATH = "/tfa/not-me"
RECOVERY_CODE_COUNT = 10
SUPPORT_REASON = "lost_tfa_device"
NOT_ME_REASON = "tfa_reset_not_me"
LINK_NOT_ME_REASON = "channel_link_not_me"

def enrollment_link(base_url: str, token: str) -> str:
    """Return the e-mailed enrolment link ``{base}/tfa/enroll?token=...``."""
    return f"{base_url.rstrip('/')}{ENROLL_PATH}?{urlencode({'token': token})}"


def report_link(base_url: str, token: str) -> str:
    """Return the e-mailed "this was not me" link ``{base}/tfa/not-me?token=...``."""
    return f"{base_url.rstrip('/')}{REPORT_PATH}?{urlencode({'token': token})}"


# --------------------------------------------------------------------------- helpers


def _member(ctx: OperationContext, actor: Actor) -> Union[Tuple[Account, Member], Refused]:
    account = load_locked_account(ctx.session, actor.account_id)
    if isinstance(account, Refused):
        return account
    if account.status == "closed":
        return Refused(reason=Reason.ACCOUNT_CLOSED)
    member = find_member(ctx.session, actor.account_id, actor.member_email)
    if member is None or member.status != "active":
        return Refused(reason=Reason.NOT_PERMITTED, details={"required_roles": [], "role": None})
    return account, member


def _enrolment(ctx: OperationContext, member_id: int) -> Optional[TfaEnrolment]:
    return ctx.session.execute(
        sa.select(TfaEnrolment).where(TfaEnrolment.member_id == member_id)
        .with_for_update().execution_options(populate_existing=True)
    ).scalar_one_or_none()


def _recoverable(enrolment: Optional[TfaEnrolment]) -> bool:
    return enrolment is not None and (enrolment.enabled or enrolment.revoked_at is not None)


def _unused_codes(ctx: OperationContext, enrolment_id: int) -> List[TfaRecoveryCode]:
    return list(ctx.session.execute(
        sa.select(TfaRecoveryCode)
        .where(TfaRecoveryCode.enrolment_id == enrolment_id, TfaRecoveryCode.used_at.is_(None))
        .order_by(TfaRecoveryCode.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalars())


def account_addresses(ctx: OperationContext, account: Account) -> List[str]:
    """Every address on the account: the primary e-mail and each active member's, deduplicated."""
    emails = ctx.session.execute(
        sa.select(Member.email).where(Member.account_id == account.id, Member.status == "active")
    ).scalars()
    return sorted({account.primary_email, *emails})


def _revoke_enrollment_tokens(ctx: OperationContext, *, account_id: int, member_id: Optional[int] = None) -> int:
    where = [TfaEnrollmentToken.account_id == account_id, TfaEnrollmentToken.used_at.is_(None),
             TfaEnrollmentToken.revoked_at.is_(None)]
    if member_id is not None:
        where.append(TfaEnrollmentToken.member_id == member_id)
    rows = list(ctx.session.execute(sa.select(TfaEnrollmentToken).where(*where).with_for_update()).scalars())
    for row in rows:
        row.revoked_at = ctx.now
        row.pending_secret = None
    return len(rows)


def _context_fingerprint(context: Optional[Mapping[str, Any]]) -> str:
    data = json.dumps(to_jsonable(dict(context or {})), sort_keys=True, default=str)
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- 1. start


def start_tfa_recovery(
    deps: Deps,
    actor: Actor,
    *,
    idempotency_key: str,
    channel: str = "chat",
    context: Optional[Mapping[str, Any]] = None,
) -> Result:
    """The customer lost the authenticator app: e-mail a code, or hand over to support.

    Args:
        deps: Injected dependencies.
        actor: The verified acting member (whose app is lost).
        idempotency_key: Caller's key.
        channel: Where the customer asked (``chat``, ``slack``...).
        context: What the support agent needs if it comes to that (e.g.
            ``{"conversation_id": ..., "transcript": [...]}``); scrubbed of
            secrets before storing.

    Returns:
        :class:`TfaRecoveryStarted`, or :class:`Refused` with
        ``no_recovery_codes`` / ``tfa_not_enabled`` (a support request was
        opened: ``support_request_id``, details ``reference``),
        ``rate_limited`` (``retry_after_seconds``), ``account_not_found``,
        ``account_closed`` or ``not_permitted``.
    """
    scrubbed = redact_value(dict(context or {}))

    def body(ctx: OperationContext) -> Result:
        found = _member(ctx, actor)
        if isinstance(found, Refused):
            return found
        account, member = found
        enrolment = _enrolment(ctx, member.id)
        unused = _unused_codes(ctx, enrolment.id) if _recoverable(enrolment) else []
        if not _recoverable(enrolment) or not unused:
            reason = Reason.TFA_NOT_ENABLED if not _recoverable(enrolment) else Reason.NO_RECOVERY_CODES
            request = ctx.session.execute(
                sa.select(SupportRequest).where(
                    SupportRequest.account_id == account.id, SupportRequest.reason == SUPPORT_REASON,
                    SupportRequest.status != "resolved", SupportRequest.contact_email == member.email,
                ).order_by(SupportRequest.id.desc()).limit(1)
            ).scalar_one_or_none()
            if request is None:
                request = open_support_request(
                    ctx, account_id=account.id, channel=channel, reason=SUPPORT_REASON,
                    summary=(
                        f"{member.email} reports a lost authenticator app and has "
                        f"{'no TFA enrolment' if reason == Reason.TFA_NOT_ENABLED else 'no unused recovery codes'}. "
                        "Verify their identity manually before resetting TFA; the assistant reset nothing."
                    ),
                    context={"why": reason.value, "member_email": member.email, "conversation": scrubbed},
                    contact_email=member.email,
                )
            refused = Refused(reason=reason, support_request_id=request.id,
                              details={"reference": support_reference(request.id)})
            return codes.refuse_and_keep(ctx, refused, account_id=account.id,
                                         details={"support_request_id": request.id})
        if not codes.send_allowed(ctx, account.id, PURPOSE):
            return Refused(reason=Reason.RATE_LIMITED, details={
                "retry_after_seconds": codes.next_send_in_seconds(ctx, account.id, PURPOSE)})
        codes.issue_email_code(ctx, account_id=account.id, member_id=member.id,
                               recipient_email=member.email, purpose=PURPOSE)
        ctx.audit(account_id=account.id, action="tfa_recovery_started",
                  details={"member_email": member.email, "channel": channel})
        return TfaRecoveryStarted(expires_in_minutes=deps.settings.code_ttl_minutes)

    return run_operation(
        deps, operation="start_tfa_recovery", idempotency_key=idempotency_key, actor=actor,
        params={"channel": channel, "context_sha256": _context_fingerprint(scrubbed)}, body=body,
    )


# --------------------------------------------------------------------------- 2.-4. complete


@dataclass(frozen=True)
class TfaRecoveryCodeHeld(Result):
    """A recovery code was noted for the conversation (whether it matched is not said).

    Kept beside the functions that use it: only this module returns it.
    """

    expires_at: datetime


def _matching_code(unused: List[TfaRecoveryCode], recovery_code: str) -> Optional[TfaRecoveryCode]:
    """The unused recovery code equal to the typed one, compared in constant time."""
    typed_hash = hash_secret(normalize_code(recovery_code))
    matched: Optional[TfaRecoveryCode] = None
    for candidate in unused:  # no early exit: constant work whatever matches
        if same_secret(candidate.code_hash, typed_hash):
            matched = candidate
    return matched


def _recovery_subject(ctx: OperationContext, actor: Actor) -> Union[Tuple[Account, Member, TfaEnrolment], Refused]:
    """The locked account, member and recoverable enrolment, or the refusal; throttled."""
    found = _member(ctx, actor)
    if isinstance(found, Refused):
        return found
    account, member = found
    enrolment = _enrolment(ctx, member.id)
    if not _recoverable(enrolment):
        return Refused(reason=Reason.TFA_NOT_ENABLED)
    assert enrolment is not None
    refused = codes.throttle(ctx, account.id, "recovery_code", "email_code")
    if refused:
        return refused
    return account, member, enrolment


def _subject_and_email_code(
    ctx: OperationContext, actor: Actor
) -> Union[Tuple[Tuple[Account, Member, TfaEnrolment], VerificationCode], Refused]:
    """:func:`_recovery_subject` and the member's pending, unexpired e-mailed code, or the refusal."""
    subject = _recovery_subject(ctx, actor)
    if isinstance(subject, Refused):
        return subject
    account, member, _enrolment = subject
    row = codes.pending_code(ctx, purpose=PURPOSE, account_id=account.id, member_id=member.id)
    if row is None:
        return Refused(reason=Reason.NO_CODE_PENDING)
    if ctx.now >= row.expires_at:
        return Refused(reason=Reason.CODE_EXPIRED, details={"expired_at": row.expires_at})
    return subject, row


def _judge(
    ctx: OperationContext,
    deps: Deps,
    subject: Tuple[Account, Member, TfaEnrolment],
    row: VerificationCode,
    unused: List[TfaRecoveryCode],
    matched: Optional[TfaRecoveryCode],
    email_code: str,
    audit_details: Mapping[str, Any],
) -> Result:
    """Both proofs hold: reset; else refuse without saying which, counting each wrong one."""
    settings = deps.settings
    account, member, enrolment = subject
    email_ok = codes.code_matches(row, email_code)
    if matched is None or not email_ok:
        failed = []
        waits = []
        if matched is None:
            failed.append("recovery_code")
            counter = codes.record_failure(ctx, account.id, "recovery_code")
            waits.append(codes.retry_after_seconds(ctx.now, counter.next_allowed_at))
        if not email_ok:
            failed.append("email_code")
            row.attempts = (row.attempts or 0) + 1
            if row.attempts >= settings.code_max_attempts:
                row.revoked_at = ctx.now
            counter = codes.record_failure(ctx, account.id, "email_code")
            waits.append(codes.retry_after_seconds(ctx.now, counter.next_allowed_at))
        details = {"retry_after_seconds": max(waits)} if max(waits) else {}
        return codes.refuse_and_keep(ctx, Refused(reason=Reason.CODE_INVALID, details=details),
                                     account_id=account.id, details={"failed": failed, **audit_details})

    matched.used_at = ctx.now
    row.used_at = ctx.now
    codes.record_success(ctx, account.id, "recovery_code")
    codes.record_success(ctx, account.id, "email_code")
    ctx.audit(account_id=account.id, action="tfa_recovery_verified",
              details={"member_email": member.email, "recovery_code_id": matched.id,
                       "verification_code_id": row.id, "recovery_codes_left": len(unused) - 1})

    enrolment.enabled = False
    enrolment.secret = ""
    enrolment.revoked_at = ctx.now
    ended_grants = revoke_open_grants(ctx, account_id=account.id, member_id=member.id)
    ended_links = _revoke_enrollment_tokens(ctx, account_id=account.id, member_id=member.id)
    ctx.audit(account_id=account.id, action="tfa_secret_revoked",
              details={"member_email": member.email, "enrolment_id": enrolment.id,
                       "step_up_grants_ended": ended_grants, "enrollment_links_revoked": ended_links})

    token = deps.tokens()
    expires_at = ctx.now + timedelta(minutes=settings.enrollment_ttl_minutes)
    link_row = TfaEnrollmentToken(account_id=account.id, member_id=member.id, token_hash=hash_secret(token),
                                  created_at=ctx.now, expires_at=expires_at)
    ctx.session.add(link_row)
    ctx.session.flush()
    ctx.notify(account_id=account.id, recipient_email=member.email, kind="tfa_enrollment_link",
               payload={"secret_link": enrollment_link(settings.enrollment_url_base, token),
                        "expires_in_minutes": settings.enrollment_ttl_minutes, "expires_at": expires_at})
    ctx.audit(account_id=account.id, action="tfa_enrollment_link_sent",
              details={"member_email": member.email, "enrollment_token_id": link_row.id,
                       "expires_at": expires_at})

    addresses = account_addresses(ctx, account)
    for address in addresses:
        report_token = deps.tokens()
        ctx.session.add(SecurityReportToken(
            account_id=account.id, recipient_email=address, event="tfa_reset",
            token_hash=hash_secret(report_token), created_at=ctx.now,
            expires_at=ctx.now + timedelta(days=settings.report_ttl_days),
        ))
        ctx.notify(account_id=account.id, recipient_email=address, kind="tfa_reset",
                   payload={"member_email": member.email, "reset_at": ctx.now,
                            "secret_report_link": report_link(settings.enrollment_url_base, report_token)})
    ctx.audit(account_id=account.id, action="tfa_reset_notified",
              details={"member_email": member.email, "addresses": addresses})
    return TfaRecoveryCompleted(enrollment_expires_at=expires_at, notified_addresses=len(addresses))


def complete_tfa_recovery(
    deps: Deps, actor: Actor, *, recovery_code: str, email_code: str, idempotency_key: str
) -> Result:
    """Check both proofs; revoke the old app; e-mail an enrolment link; tell every address.

    Args:
        deps: Injected dependencies.
        actor: The verified acting member.
        recovery_code: One saved recovery code, as typed.
        email_code: The code e-mailed by :func:`start_tfa_recovery`.
        idempotency_key: Caller's key.

    Returns:
        :class:`TfaRecoveryCompleted`, or :class:`Refused` with
        ``code_invalid`` (one or both proofs wrong; ``retry_after_seconds``
        once delays apply), ``code_expired``, ``no_code_pending``,
        ``too_many_attempts`` (``retry_after_seconds``), ``no_recovery_codes``,
        ``tfa_not_enabled``, ``account_not_found``, ``account_closed`` or
        ``not_permitted``.
    """

    def body(ctx: OperationContext) -> Result:
        found = _subject_and_email_code(ctx, actor)
        if isinstance(found, Refused):
            return found
        subject, row = found
        unused = _unused_codes(ctx, subject[2].id)
        if not unused:
            return Refused(reason=Reason.NO_RECOVERY_CODES)
        return _judge(ctx, deps, subject, row, unused, _matching_code(unused, recovery_code), email_code, {})

    return run_operation(
        deps, operation="complete_tfa_recovery", idempotency_key=idempotency_key, actor=actor,
        params={"recovery_code_sha256": hash_secret(normalize_code(recovery_code))},  # not the e-mailed code
        body=body,
    )


# --------------------------------------------------------------------------- 2.-4. in two messages


def _open_proof(ctx: OperationContext, conversation_id: str, member: Member) -> Optional[TfaPendingProof]:
    return ctx.session.execute(
        sa.select(TfaPendingProof)
        .where(TfaPendingProof.conversation_id == conversation_id, TfaPendingProof.member_id == member.id,
               TfaPendingProof.account_id == member.account_id, TfaPendingProof.closed_at.is_(None))
        .order_by(TfaPendingProof.id.desc()).limit(1)
        .with_for_update().execution_options(populate_existing=True)
    ).scalar_one_or_none()


def hold_recovery_code(
    deps: Deps, actor: Actor, *, conversation_id: str, recovery_code: str, idempotency_key: str
) -> Result:
    """Step one in its own message: note which recovery code was typed, by reference only.

    The typed code is compared with the unused codes' hashes (constant time)
    and nothing is used up; a :class:`~accounts.models.TfaPendingProof`
    records the matching row, or none, for this conversation until
    ``Settings.code_ttl_minutes`` from now. The answer is the same whether
    the code matched or not: :func:`complete_held_tfa_recovery` judges both
    proofs together. A newer call of the same conversation replaces the
    pending proof; the member's closed and expired ones are deleted.

    Args:
        deps: Injected dependencies.
        actor: The verified acting member.
        conversation_id: The conversation (sender id) both steps come from.
        recovery_code: One saved recovery code, as typed.
        idempotency_key: Caller's key.

    Returns:
        :class:`TfaRecoveryCodeHeld`, or :class:`Refused` with
        ``too_many_attempts`` (``retry_after_seconds``), ``tfa_not_enabled``,
        ``invalid_request`` (no conversation), ``account_not_found``,
        ``account_closed`` or ``not_permitted``.
    """
    conversation_id = (conversation_id or "")[:CONVERSATION_LENGTH]

    def body(ctx: OperationContext) -> Result:
        if not conversation_id:
            return Refused(reason=Reason.INVALID_REQUEST, details={"field": "conversation_id"})
        subject = _recovery_subject(ctx, actor)
        if isinstance(subject, Refused):
            return subject
        account, member, enrolment = subject
        matched = _matching_code(_unused_codes(ctx, enrolment.id), recovery_code)
        ctx.session.execute(
            sa.delete(TfaPendingProof)
            .where(TfaPendingProof.member_id == member.id,
                   sa.or_(TfaPendingProof.closed_at.is_not(None), TfaPendingProof.expires_at <= ctx.now))
            .execution_options(synchronize_session=False))
        ctx.session.execute(
            sa.update(TfaPendingProof)
            .where(TfaPendingProof.member_id == member.id, TfaPendingProof.conversation_id == conversation_id,
                   TfaPendingProof.closed_at.is_(None))
            .values(closed_at=ctx.now).execution_options(synchronize_session=False))
        proof = TfaPendingProof(conversation_id=conversation_id, account_id=account.id, member_id=member.id,
                                recovery_code_id=None if matched is None else matched.id,
                                created_at=ctx.now, attempts=0,
                                expires_at=ctx.now + timedelta(minutes=deps.settings.code_ttl_minutes))
        ctx.session.add(proof)
        ctx.session.flush()
        ctx.audit(account_id=account.id, action="tfa_recovery_code_held",
                  details={"member_email": member.email, "pending_proof_id": proof.id})
        return TfaRecoveryCodeHeld(expires_at=proof.expires_at)

    return run_operation(
        deps, operation="hold_recovery_code", idempotency_key=idempotency_key, actor=actor,
        params={"conversation_id": conversation_id,
                "recovery_code_sha256": hash_secret(normalize_code(recovery_code))},
        body=body,
    )


def complete_held_tfa_recovery(
    deps: Deps, actor: Actor, *, conversation_id: str, email_code: str, idempotency_key: str
) -> Result:
    """Step two: judge the conversation's pending proof with the e-mailed code, in one transaction.

    Works like :func:`complete_tfa_recovery` (the same refusals, counters and
    success) with the recovery code taken from the pending proof of
    :func:`hold_recovery_code`. The pending proof is judged once: success or
    refusal closes it, so replaying this step does nothing a second time
    (a replay with the same key returns the stored success).

    Args:
        deps: Injected dependencies.
        actor: The verified acting member (the one who held the code).
        conversation_id: The conversation of step one.
        email_code: The code e-mailed by :func:`start_tfa_recovery`.
        idempotency_key: Caller's key.

    Returns:
        :class:`TfaRecoveryCompleted`, or :class:`Refused` as
        :func:`complete_tfa_recovery` does; ``no_code_pending`` or
        ``code_expired`` with details ``{"proof": "recovery_code"}`` when
        the conversation has no open pending proof or it expired (ask for
        the recovery code again).
    """
    conversation_id = (conversation_id or "")[:CONVERSATION_LENGTH]

    def body(ctx: OperationContext) -> Result:
        found = _subject_and_email_code(ctx, actor)
        if isinstance(found, Refused):
            return found
        subject, row = found
        _account, member, enrolment = subject
        proof = _open_proof(ctx, conversation_id, member)
        if proof is None:
            return Refused(reason=Reason.NO_CODE_PENDING, details={"proof": "recovery_code"})
        if ctx.now >= proof.expires_at:
            return Refused(reason=Reason.CODE_EXPIRED,
                           details={"proof": "recovery_code", "expired_at": proof.expires_at})
        unused = _unused_codes(ctx, enrolment.id)
        if not unused:
            return Refused(reason=Reason.NO_RECOVERY_CODES)
        proof.attempts = (proof.attempts or 0) + 1
        proof.closed_at = ctx.now
        matched = next((c for c in unused if c.id == proof.recovery_code_id), None)
        return _judge(ctx, deps, subject, row, unused, matched, email_code, {"pending_proof_id": proof.id})

    return run_operation(
        deps, operation="complete_held_tfa_recovery", idempotency_key=idempotency_key, actor=actor,
        params={"conversation_id": conversation_id},  # never the e-mailed code: see fingerprint()
        body=body,
    )


# --------------------------------------------------------------------------- 5. enrolment page


def _token_row(ctx: OperationContext, token_hash: str, model: Any) -> Union[Tuple[Account, Any], Refused]:
    """Find a token row by hash, lock its account then the row; refuse unknown tokens."""
    found = ctx.session.execute(
        sa.select(model.id, model.account_id).where(model.token_hash == token_hash)
    ).first()
    if found is None:
        return Refused(reason=Reason.INVALID_TOKEN)
    ctx.account_id = found.account_id
    account = lock_account(ctx.session, found.account_id)
    return account, lock_row(ctx.session, model, found.id)


def _usable_enrollment(ctx: OperationContext, token: str) -> Union[Tuple[Account, TfaEnrollmentToken, Member], Refused]:
    found = _token_row(ctx, hash_secret(token), TfaEnrollmentToken)
    if isinstance(found, Refused):
        return found
    account, row = found
    member = ctx.session.get(Member, row.member_id, populate_existing=True)
    assert member is not None
    ctx.actor_label = f"enrollment-token-holder:{member.email}"
    if row.used_at is not None:
        return Refused(reason=Reason.TOKEN_USED)
    if row.revoked_at is not None or member.status != "active" or account.status == "closed":
        return Refused(reason=Reason.TOKEN_REVOKED)
    if ctx.now >= row.expires_at:
        return Refused(reason=Reason.TOKEN_EXPIRED, details={"expired_at": row.expires_at})
    return account, row, member


def provisioning_uri(secret: str, member_email: str, issuer: str) -> str:
    """Return the ``otpauth://totp/...`` URI an authenticator app scans."""
    return pyotp.TOTP(secret).provisioning_uri(name=member_email, issuer_name=issuer)


def begin_enrollment(deps: Deps, *, token: str, idempotency_key: str) -> Result:
    """Show the new secret for an enrolment link (created on first view, not active yet).

    Args:
        deps: Injected dependencies.
        token: Raw token from the link.
        idempotency_key: Caller's key (use a fresh one per page view: a
            replayed result has no secret).

    Returns:
        :class:`EnrollmentStarted`, or :class:`Refused` with ``invalid_token``,
        ``token_used``, ``token_revoked`` or ``token_expired``.
    """
    token_hash = hash_secret(token)

    def body(ctx: OperationContext) -> Result:
        found = _usable_enrollment(ctx, token)
        if isinstance(found, Refused):
            return found
        account, row, member = found
        first_view = row.pending_secret is None
        if first_view:
            row.pending_secret = deps.totp_secrets()
        ctx.audit(account_id=account.id, action="tfa_enrollment_opened",
                  details={"enrollment_token_id": row.id, "member_email": member.email, "first_view": first_view})
        secret = row.pending_secret
        return EnrollmentStarted(member_email=member.email, expires_at=row.expires_at, secret=secret,
                                 provisioning_uri=provisioning_uri(secret, member.email, deps.settings.tfa_issuer))

    return run_operation(
        deps, operation="begin_enrollment", idempotency_key=idempotency_key, actor=None,
        actor_label="enrollment-token-holder", params={"token_hash": token_hash}, body=body,
    )


def complete_enrollment(deps: Deps, *, token: str, code: str, idempotency_key: str) -> Result:
    """Activate the pending secret with a valid code from the new app; issue 10 recovery codes.

    Args:
        deps: Injected dependencies.
        token: Raw token from the link.
        code: Current 6-digit code of the new app.
        idempotency_key: Caller's key.

    Returns:
        :class:`TfaEnrolled` (``recovery_codes`` once; None in a replay), or
        :class:`Refused` with ``code_invalid`` (``retry_after_seconds`` once
        delays apply), ``too_many_attempts``, ``invalid_request`` (the page
        was never opened), ``invalid_token``, ``token_used``,
        ``token_revoked`` or ``token_expired``.
    """
    token_hash = hash_secret(token)

    def body(ctx: OperationContext) -> Result:
        found = _usable_enrollment(ctx, token)
        if isinstance(found, Refused):
            return found
        account, row, member = found
        if not row.pending_secret:
            return Refused(reason=Reason.INVALID_REQUEST, details={"field": "pending_secret"})
        refused = codes.throttle(ctx, account.id, "tfa_enrollment")
        if refused:
            return refused
        step = codes.matching_step(row.pending_secret, code, ctx.now)
        if step is None:
            counter = codes.record_failure(ctx, account.id, "tfa_enrollment")
            return codes.refuse_and_keep(
                ctx, codes.failure_refusal(ctx, Reason.CODE_INVALID, counter), account_id=account.id,
                details={"enrollment_token_id": row.id, "failures": counter.failures})

        enrolment = _enrolment(ctx, member.id)
        if enrolment is None:
            enrolment = TfaEnrolment(member_id=member.id, secret=row.pending_secret, enabled=True,
                                     last_accepted_step=step, created_at=ctx.now)
            ctx.session.add(enrolment)
            ctx.session.flush()
        else:
            ctx.session.execute(sa.delete(TfaRecoveryCode).where(TfaRecoveryCode.enrolment_id == enrolment.id)
                                .execution_options(synchronize_session=False))
            enrolment.secret = row.pending_secret
            enrolment.enabled = True
            enrolment.revoked_at = None
            enrolment.last_accepted_step = step
        fresh: List[str] = []
        while len(fresh) < RECOVERY_CODE_COUNT:
            candidate = normalize_code(deps.recovery_codes())
            if candidate and candidate not in fresh:
                fresh.append(candidate)
        for value in fresh:
            ctx.session.add(TfaRecoveryCode(enrolment_id=enrolment.id, code_hash=hash_secret(value)))
        row.used_at = ctx.now
        row.pending_secret = None
        ctx.session.flush()
        ctx.session.expire(enrolment, ["recovery_codes"])
        codes.record_success(ctx, account.id, "tfa_enrollment")
        ctx.notify(account_id=account.id, recipient_email=member.email, kind="tfa_enabled",
                   payload={"enabled_at": ctx.now, "member_email": member.email})
        ctx.audit(account_id=account.id, action="tfa_enabled",
                  details={"enrollment_token_id": row.id, "enrolment_id": enrolment.id,
                           "member_email": member.email, "recovery_codes_issued": len(fresh)})
        return TfaEnrolled(member_email=member.email, recovery_codes=tuple(fresh))

    return run_operation(
        deps, operation="complete_enrollment", idempotency_key=idempotency_key, actor=None,
        actor_label="enrollment-token-holder",
        params={"token_hash": token_hash}, body=body,  # never the app's code: see fingerprint()
    )


# --------------------------------------------------------------------------- "this was not me"


def _revoke_apps_enrolled_since(ctx: OperationContext, account_id: int, since: datetime) -> List[int]:
    """Switch off apps enrolled with an enrolment link used since ``since``; return the enrolment ids."""
    member_ids = list(ctx.session.execute(
        sa.select(TfaEnrollmentToken.member_id).where(
            TfaEnrollmentToken.account_id == account_id,
            TfaEnrollmentToken.used_at.is_not(None),
            TfaEnrollmentToken.used_at >= since,
        ).distinct()
    ).scalars())
    revoked: List[int] = []
    for member_id in member_ids:
        enrolment = _enrolment(ctx, member_id)
        if enrolment is None or not enrolment.enabled:
            continue
        ctx.session.execute(sa.delete(TfaRecoveryCode).where(TfaRecoveryCode.enrolment_id == enrolment.id)
                            .execution_options(synchronize_session=False))
        enrolment.enabled = False
        enrolment.secret = ""
        enrolment.revoked_at = ctx.now
        revoked.append(enrolment.id)
    return revoked


def report_not_me(deps: Deps, *, token: str, idempotency_key: str, channel: str = "web") -> Result:
    """Record a "this was not me" report from a ``tfa_reset`` or ``channel_linked`` notice.

    Revokes every unused enrolment link, open step-up grant and channel link
    of the account, switches off an app enrolled since the notice (and its
    recovery codes) and opens a support request (reason ``tfa_reset_not_me``
    or ``channel_link_not_me``) acknowledged to the reporting address. The
    report itself could come from a compromised mailbox, so it only ever
    takes access away; restoring it is the support agent's job.

    Args:
        deps: Injected dependencies.
        token: Raw token from the link.
        idempotency_key: Caller's key.
        channel: Where the report came from (``web``).

    Returns:
        :class:`NotMeReported`, or :class:`Refused` with ``invalid_token``,
        ``token_used`` or ``token_expired``.
    """
    from accounts.channel_links import revoke_links_of_account  # channel_links imports this module

    token_hash = hash_secret(token)

    def body(ctx: OperationContext) -> Result:
        found = _token_row(ctx, token_hash, SecurityReportToken)
        if isinstance(found, Refused):
            return found
        account, row = found
        ctx.actor_label = f"report-token-holder:{row.recipient_email}"
        if row.used_at is not None:
            return Refused(reason=Reason.TOKEN_USED)
        if ctx.now >= row.expires_at:
            return Refused(reason=Reason.TOKEN_EXPIRED, details={"expired_at": row.expires_at})
        row.used_at = ctx.now
        links = _revoke_enrollment_tokens(ctx, account_id=account.id)
        grants = revoke_open_grants(ctx, account_id=account.id)
        unlinked = revoke_links_of_account(ctx, account.id)
        apps_off = _revoke_apps_enrolled_since(ctx, account.id, row.created_at)
        if row.event == "channel_linked":
            reason = LINK_NOT_ME_REASON
            summary = (f"{row.recipient_email} says a chat linked to this account was not them. Every chat "
                       "link was removed; someone had the e-mailed code: check the mailbox's security.")
        else:
            reason = NOT_ME_REASON
            summary = (f"{row.recipient_email} says a TFA reset on this account was not them. Pending "
                       "enrolment links were revoked; check the account and contact the customer.")
        request = open_support_request(
            ctx, account_id=account.id, channel=channel, reason=reason, summary=summary,
            context={"event": row.event, "reported_by": row.recipient_email, "notice_sent_at": row.created_at,
                     "enrollment_links_revoked": links, "step_up_grants_ended": grants,
                     "channel_links_revoked": len(unlinked), "apps_switched_off": len(apps_off),
                     "new_app_enrolled_since": len(apps_off)},
            contact_email=row.recipient_email,
        )
        ctx.audit(account_id=account.id, action=f"{row.event}_reported_not_me",
                  details={"report_token_id": row.id, "reported_by": row.recipient_email,
                           "support_request_id": request.id, "enrollment_links_revoked": links,
                           "channel_link_ids_revoked": unlinked, "enrolment_ids_switched_off": apps_off})
        return NotMeReported(support_request_id=request.id, reference=support_reference(request.id))

    return run_operation(
        deps, operation="report_not_me", idempotency_key=idempotency_key, actor=None,
        actor_label="report-token-holder", params={"token_hash": token_hash}, body=body,
    )


def report_event(deps: Deps, token: str) -> Optional[str]:
    """Which notice a "not me" token came with (``tfa_reset``, ``channel_linked``), or None; read-only."""
    with read_session(deps.session_factory) as session:
        return session.execute(
            sa.select(SecurityReportToken.event).where(SecurityReportToken.token_hash == hash_secret(token))
        ).scalar_one_or_none()


def check_report_token(deps: Deps, token: str) -> Optional[Reason]:
    """Read-only check of a "not me" link for the confirmation page: None if usable, else why not."""
    now = deps.now()
    with read_session(deps.session_factory) as session:
        row = session.execute(
            sa.select(SecurityReportToken).where(SecurityReportToken.token_hash == hash_secret(token))
        ).scalar_one_or_none()
        if row is None:
            return Reason.INVALID_TOKEN
        if row.used_at is not None:
            return Reason.TOKEN_USED
        if now >= row.expires_at:
            return Reason.TOKEN_EXPIRED
        return None
