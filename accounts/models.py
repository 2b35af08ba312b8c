"""Database models of the account domain (SQLAlchemy 1.4, 2.0-style declarative).

Enumerated columns are plain strings guarded by CHECK constraints (portable, and
easy to extend in a migration); the allowed values are module constants.
Timestamps are aware UTC (:class:`accounts.dbtypes.UTCDateTime`), money is exact
(:class:`accounts.dbtypes.Money`).

Secrets are never stored raw: invitation, password-reset and recovery-code
values are stored as SHA-256 hashes (:func:`accounts.security.hash_secret`).
The one exception is the TOTP secret of a TFA enrolment, which must be readable
to verify codes (encrypt the column at rest in production).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Dict, List, Optional

import sqlalchemy as sa
from sqlalchemy.orm import declarative_base, relationship

from accounts.dbtypes import JSONType, Money, UTCDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
Base = declarative_base(metadata=metadata)

ACCOUNT_KINDS = ("personal", "business")
ACCOUNT_STATUSES = ("active", "closing", "closed")
PAYMENT_METHODS = ("card", "wire_transfer")
MEMBER_ROLES = ("owner", "admin", "member")
MEMBER_STATUSES = ("invited", "active", "disabled")
SERVICE_STATUSES = ("active", "cancelled")
INVOICE_STATUSES = ("paid", "unpaid")
SUPPORT_REQUEST_STATUSES = ("open", "in_progress", "resolved")
#: Where a support request is in its delivery to the helpdesk (:mod:`accounts.helpdesk_dispatch`).
DELIVERY_STATUSES = ("pending", "delivered", "failed")
#: Who wrote a message of a handed-over conversation.
MESSAGE_AUTHORS = ("customer", "agent", "assistant")
#: Length of ``support_requests.released_by`` (``helpdesk``, ``console:<reviewer>``).
RELEASED_BY_LENGTH = 100
DELIVERY_PENDING = "delivery_status = 'pending'"
MESSAGE_PENDING = "delivered_at IS NULL AND failed_at IS NULL"
AUDIT_OUTCOMES = ("succeeded", "refused")

EMAIL_LENGTH = 320
OUTBOX_ERROR_LENGTH = 500
OUTBOX_PENDING = "sent_at IS NULL AND failed_at IS NULL"


def _in(column: str, values: tuple) -> str:
    quoted = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({quoted})"


class Account(Base):
    """A customer account: personal or business, with its billing currency and status."""

    __tablename__ = "accounts"
    __table_args__ = (
        sa.CheckConstraint(_in("kind", ACCOUNT_KINDS), name="kind"),
        sa.CheckConstraint(_in("status", ACCOUNT_STATUSES), name="status"),
        sa.CheckConstraint(_in("payment_method", PAYMENT_METHODS), name="payment_method"),
        sa.CheckConstraint("length(currency) = 3", name="currency_code"),
        sa.Index("ix_accounts_status_grace_period_ends_at", "status", "grace_period_ends_at"),
    )

    id: int = sa.Column(sa.Integer, primary_key=True)
    kind: str = sa.Column(sa.String(16), nullable=False, default="personal")
    currency: str = sa.Column(sa.String(3), nullable=False)
    status: str = sa.Column(sa.String(16), nullable=False, default="active")
    primary_email: str = sa.Column(sa.String(EMAIL_LENGTH), nullable=False, unique=True)
    company_name: Optional[str] = sa.Column(sa.String(200))
    registration_number: Optional[str] = sa.Column(sa.String(64))
    vat_id: Optional[str] = sa.Column(sa.String(32))
    company_address: Optional[str] = sa.Column(sa.String(500))
    payment_method: str = sa.Column(sa.String(16), nullable=False, default="card")
    balance: Decimal = sa.Column(Money, nullable=False, default=Decimal("0.00"))
    closing_requested_at: Optional[datetime] = sa.Column(UTCDateTime)
    grace_period_ends_at: Optional[datetime] = sa.Column(UTCDateTime)
    closed_at: Optional[datetime] = sa.Column(UTCDateTime)
    created_at: datetime = sa.Column(UTCDateTime, nullable=False)

    members: List["Member"] = relationship("Member", back_populates="account")
    services: List["Service"] = relationship("Service", back_populates="account")
    invoices: List["Invoice"] = relationship("Invoice", back_populates="account")


class Member(Base):
    """A person with access to an account, with a role and a lifecycle status."""

    __tablename__ = "members"
    __table_args__ = (
        sa.UniqueConstraint("account_id", "email"),
        sa.CheckConstraint(_in("role", MEMBER_ROLES), name="role"),
        sa.CheckConstraint(_in("status", MEMBER_STATUSES), name="status"),
        sa.Index("ix_members_email", "email"),
        sa.Index("ix_members_account_id_role_status", "account_id", "role", "status"),
    )

    id: int = sa.Column(sa.Integer, primary_key=True)
    account_id: int = sa.Column(sa.ForeignKey("accounts.id"), nullable=False)
    email: str = sa.Column(sa.String(EMAIL_LENGTH), nullable=False)
    role: str = sa.Column(sa.String(16), nullable=False)
    status: str = sa.Column(sa.String(16), nullable=False)
    invited_at: Optional[datetime] = sa.Column(UTCDateTime)
    invited_by_member_id: Optional[int] = sa.Column(sa.ForeignKey("members.id"))
    joined_at: Optional[datetime] = sa.Column(UTCDateTime)
    disabled_at: Optional[datetime] = sa.Column(UTCDateTime)
    password_hash: Optional[str] = sa.Column(sa.String(255))
    created_at: datetime = sa.Column(UTCDateTime, nullable=False)

    account: Account = relationship("Account", back_populates="members")


class Invitation(Base):
    """A single-use, expiring invitation for a member; only the token's hash is stored."""

    __tablename__ = "invitations"
    __table_args__ = (sa.Index("ix_invitations_member_id", "member_id"),)

    id: int = sa.Column(sa.Integer, primary_key=True)
    account_id: int = sa.Column(sa.ForeignKey("accounts.id"), nullable=False, index=True)
    member_id: int = sa.Column(sa.ForeignKey("members.id"), nullable=False)
    email: str = sa.Column(sa.String(EMAIL_LENGTH), nullable=False)
    role: str = sa.Column(sa.String(16), nullable=False)
    token_hash: str = sa.Column(sa.String(64), nullable=False, unique=True)
    invited_by_member_id: Optional[int] = sa.Column(sa.ForeignKey("members.id"))
    created_at: datetime = sa.Column(UTCDateTime, nullable=False)
    expires_at: datetime = sa.Column(UTCDateTime, nullable=False)
    accepted_at: Optional[datetime] = sa.Column(UTCDateTime)
    revoked_at: Optional[datetime] = sa.Column(UTCDateTime)


class Service(Base):
    """A subscribed service; it must be cancelled before the account can close."""

    __tablename__ = "services"
    __table_args__ = (
        sa.CheckConstraint(_in("status", SERVICE_STATUSES), name="status"),
        sa.Index("ix_services_account_id_status", "account_id", "status"),
    )

    id: int = sa.Column(sa.Integer, primary_key=True)
    account_id: int = sa.Column(sa.ForeignKey("accounts.id"), nullable=False)
    name: str = sa.Column(sa.String(200), nullable=False)
    status: str = sa.Column(sa.String(16), nullable=False, default="active")
    created_at: datetime = sa.Column(UTCDateTime, nullable=False)
    cancelled_at: Optional[datetime] = sa.Column(UTCDateTime)

    account: Account = relationship("Account", back_populates="services")


class Invoice(Base):
    """A bill; an unpaid one blocks closure and the switch to business."""

    __tablename__ = "invoices"
    __table_args__ = (
        sa.CheckConstraint(_in("status", INVOICE_STATUSES), name="status"),
        sa.CheckConstraint("length(currency) = 3", name="currency_code"),
        sa.Index("ix_invoices_account_id_status", "account_id", "status"),
    )

    id: int = sa.Column(sa.Integer, primary_key=True)
    account_id: int = sa.Column(sa.ForeignKey("accounts.id"), nullable=False)
    number: str = sa.Column(sa.String(64), nullable=False, unique=True)
    amount: Decimal = sa.Column(Money, nullable=False)
    currency: str = sa.Column(sa.String(3), nullable=False)
    status: str = sa.Column(sa.String(16), nullable=False)
    issued_at: datetime = sa.Column(UTCDateTime, nullable=False)
    due_date: date = sa.Column(sa.Date, nullable=False)
    paid_at: Optional[datetime] = sa.Column(UTCDateTime)

    account: Account = relationship("Account", back_populates="invoices")


class Payment(Base):
    """A payment received; any payment blocks a currency change."""

    __tablename__ = "payments"
    __table_args__ = (sa.CheckConstraint("length(currency) = 3", name="currency_code"),)

    id: int = sa.Column(sa.Integer, primary_key=True)
    account_id: int = sa.Column(sa.ForeignKey("accounts.id"), nullable=False, index=True)
    invoice_id: Optional[int] = sa.Column(sa.ForeignKey("invoices.id"))
    amount: Decimal = sa.Column(Money, nullable=False)
    currency: str = sa.Column(sa.String(3), nullable=False)
    paid_at: datetime = sa.Column(UTCDateTime, nullable=False)


class TfaEnrolment(Base):
    """A member's TOTP enrolment; ``last_accepted_step`` prevents code replay.

    ``last_accepted_step`` is the highest 30-second time step whose code was
    accepted; it only moves forward, by an atomic compare-and-set
    (:func:`accounts.codes.verify_totp`). A lost-app recovery revokes the
    enrolment at once: ``enabled`` false, ``secret`` blanked, ``revoked_at``
    set; the remaining recovery codes stay usable until a new app is enrolled.
    """

    __tablename__ = "tfa_enrolments"

    id: int = sa.Column(sa.Integer, primary_key=True)
    member_id: int = sa.Column(sa.ForeignKey("members.id"), nullable=False, unique=True)
    secret: str = sa.Column(sa.String(64), nullable=False)
    last_accepted_step: Optional[int] = sa.Column(sa.BigInteger)
    enabled: bool = sa.Column(sa.Boolean, nullable=False, default=False)
    created_at: datetime = sa.Column(UTCDateTime, nullable=False)
    revoked_at: Optional[datetime] = sa.Column(UTCDateTime)

    recovery_codes: List["TfaRecoveryCode"] = relationship(
        "TfaRecoveryCode", back_populates="enrolment", cascade="all, delete-orphan"
    )


class TfaRecoveryCode(Base):
    """A single-use recovery code of a TFA enrolment, stored hashed."""

    __tablename__ = "tfa_recovery_codes"
    __table_args__ = (sa.UniqueConstraint("enrolment_id", "code_hash"),)

    id: int = sa.Column(sa.Integer, primary_key=True)
    enrolment_id: int = sa.Column(
        sa.ForeignKey("tfa_enrolments.id", ondelete="CASCADE"), nullable=False
    )
    code_hash: str = sa.Column(sa.String(64), nullable=False)
    used_at: Optional[datetime] = sa.Column(UTCDateTime)

    enrolment: TfaEnrolment = relationship("TfaEnrolment", back_populates="recovery_codes")


class PasswordResetToken(Base):
    """A single-use, expiring password-reset token of a member, stored hashed."""

    __tablename__ = "password_reset_tokens"

    id: int = sa.Column(sa.Integer, primary_key=True)
    member_id: int = sa.Column(sa.ForeignKey("members.id"), nullable=False, index=True)
    token_hash: str = sa.Column(sa.String(64), nullable=False, unique=True)
    created_at: datetime = sa.Column(UTCDateTime, nullable=False)
    expires_at: datetime = sa.Column(UTCDateTime, nullable=False)
    used_at: Optional[datetime] = sa.Column(UTCDateTime)


class PasswordResetAttempt(Base):
    """One accepted password-reset request, for rate limiting.

    Recorded for known and unknown addresses alike; the address is stored as
    a SHA-256 hash so unknown addresses are not kept in clear.
    """

    __tablename__ = "password_reset_attempts"
    __table_args__ = (
        sa.Index("ix_password_reset_attempts_email_hash_requested_at", "email_hash", "requested_at"),
    )

    id: int = sa.Column(sa.Integer, primary_key=True)
    email_hash: str = sa.Column(sa.String(64), nullable=False)
    requested_at: datetime = sa.Column(UTCDateTime, nullable=False)


class AuditEvent(Base):
    """Who did what to which account, with which outcome. Never holds secrets."""

    __tablename__ = "audit_events"
    __table_args__ = (
        sa.CheckConstraint(_in("outcome", AUDIT_OUTCOMES), name="outcome"),
        sa.Index("ix_audit_events_account_id_at", "account_id", "at"),
        sa.Index("ix_audit_events_action", "action"),
    )

    id: int = sa.Column(sa.Integer, primary_key=True)
    account_id: Optional[int] = sa.Column(sa.ForeignKey("accounts.id"))
    actor: str = sa.Column(sa.String(400), nullable=False)
    action: str = sa.Column(sa.String(64), nullable=False)
    outcome: str = sa.Column(sa.String(16), nullable=False)
    details: Dict[str, Any] = sa.Column(JSONType, nullable=False, default=dict)
    idempotency_key: Optional[str] = sa.Column(sa.String(200))
    at: datetime = sa.Column(UTCDateTime, nullable=False)


class OutboxNotification(Base):
    """A message to send to a customer, written in the same transaction as the change.

    Payload keys starting with ``secret_`` (e.g. ``secret_link``) carry values
    that must be e-mailed but never logged; see :mod:`accounts.outbox`.

    Delivery (:mod:`accounts.dispatch`): a row is pending while ``sent_at`` and
    ``failed_at`` are both empty and is due once ``next_attempt_at`` (empty =
    at once) has passed; every failed attempt increments ``attempts`` and keeps
    a short, secret-free ``last_error``.
    """

    __tablename__ = "outbox_notifications"
    __table_args__ = (
        sa.Index("ix_outbox_notifications_sent_at_id", "sent_at", "id"),
        sa.Index("ix_outbox_notifications_account_id", "account_id"),
        sa.Index(
            "ix_outbox_notifications_pending", "id", "next_attempt_at",
            postgresql_where=sa.text(OUTBOX_PENDING), sqlite_where=sa.text(OUTBOX_PENDING),
        ),
    )

    id: int = sa.Column(sa.Integer, primary_key=True)
    account_id: Optional[int] = sa.Column(sa.ForeignKey("accounts.id"))
    recipient_email: str = sa.Column(sa.String(EMAIL_LENGTH), nullable=False)
    kind: str = sa.Column(sa.String(64), nullable=False)
    payload: Dict[str, Any] = sa.Column(JSONType, nullable=False, default=dict)
    created_at: datetime = sa.Column(UTCDateTime, nullable=False)
    sent_at: Optional[datetime] = sa.Column(UTCDateTime)
    attempts: int = sa.Column(sa.Integer, nullable=False, default=0, server_default="0")
    next_attempt_at: Optional[datetime] = sa.Column(UTCDateTime)
    last_error: Optional[str] = sa.Column(sa.String(OUTBOX_ERROR_LENGTH))
    failed_at: Optional[datetime] = sa.Column(UTCDateTime)


class SupportRequest(Base):
    """A request handed to human support, stored before anyone is told about it."""

    __tablename__ = "support_requests"
    __table_args__ = (
        sa.CheckConstraint(_in("status", SUPPORT_REQUEST_STATUSES), name="status"),
        sa.Index("ix_support_requests_status_created_at", "status", "created_at"),
        sa.Index("ix_support_requests_account_id", "account_id"),
        sa.CheckConstraint(_in("delivery_status", DELIVERY_STATUSES), name="delivery_status"),
        sa.Index(
            "ix_support_requests_delivery_due", "id", "next_attempt_at",
            postgresql_where=sa.text(DELIVERY_PENDING), sqlite_where=sa.text(DELIVERY_PENDING),
        ),
    )

    id: int = sa.Column(sa.Integer, primary_key=True)
    account_id: Optional[int] = sa.Column(sa.ForeignKey("accounts.id"))
    channel: str = sa.Column(sa.String(32), nullable=False)
    reason: str = sa.Column(sa.String(64), nullable=False)
    summary: str = sa.Column(sa.Text, nullable=False)
    context: Dict[str, Any] = sa.Column(JSONType, nullable=False, default=dict)
    contact_email: Optional[str] = sa.Column(sa.String(EMAIL_LENGTH))
    status: str = sa.Column(sa.String(16), nullable=False, default="open")
    created_at: datetime = sa.Column(UTCDateTime, nullable=False)
    # Delivery to the helpdesk (revision 0004_helpdesk_delivery, accounts.helpdesk_dispatch).
    delivery_status: str = sa.Column(sa.String(16), nullable=False, default="pending", server_default="pending")
    attempts: int = sa.Column(sa.Integer, nullable=False, default=0, server_default="0")
    next_attempt_at: Optional[datetime] = sa.Column(UTCDateTime)
    last_error: Optional[str] = sa.Column(sa.String(OUTBOX_ERROR_LENGTH))
    delivered_at: Optional[datetime] = sa.Column(UTCDateTime)
    helpdesk_ticket_id: Optional[str] = sa.Column(sa.String(64))
    helpdesk_url: Optional[str] = sa.Column(sa.String(500))
    # Release by a person (revision 0005_handoff_release): the paused conversation
    # goes back to the assistant (supportbot.handoff_thread.handoff_released).
    released_at: Optional[datetime] = sa.Column(UTCDateTime)
    released_by: Optional[str] = sa.Column(sa.String(RELEASED_BY_LENGTH))


class SupportRequestMessage(Base):
    """A message of a handed-over conversation, delivered to the helpdesk ticket as a comment.

    ``text`` is redacted by the caller. Customer and assistant messages are
    pending until ``delivered_at`` (same retry columns as the request); agent
    messages come from the helpdesk and are stored delivered.
    """

    __tablename__ = "support_request_messages"
    __table_args__ = (
        sa.CheckConstraint(_in("author", MESSAGE_AUTHORS), name="author"),
        sa.Index("ix_support_request_messages_support_request_id_id", "support_request_id", "id"),
        sa.Index(
            "ix_support_request_messages_pending", "id", "next_attempt_at",
            postgresql_where=sa.text(MESSAGE_PENDING), sqlite_where=sa.text(MESSAGE_PENDING),
        ),
    )

    id: int = sa.Column(sa.Integer, primary_key=True)
    support_request_id: int = sa.Column(sa.ForeignKey("support_requests.id"), nullable=False)
    author: str = sa.Column(sa.String(16), nullable=False)
    text: str = sa.Column(sa.Text, nullable=False)
    created_at: datetime = sa.Column(UTCDateTime, nullable=False)
    delivered_at: Optional[datetime] = sa.Column(UTCDateTime)
    attempts: int = sa.Column(sa.Integer, nullable=False, default=0, server_default="0")
    next_attempt_at: Optional[datetime] = sa.Column(UTCDateTime)
    last_error: Optional[str] = sa.Column(sa.String(OUTBOX_ERROR_LENGTH))
    failed_at: Optional[datetime] = sa.Column(UTCDateTime)


class IdempotencyRecord(Base):
    """The stored result of a successful operation, keyed by the caller's idempotency key.

    ``request_hash`` fingerprints operation, actor and parameters so a reused key
    with different parameters is detected; secrets are hashed before fingerprinting
    and never appear in ``result``.
    """

    __tablename__ = "idempotency_records"

    id: int = sa.Column(sa.Integer, primary_key=True)
    key: str = sa.Column(sa.String(200), nullable=False, unique=True)
    operation: str = sa.Column(sa.String(64), nullable=False)
    request_hash: str = sa.Column(sa.String(64), nullable=False)
    result: Optional[Dict[str, Any]] = sa.Column(JSONType)
    created_at: datetime = sa.Column(UTCDateTime, nullable=False)


# --------------------------------------------------------------------------- verification
# One-time codes, failure counters, step-up grants, channel links, TFA
# enrolment links and "this was not me" reports (revision 0003_verification).

#: What an e-mailed one-time code is for.
CODE_PURPOSES = ("channel_link", "step_up", "tfa_recovery")
#: Authenticators whose failures are counted per account.
AUTHENTICATOR_KINDS = ("totp", "email_code", "recovery_code", "tfa_enrollment")
#: Sensitive operations that need a step-up grant.
STEP_UP_OPERATIONS = ("close_account", "change_currency", "disable_member", "switch_to_business",
                      "invite_member")
#: Authenticators that can produce a step-up grant.
STEP_UP_AUTHENTICATORS = ("totp", "email_code")
#: Security events a "this was not me" link can report.
REPORT_EVENTS = ("tfa_reset", "channel_linked")
#: Factors that proved a channel link: the e-mailed code, plus the app for a member with TFA on.
LINK_AUTHENTICATORS = ("email_code", "email_code+totp")
CHANNEL_LENGTH = 32
CHANNEL_USER_ID_LENGTH = 200
#: Longest conversation (sender) id a pending proof or a step-up grant records.
CONVERSATION_LENGTH = 255
ACTIVE_LINK = "revoked_at IS NULL"


class VerificationCode(Base):
    """A one-time code e-mailed to a member, stored as a salted SHA-256 hash.

    Single use (``used_at``), expiring (``expires_at``), with its own count of
    wrong ``attempts``; ``revoked_at`` is set when a newer code of the same
    subject replaces it or when it had too many wrong attempts. A step-up code
    is bound to one ``operation``; a channel-link code to one
    (``channel``, ``channel_user_id``).
    """

    __tablename__ = "verification_codes"
    __table_args__ = (
        sa.CheckConstraint(_in("purpose", CODE_PURPOSES), name="purpose"),
        sa.Index("ix_verification_codes_account_id_purpose_created_at", "account_id", "purpose", "created_at"),
        sa.Index("ix_verification_codes_channel_channel_user_id", "channel", "channel_user_id"),
    )

    id: int = sa.Column(sa.Integer, primary_key=True)
    account_id: int = sa.Column(sa.ForeignKey("accounts.id"), nullable=False)
    member_id: int = sa.Column(sa.ForeignKey("members.id"), nullable=False)
    purpose: str = sa.Column(sa.String(32), nullable=False)
    operation: Optional[str] = sa.Column(sa.String(64))
    channel: Optional[str] = sa.Column(sa.String(CHANNEL_LENGTH))
    channel_user_id: Optional[str] = sa.Column(sa.String(CHANNEL_USER_ID_LENGTH))
    recipient_email: str = sa.Column(sa.String(EMAIL_LENGTH), nullable=False)
    code_salt: str = sa.Column(sa.String(32), nullable=False)
    code_hash: str = sa.Column(sa.String(64), nullable=False)
    attempts: int = sa.Column(sa.Integer, nullable=False, default=0)
    created_at: datetime = sa.Column(UTCDateTime, nullable=False)
    expires_at: datetime = sa.Column(UTCDateTime, nullable=False)
    used_at: Optional[datetime] = sa.Column(UTCDateTime)
    revoked_at: Optional[datetime] = sa.Column(UTCDateTime)
    #: A link code proved right for a member with TFA, waiting for the app's code.
    proved_at: Optional[datetime] = sa.Column(UTCDateTime)


class VerificationFailure(Base):
    """Consecutive failed codes of one account and authenticator, and when to accept the next.

    A success resets the count; sending a new code does not.
    """

    __tablename__ = "verification_failures"
    __table_args__ = (
        sa.UniqueConstraint("account_id", "authenticator"),
        sa.CheckConstraint(_in("authenticator", AUTHENTICATOR_KINDS), name="authenticator"),
    )

    id: int = sa.Column(sa.Integer, primary_key=True)
    account_id: int = sa.Column(sa.ForeignKey("accounts.id"), nullable=False)
    authenticator: str = sa.Column(sa.String(32), nullable=False)
    failures: int = sa.Column(sa.Integer, nullable=False, default=0)
    last_failure_at: Optional[datetime] = sa.Column(UTCDateTime)
    next_allowed_at: Optional[datetime] = sa.Column(UTCDateTime)


class StepUpGrant(Base):
    """Proof of a fresh second factor, good for one sensitive operation, once, for minutes."""

    __tablename__ = "step_up_grants"
    __table_args__ = (
        sa.CheckConstraint(_in("operation", STEP_UP_OPERATIONS), name="operation"),
        sa.CheckConstraint(_in("authenticator", STEP_UP_AUTHENTICATORS), name="authenticator"),
        sa.Index("ix_step_up_grants_account_id_member_id_operation", "account_id", "member_id", "operation"),
    )

    id: int = sa.Column(sa.Integer, primary_key=True)
    account_id: int = sa.Column(sa.ForeignKey("accounts.id"), nullable=False)
    member_id: int = sa.Column(sa.ForeignKey("members.id"), nullable=False)
    operation: str = sa.Column(sa.String(64), nullable=False)
    authenticator: str = sa.Column(sa.String(32), nullable=False)
    created_at: datetime = sa.Column(UTCDateTime, nullable=False)
    expires_at: datetime = sa.Column(UTCDateTime, nullable=False)
    consumed_at: Optional[datetime] = sa.Column(UTCDateTime)
    #: The conversation the factor was proved in; only that conversation can use the grant.
    conversation_id: Optional[str] = sa.Column(sa.String(CONVERSATION_LENGTH))
    #: SHA-256 of the operation's bound parameters (which currency, which user).
    params_sha256: Optional[str] = sa.Column(sa.String(64))


class ChannelLink(Base):
    """A chat identity (channel + the channel's user id) linked to a member of an account.

    At most one link per chat identity is active (``revoked_at`` empty, a
    partial unique index); a link stops counting at ``expires_at``.
    """

    __tablename__ = "channel_links"
    __table_args__ = (
        sa.Index(
            "ix_channel_links_active_channel_user", "channel", "channel_user_id", unique=True,
            postgresql_where=sa.text(ACTIVE_LINK), sqlite_where=sa.text(ACTIVE_LINK),
        ),
        sa.Index("ix_channel_links_account_id", "account_id"),
    )

    id: int = sa.Column(sa.Integer, primary_key=True)
    channel: str = sa.Column(sa.String(CHANNEL_LENGTH), nullable=False)
    channel_user_id: str = sa.Column(sa.String(CHANNEL_USER_ID_LENGTH), nullable=False)
    account_id: int = sa.Column(sa.ForeignKey("accounts.id"), nullable=False)
    member_id: int = sa.Column(sa.ForeignKey("members.id"), nullable=False)
    member_email: str = sa.Column(sa.String(EMAIL_LENGTH), nullable=False)
    created_at: datetime = sa.Column(UTCDateTime, nullable=False)
    expires_at: datetime = sa.Column(UTCDateTime, nullable=False)
    revoked_at: Optional[datetime] = sa.Column(UTCDateTime)
    #: The factors that made the link; a link made without the app stops when the member turns TFA on.
    authenticators: str = sa.Column(sa.String(32), nullable=False, default="email_code",
                                    server_default="email_code")


class TfaEnrollmentToken(Base):
    """A single-use link (hash only) to enrol a new authenticator app after a recovery.

    ``pending_secret`` is the new TOTP secret shown on the enrolment page; it
    becomes the enrolment's secret only after a valid code from the new app.
    """

    __tablename__ = "tfa_enrollment_tokens"

    id: int = sa.Column(sa.Integer, primary_key=True)
    account_id: int = sa.Column(sa.ForeignKey("accounts.id"), nullable=False)
    member_id: int = sa.Column(sa.ForeignKey("members.id"), nullable=False, index=True)
    token_hash: str = sa.Column(sa.String(64), nullable=False, unique=True)
    pending_secret: Optional[str] = sa.Column(sa.String(64))
    created_at: datetime = sa.Column(UTCDateTime, nullable=False)
    expires_at: datetime = sa.Column(UTCDateTime, nullable=False)
    used_at: Optional[datetime] = sa.Column(UTCDateTime)
    revoked_at: Optional[datetime] = sa.Column(UTCDateTime)


class SecurityReportToken(Base):
    """A single-use "this was not me" link (hash only) sent with a security notice."""

    __tablename__ = "security_report_tokens"
    __table_args__ = (
        sa.CheckConstraint(_in("event", REPORT_EVENTS), name="event"),
        sa.Index("ix_security_report_tokens_account_id", "account_id"),
    )

    id: int = sa.Column(sa.Integer, primary_key=True)
    account_id: int = sa.Column(sa.ForeignKey("accounts.id"), nullable=False)
    recipient_email: str = sa.Column(sa.String(EMAIL_LENGTH), nullable=False)
    event: str = sa.Column(sa.String(32), nullable=False)
    token_hash: str = sa.Column(sa.String(64), nullable=False, unique=True)
    created_at: datetime = sa.Column(UTCDateTime, nullable=False)
    expires_at: datetime = sa.Column(UTCDateTime, nullable=False)
    used_at: Optional[datetime] = sa.Column(UTCDateTime)
    #: For ``channel_linked`` notices: the link the report unlinks.
    channel_link_id: Optional[int] = sa.Column(sa.ForeignKey("channel_links.id"))


# --------------------------------------------------------------------------- pending proofs
# The first proof of a lost-TFA recovery, between two messages (revision 0006_pending_proofs).


class TfaPendingProof(Base):
    """A recovery code a conversation presented, remembered by reference, never by value.

    Step one of a lost-TFA recovery checks the typed recovery code against the
    stored hashes without using it up and records only which row matched
    (``recovery_code_id``; NULL when none did, which step two refuses without
    saying which proof was wrong). Step two judges the pending proof once,
    together with the e-mailed code, in one transaction (``attempts``,
    ``closed_at``). Any action server can do either step: nothing lives in
    a process. A newer pending proof of the same conversation and member
    closes the older one.
    """

    __tablename__ = "tfa_pending_proofs"
    __table_args__ = (
        sa.Index("ix_tfa_pending_proofs_conversation_id_member_id", "conversation_id", "member_id"),
    )

    id: int = sa.Column(sa.Integer, primary_key=True)
    conversation_id: str = sa.Column(sa.String(CONVERSATION_LENGTH), nullable=False)
    account_id: int = sa.Column(sa.ForeignKey("accounts.id"), nullable=False)
    member_id: int = sa.Column(sa.ForeignKey("members.id"), nullable=False)
    recovery_code_id: Optional[int] = sa.Column(
        sa.ForeignKey("tfa_recovery_codes.id", ondelete="SET NULL")
    )
    created_at: datetime = sa.Column(UTCDateTime, nullable=False)
    expires_at: datetime = sa.Column(UTCDateTime, nullable=False)
    attempts: int = sa.Column(sa.Integer, nullable=False, default=0, server_default="0")
    closed_at: Optional[datetime] = sa.Column(UTCDateTime)


# --------------------------------------------------------------------------- failures per source
# Wrong codes from sources that are not (yet) an account's member (revision 0007_security_domain).

#: Longest source key (``channel_link:<channel>:<sha256 of the channel user id>``).
SOURCE_LENGTH = 120


class SourceFailure(Base):
    """Wrong codes counted per unauthenticated source (a chat identity), or globally.

    A chat identity guessing link codes is slowed down on its own row and on
    the global row (``channel_link:*``), never on the account's own counters,
    so a stranger can never lock an owner out of step-up or recovery.
    ``window_started_at`` starts the global row's fixed counting window.
    """

    __tablename__ = "source_failures"
    __table_args__ = (sa.UniqueConstraint("source"),)

    id: int = sa.Column(sa.Integer, primary_key=True)
    source: str = sa.Column(sa.String(SOURCE_LENGTH), nullable=False)
    failures: int = sa.Column(sa.Integer, nullable=False, default=0)
    window_started_at: Optional[datetime] = sa.Column(UTCDateTime)
    last_failure_at: Optional[datetime] = sa.Column(UTCDateTime)
    next_allowed_at: Optional[datetime] = sa.Column(UTCDateTime)
# --------------------------------------------------------------------------- scheduled jobs
# One lease per periodic job and one row per run (revision 0008_scheduled_jobs).

#: How a run of a scheduled job ended.
JOB_OUTCOMES = ("succeeded", "failed")
JOB_NAME_LENGTH = 64


class JobLease(Base):
    """Who runs a periodic job now, until when, and when it last finished.

    A scheduler takes the lease in a short write transaction (the row locked:
    ``FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite) only when
    nobody holds it (``leased_until`` empty or past) and the job is due; a
    scheduler that dies holding it loses it when ``leased_until`` passes.
    """

    __tablename__ = "job_leases"

    name: str = sa.Column(sa.String(JOB_NAME_LENGTH), primary_key=True)
    holder: Optional[str] = sa.Column(sa.String(200))
    leased_until: Optional[datetime] = sa.Column(UTCDateTime)
    last_started_at: Optional[datetime] = sa.Column(UTCDateTime)
    last_finished_at: Optional[datetime] = sa.Column(UTCDateTime)


class JobRun(Base):
    """One run of a periodic job: who ran it, when, how it ended, what it did (counts only)."""

    __tablename__ = "job_runs"
    __table_args__ = (
        sa.CheckConstraint(_in("outcome", JOB_OUTCOMES), name="outcome"),
        sa.Index("ix_job_runs_name_started_at", "name", "started_at"),
    )

    id: int = sa.Column(sa.Integer, primary_key=True)
    name: str = sa.Column(sa.String(JOB_NAME_LENGTH), nullable=False)
    holder: str = sa.Column(sa.String(200), nullable=False)
    started_at: datetime = sa.Column(UTCDateTime, nullable=False)
    finished_at: datetime = sa.Column(UTCDateTime, nullable=False)
    outcome: str = sa.Column(sa.String(16), nullable=False)
    details: Dict[str, Any] = sa.Column(JSONType, nullable=False, default=dict)
