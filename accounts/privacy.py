"""A customer's personal data in the account store: who they are, export, erasure (GDPR art. 15, 17, 20).

Rules:

* The **data subject** is found by account id, by e-mail (the account whose
  primary address it is, else the account it is a member of) or by a chat
  identity (channel and the platform's user id; its account is the one it is
  or was linked to, if any). Identity comes from the operator's command, never
  from a chat.
* **Export** (:func:`export_account_data`): the account, members, services,
  invoices, payments, audit events, support requests with their messages,
  channel links and e-mails sent or queued. Password hashes, code hashes,
  TOTP secrets and ``secret_*`` payload fields are never exported.
* **Erasure** (:func:`erase_account_data`, one transaction, idempotent):
  support requests' transcripts and thread messages become ``[erased]``;
  channel links, chat-link codes, lost-TFA pending proofs, outbox rows and the
  idempotency records of the customer's conversations are deleted; chat user
  ids and conversation ids in audit events are replaced by a pseudonym. Once
  the account is **closed**, its own records are pseudonymised too: primary
  and member addresses become ``<pseudonym>...@erased.invalid``, company
  details and password hashes are removed, tokens and TFA secrets deleted, and
  the audit events keep their facts with the pseudonym in place of the
  addresses. Invoices and payments are kept (the law requires them); they
  hold no address. An open account keeps what it needs to be served.
* The erasure is itself audited (``erase_personal_data``), with counts and the
  pseudonym, never the erased values. On SQLite the transaction runs with
  ``secure_delete`` and the file is vacuumed, so no free page keeps the data.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

import sqlalchemy as sa
from sqlalchemy.orm import Session

from accounts.db import read_session, write_session
from accounts.deps import Deps
from accounts.models import (
    Account,
    AuditEvent,
    ChannelLink,
    IdempotencyRecord,
    Invitation,
    Invoice,
    Member,
    OutboxNotification,
    PasswordResetAttempt,
    PasswordResetToken,
    Payment,
    SecurityReportToken,
    Service,
    SupportRequest,
    SupportRequestMessage,
    TfaEnrollmentToken,
    TfaEnrolment,
    TfaPendingProof,
    TfaRecoveryCode,
    VerificationCode,
)
from accounts.outbox import redact_payload
from accounts.results import to_jsonable
from accounts.security import hash_secret, normalize_email

#: What an erased text becomes.
ERASED = "[erased]"
#: Domain of pseudonymised addresses (reserved: never deliverable).
ERASED_DOMAIN = "erased.invalid"
#: Columns never exported.
NEVER_EXPORTED = frozenset({"password_hash", "code_hash", "code_salt", "token_hash", "secret", "pending_secret"})

ChatIdentity = Tuple[str, str]


@dataclass(frozen=True)
class DataSubject:
    """Whose data an export or erasure is about.

    Attributes:
        account_id: Their account, if any.
        account_closed: Whether that account is closed (its own records are then pseudonymised).
        emails: The account's addresses (primary and members) or the one asked about.
        chat_identities: Chat identities (channel, user id): asked about, linked now or before.
        conversation_ids: Conversations the account store knows of (support requests, pending proofs).
    """

    account_id: Optional[int]
    account_closed: bool = False
    emails: Tuple[str, ...] = ()
    chat_identities: Tuple[ChatIdentity, ...] = ()
    conversation_ids: Tuple[str, ...] = ()

    @property
    def found(self) -> bool:
        """Whether anything identifies a customer at all."""
        return self.account_id is not None or bool(self.chat_identities)


@dataclass(frozen=True)
class ErasureReport:
    """What an erasure changed in the account store (counts only) and the pseudonym it used."""

    pseudonym: str
    account_id: Optional[int]
    account_pseudonymised: bool
    counts: Mapping[str, int] = field(default_factory=dict)


def find_subject(deps: Deps, *, email: Optional[str] = None, account_id: Optional[int] = None,
                 channel: Optional[str] = None, channel_user_id: Optional[str] = None) -> DataSubject:
    """Resolve the customer from an operator's e-mail, account id or chat identity.

    Raises:
        ValueError: If none, or more than one kind of identifier, is given.
    """
    given = [email is not None, account_id is not None, channel is not None or channel_user_id is not None]
    if sum(given) != 1:
        raise ValueError("give exactly one of: an e-mail, an account id, a chat identity")
    if (channel is None) != (channel_user_id is None):
        raise ValueError("a chat identity needs both the channel and the channel's user id")
    with read_session(deps.session_factory) as session:
        identities: Set[ChatIdentity] = set()
        address = normalize_email(email) if email else None
        account: Optional[Account] = None
        if account_id is not None:
            account = session.get(Account, account_id)
        elif address is not None:
            account = session.execute(sa.select(Account).where(Account.primary_email == address)).scalar_one_or_none()
            if account is None:
                member = session.execute(sa.select(Member).where(Member.email == address)
                                         .order_by(Member.id)).scalars().first()
                account = session.get(Account, member.account_id) if member else None
        else:
            identities.add((str(channel), str(channel_user_id)))
            link = session.execute(
                sa.select(ChannelLink).where(ChannelLink.channel == channel,
                                             ChannelLink.channel_user_id == channel_user_id)
                .order_by(ChannelLink.id.desc())).scalars().first()
            account = session.get(Account, link.account_id) if link else None
        emails: Set[str] = {address} if address else set()
        conversations: Set[str] = set()
        if account is not None:
            emails.add(account.primary_email)
            emails |= set(session.execute(sa.select(Member.email).where(Member.account_id == account.id)).scalars())
            identities |= {(c, u) for c, u in session.execute(
                sa.select(ChannelLink.channel, ChannelLink.channel_user_id)
                .where(ChannelLink.account_id == account.id))}
            identities |= {(c, u) for c, u in session.execute(
                sa.select(VerificationCode.channel, VerificationCode.channel_user_id)
                .where(VerificationCode.account_id == account.id, VerificationCode.channel_user_id.is_not(None)))}
            conversations |= set(session.execute(
                sa.select(TfaPendingProof.conversation_id).where(TfaPendingProof.account_id == account.id)).scalars())
        for request in _support_requests(session, account.id if account else None, identities, conversations):
            conversation = (request.context or {}).get("conversation")
            if isinstance(conversation, str) and conversation:
                conversations.add(conversation)
        return DataSubject(
            account_id=account.id if account else None,
            account_closed=bool(account and account.status == "closed"),
            emails=tuple(sorted(emails)),
            chat_identities=tuple(sorted(identities)),
            conversation_ids=tuple(sorted(conversations)),
        )


def _support_requests(session: Session, account_id: Optional[int], identities: Iterable[ChatIdentity],
                      conversations: Iterable[str]) -> List[SupportRequest]:
    """The account's support requests and those raised from its chat identities' conversations."""
    ids = {user for _, user in identities} | set(conversations)
    where = [SupportRequest.account_id == account_id] if account_id is not None else []
    if ids:
        where.append(SupportRequest.account_id.is_(None))
    if not where:
        return []
    found = []
    for request in session.execute(sa.select(SupportRequest).where(sa.or_(*where))
                                   .order_by(SupportRequest.id)).scalars():
        conversation = (request.context or {}).get("conversation")
        if request.account_id == account_id and account_id is not None:
            found.append(request)
        elif isinstance(conversation, str) and (conversation in ids or _names_any(conversation, ids)):
            found.append(request)
    return found


def _names_any(text: str, needles: Iterable[str]) -> bool:
    return any(needle and needle in text for needle in needles)


def _row(obj: Any) -> Dict[str, Any]:
    """A model row as JSON-ready data, without secret columns."""
    return {c.name: to_jsonable(getattr(obj, c.key if hasattr(c, "key") else c.name))
            for c in obj.__table__.columns if c.name not in NEVER_EXPORTED}


def export_account_data(deps: Deps, subject: DataSubject,
                        extra_conversations: Sequence[str] = ()) -> Dict[str, Any]:
    """Everything the account store holds about the subject, JSON-ready (see module docstring)."""
    with read_session(deps.session_factory) as session:
        data: Dict[str, Any] = {"account": None}
        account_id = subject.account_id
        conversations = set(subject.conversation_ids) | set(extra_conversations)
        if account_id is not None:
            account = session.get(Account, account_id)
            data["account"] = _row(account)
            for key, model in (("members", Member), ("services", Service), ("invoices", Invoice),
                               ("payments", Payment), ("audit_events", AuditEvent), ("invitations", Invitation)):
                data[key] = [_row(r) for r in session.execute(
                    sa.select(model).where(model.account_id == account_id).order_by(model.id)).scalars()]
        requests = _support_requests(session, account_id, subject.chat_identities, conversations)
        data["support_requests"] = [
            dict(_row(r), messages=[_row(m) for m in session.execute(
                sa.select(SupportRequestMessage).where(SupportRequestMessage.support_request_id == r.id)
                .order_by(SupportRequestMessage.id)).scalars()])
            for r in requests]
        data["channel_links"] = [_row(r) for r in _links(session, subject)]
        outbox = []
        for r in _outbox(session, subject):
            row = _row(r)
            row["payload"] = redact_payload(r.payload or {})
            outbox.append(row)
        data["emails"] = outbox
        return data


def _links(session: Session, subject: DataSubject) -> List[ChannelLink]:
    where = [sa.and_(ChannelLink.channel == c, ChannelLink.channel_user_id == u) for c, u in subject.chat_identities]
    if subject.account_id is not None:
        where.append(ChannelLink.account_id == subject.account_id)
    if not where:
        return []
    return list(session.execute(sa.select(ChannelLink).where(sa.or_(*where)).order_by(ChannelLink.id)).scalars())


def _outbox(session: Session, subject: DataSubject) -> List[OutboxNotification]:
    where = []
    if subject.account_id is not None:
        where.append(OutboxNotification.account_id == subject.account_id)
    if subject.emails and (subject.account_closed or subject.account_id is None):
        where.append(OutboxNotification.recipient_email.in_(subject.emails))
    if not where:
        return []
    return list(session.execute(sa.select(OutboxNotification).where(sa.or_(*where))
                                .order_by(OutboxNotification.id)).scalars())


def erase_account_data(deps: Deps, subject: DataSubject, *, actor: str,
                       extra_conversations: Sequence[str] = ()) -> ErasureReport:
    """Erase the subject's personal data from the account store in one transaction (see module docstring).

    Args:
        deps: Injected dependencies (session factory, clock, token generator).
        subject: From :func:`find_subject`.
        actor: Who erases, for the audit event (``operator:cli``, ``console:<lead>``).
        extra_conversations: Conversation ids found in the tracker store.
    """
    pseudonym = "erased-" + hashlib.sha256(deps.tokens().encode()).hexdigest()[:12]
    conversations = sorted(set(subject.conversation_ids) | set(extra_conversations))
    chat_ids = sorted({user for _, user in subject.chat_identities})
    counts: Dict[str, int] = {}
    now = deps.now()
    with write_session(deps.session_factory) as session:
        sqlite = session.get_bind().dialect.name == "sqlite"
        if sqlite:
            session.execute(sa.text("PRAGMA secure_delete=ON"))
        account_id = subject.account_id
        account = session.get(Account, account_id) if account_id is not None else None
        closed = account is not None and account.status == "closed"

        requests = _support_requests(session, account_id, subject.chat_identities, conversations)
        for request in requests:
            request.summary = ERASED
            request.context = {"erased": True}
            request.contact_email = None
            for message in session.execute(sa.select(SupportRequestMessage).where(
                    SupportRequestMessage.support_request_id == request.id)).scalars():
                message.text = ERASED
        counts["support_requests"] = len(requests)

        links = _links(session, subject)
        for link in links:
            session.delete(link)
        counts["channel_links"] = len(links)

        code_where = [sa.and_(VerificationCode.channel == c, VerificationCode.channel_user_id == u)
                      for c, u in subject.chat_identities]
        if account_id is not None:
            code_where.append(sa.and_(VerificationCode.account_id == account_id,
                                      sa.true() if closed else VerificationCode.channel_user_id.is_not(None)))
        counts["codes"] = _delete(session, VerificationCode, sa.or_(*code_where)) if code_where else 0

        outbox = _outbox(session, subject)
        for row in outbox:
            session.delete(row)
        counts["emails"] = len(outbox)

        proof_where = [TfaPendingProof.conversation_id.in_(conversations)] if conversations else []
        if account_id is not None:
            proof_where.append(TfaPendingProof.account_id == account_id)
        counts["pending_proofs"] = _delete(session, TfaPendingProof, sa.or_(*proof_where)) if proof_where else 0

        keys = [IdempotencyRecord.key.startswith(f"{c}:", autoescape=True) for c in conversations]
        counts["idempotency_records"] = _delete(session, IdempotencyRecord, sa.or_(*keys)) if keys else 0

        replacements = {value: pseudonym for value in conversations + chat_ids}
        if closed:
            for n, address in enumerate(subject.emails):
                replacements[address] = f"{pseudonym}-{n}@{ERASED_DOMAIN}"
        counts["audit_events"] = _pseudonymise_audit(session, account_id, conversations, replacements)

        if closed:
            _pseudonymise_closed_account(session, account, subject, replacements, pseudonym)
        session.flush()
        session.add(AuditEvent(account_id=account_id, actor=actor, action="erase_personal_data",
                               outcome="succeeded", at=now,
                               details={"pseudonym": pseudonym, "account_pseudonymised": closed,
                                        "conversations": len(conversations), **counts}))
    if sqlite:
        _vacuum(deps)
    return ErasureReport(pseudonym=pseudonym, account_id=subject.account_id,
                         account_pseudonymised=closed, counts=counts)


def record_export(deps: Deps, subject: DataSubject, *, actor: str, conversations: int) -> None:
    """Audit that the subject's data was exported (``export_personal_data``; counts, no personal data)."""
    with write_session(deps.session_factory) as session:
        session.add(AuditEvent(account_id=subject.account_id, actor=actor, action="export_personal_data",
                               outcome="succeeded", at=deps.now(),
                               details={"conversations": conversations,
                                        "chat_identities": len(subject.chat_identities)}))


def _vacuum(deps: Deps) -> None:
    """Rewrite a SQLite file so no free page keeps erased data (outside any transaction)."""
    with deps.session_factory() as session:
        engine = session.get_bind()
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("VACUUM")
        cursor.close()
    finally:
        raw.close()


def _delete(session: Session, model: Any, where: Any) -> int:
    return session.execute(sa.delete(model).where(where).execution_options(synchronize_session=False)).rowcount


def _replace_all(text: str, replacements: Mapping[str, str]) -> str:
    for old in sorted(replacements, key=len, reverse=True):
        text = text.replace(old, replacements[old])
    return text


def _pseudonymise_audit(session: Session, account_id: Optional[int], conversations: Sequence[str],
                        replacements: Mapping[str, str]) -> int:
    """Replace the subject's identifiers in their audit events; return how many changed."""
    where = [AuditEvent.idempotency_key.startswith(f"{c}:", autoescape=True) for c in conversations]
    if account_id is not None:
        where.append(AuditEvent.account_id == account_id)
    if not where or not replacements:
        return 0
    changed = 0
    for event in session.execute(sa.select(AuditEvent).where(sa.or_(*where))).scalars():
        details = json.dumps(event.details or {}, sort_keys=True)
        new_details = _replace_all(details, replacements)
        new_actor = _replace_all(event.actor, replacements)
        new_key = _replace_all(event.idempotency_key, replacements) if event.idempotency_key else None
        if (new_details, new_actor, new_key) != (details, event.actor, event.idempotency_key):
            event.details = json.loads(new_details)
            event.actor = new_actor
            event.idempotency_key = new_key
            changed += 1
    return changed


def _pseudonymise_closed_account(session: Session, account: Account, subject: DataSubject,
                                 replacements: Mapping[str, str], pseudonym: str) -> None:
    """A closed account keeps its facts (invoices, audit) under a pseudonym; its personal data goes."""
    account.primary_email = replacements.get(account.primary_email, f"{pseudonym}@{ERASED_DOMAIN}")
    account.company_name = account.registration_number = account.vat_id = account.company_address = None
    members = list(session.execute(sa.select(Member).where(Member.account_id == account.id)).scalars())
    for member in members:
        member.email = replacements.get(member.email, f"{pseudonym}-m{member.id}@{ERASED_DOMAIN}")
        member.password_hash = None
    for invitation in session.execute(sa.select(Invitation).where(Invitation.account_id == account.id)).scalars():
        invitation.email = replacements.get(invitation.email, f"{pseudonym}-i{invitation.id}@{ERASED_DOMAIN}")
    member_ids = [m.id for m in members]
    if member_ids:
        _delete(session, PasswordResetToken, PasswordResetToken.member_id.in_(member_ids))
        _delete(session, TfaEnrollmentToken, TfaEnrollmentToken.member_id.in_(member_ids))
        enrolments = [e.id for e in session.execute(
            sa.select(TfaEnrolment.id).where(TfaEnrolment.member_id.in_(member_ids))).scalars()]
        if enrolments:
            _delete(session, TfaRecoveryCode, TfaRecoveryCode.enrolment_id.in_(enrolments))
            _delete(session, TfaEnrolment, TfaEnrolment.id.in_(enrolments))
    _delete(session, SecurityReportToken, SecurityReportToken.account_id == account.id)
    hashes = [hash_secret(e) for e in subject.emails]
    if hashes:
        _delete(session, PasswordResetAttempt, PasswordResetAttempt.email_hash.in_(hashes))
