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
AUDIT_OUTCOMES = ("succeeded", "refused")

EMAIL_LENGTH = 320


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
    """A member's TOTP enrolment; ``last_accepted_step`` prevents code replay."""

    __tablename__ = "tfa_enrolments"

    id: int = sa.Column(sa.Integer, primary_key=True)
    member_id: int = sa.Column(sa.ForeignKey("members.id"), nullable=False, unique=True)
    secret: str = sa.Column(sa.String(64), nullable=False)
    last_accepted_step: Optional[int] = sa.Column(sa.BigInteger)
    enabled: bool = sa.Column(sa.Boolean, nullable=False, default=False)
    created_at: datetime = sa.Column(UTCDateTime, nullable=False)

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
    """

    __tablename__ = "outbox_notifications"
    __table_args__ = (
        sa.Index("ix_outbox_notifications_sent_at_id", "sent_at", "id"),
        sa.Index("ix_outbox_notifications_account_id", "account_id"),
    )

    id: int = sa.Column(sa.Integer, primary_key=True)
    account_id: Optional[int] = sa.Column(sa.ForeignKey("accounts.id"))
    recipient_email: str = sa.Column(sa.String(EMAIL_LENGTH), nullable=False)
    kind: str = sa.Column(sa.String(64), nullable=False)
    payload: Dict[str, Any] = sa.Column(JSONType, nullable=False, default=dict)
    created_at: datetime = sa.Column(UTCDateTime, nullable=False)
    sent_at: Optional[datetime] = sa.Column(UTCDateTime)


class SupportRequest(Base):
    """A request handed to human support, stored before anyone is told about it."""

    __tablename__ = "support_requests"
    __table_args__ = (
        sa.CheckConstraint(_in("status", SUPPORT_REQUEST_STATUSES), name="status"),
        sa.Index("ix_support_requests_status_created_at", "status", "created_at"),
        sa.Index("ix_support_requests_account_id", "account_id"),
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
