"""Result values of the operations: what happened, or exactly why not.

Every operation returns a :class:`Result`. A success is a specific frozen
dataclass (:class:`ClosureRequested`, :class:`MemberInvited`, ...); a refusal
is a :class:`Refused` carrying a machine-readable :class:`Reason` plus the data
the assistant needs to explain it (the unpaid invoices, the active services,
the allowed currencies...). Refusals are returned, never raised; exceptions are
kept for bugs and infrastructure failures.

All results are JSON-serialisable: ``Result.from_dict(r.to_dict()) == r``.
Fields marked secret (the raw invitation token) are left out with
``to_dict(include_secrets=False)``, which is how results are stored for
idempotent replays.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any, ClassVar, Dict, Mapping, Optional, Tuple, Type, TypeVar

_REGISTRY: Dict[str, Type["Result"]] = {}

T = TypeVar("T")


class Reason(str, Enum):
    """Why an operation was refused (stable codes; the assistant maps them to words)."""

    # generic
    NOT_PERMITTED = "not_permitted"
    ACCOUNT_NOT_FOUND = "account_not_found"
    ACCOUNT_NOT_ACTIVE = "account_not_active"
    ACCOUNT_CLOSED = "account_closed"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    INVALID_REQUEST = "invalid_request"
    # closing
    UNPAID_INVOICES = "unpaid_invoices"
    ACTIVE_SERVICES = "active_services"
    ALREADY_CLOSING = "already_closing"
    NOT_CLOSING = "not_closing"
    GRACE_PERIOD_OVER = "grace_period_over"
    # currency
    PAYMENTS_EXIST = "payments_exist"
    NEGATIVE_BALANCE = "negative_balance"
    UNSUPPORTED_CURRENCY = "unsupported_currency"
    SAME_CURRENCY = "same_currency"
    # members
    INVALID_EMAIL = "invalid_email"
    INVALID_ROLE = "invalid_role"
    ALREADY_MEMBER = "already_member"
    ALREADY_INVITED = "already_invited"
    MEMBER_NOT_FOUND = "member_not_found"
    ALREADY_DISABLED = "already_disabled"
    CANNOT_DISABLE_SELF = "cannot_disable_self"
    CANNOT_DISABLE_OWNER = "cannot_disable_owner"
    LAST_OWNER = "last_owner"
    # tokens (invitations, password resets)
    INVALID_TOKEN = "invalid_token"
    TOKEN_EXPIRED = "token_expired"
    TOKEN_USED = "token_used"
    TOKEN_REVOKED = "token_revoked"
    # business
    ALREADY_BUSINESS = "already_business"
    INVALID_VAT_ID = "invalid_vat_id"
    MISSING_COMPANY_DETAILS = "missing_company_details"
    # password reset
    RATE_LIMITED = "rate_limited"
    # verification (codes, step-up, channel links, TFA recovery)
    CODE_INVALID = "code_invalid"
    CODE_EXPIRED = "code_expired"
    CODE_USED = "code_used"
    NO_CODE_PENDING = "no_code_pending"
    TOO_MANY_ATTEMPTS = "too_many_attempts"
    STEP_UP_REQUIRED = "step_up_required"
    UNSUPPORTED_OPERATION = "unsupported_operation"
    LINK_NOT_FOUND = "link_not_found"
    NO_RECOVERY_CODES = "no_recovery_codes"
    TFA_NOT_ENABLED = "tfa_not_enabled"
    #: The e-mailed link code was right; a member with TFA must add a code from the app.
    APP_CODE_REQUIRED = "app_code_required"


def _encode(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _encode(v) for k, v in value.items()}
    return value


def to_jsonable(value: Any) -> Any:
    """Return ``value`` with datetimes, dates, Decimals, enums and dataclasses made JSON-ready.

    Args:
        value: Any value built from JSON types plus those.

    Returns:
        The JSON-ready equivalent.
    """
    return _encode(value)


def _decode(tp: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union:
        inner = [a for a in args if a is not type(None)]
        return _decode(inner[0], value)
    if origin is tuple:
        return tuple(_decode(args[0], v) for v in value)
    if origin is not None:  # Mapping[...] etc.: JSON data as is
        return value
    if tp is datetime:
        return datetime.fromisoformat(value)
    if tp is date:
        return date.fromisoformat(value)
    if tp is Decimal:
        return Decimal(value)
    if isinstance(tp, type) and issubclass(tp, Enum):
        return tp(value)
    if dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        return tp(**{f.name: _decode(hints[f.name], value.get(f.name)) for f in dataclasses.fields(tp) if f.name in value})
    return value


@dataclass(frozen=True)
class InvoiceRef:
    """An invoice as shown to the customer."""

    number: str
    amount: Decimal
    currency: str
    due_date: date


@dataclass(frozen=True)
class ServiceRef:
    """A service as shown to the customer."""

    id: int
    name: str


@dataclass(frozen=True)
class Result:
    """Base of all results; ``ok`` tells success from refusal."""

    ok: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _REGISTRY[cls.__name__] = cls

    def to_dict(self, include_secrets: bool = True) -> Dict[str, Any]:
        """Return a JSON-ready dict with a ``type`` discriminator.

        Args:
            include_secrets: Whether fields marked secret are included (else None).

        Returns:
            The dict.
        """
        data: Dict[str, Any] = {"type": type(self).__name__}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.metadata.get("secret") and not include_secrets:
                value = None
            data[f.name] = _encode(value)
        return data

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> "Result":
        """Rebuild a result from :meth:`to_dict` output.

        Args:
            data: The dict, with its ``type`` key.

        Returns:
            The result object.

        Raises:
            ValueError: If the type is unknown.
        """
        cls = _REGISTRY.get(str(data.get("type")))
        if cls is None:
            raise ValueError(f"unknown result type {data.get('type')!r}")
        decoded = _decode(cls, {k: v for k, v in data.items() if k != "type"})
        return typing.cast(Result, decoded)


@dataclass(frozen=True)
class Refused(Result):
    """The operation did nothing, because of ``reason``.

    Attributes:
        reason: The first blocking condition.
        blocking: Every blocking condition found (``reason`` first).
        invoices: Unpaid invoices that block, if relevant.
        services: Active services that block, if relevant.
        details: Further facts for the explanation (e.g. ``required_roles``,
            ``supported_currencies``, ``retry_after_seconds``), as JSON values:
            amounts are strings (``"-25.00"``), times ISO 8601 strings.
        support_request_id: Set when a support request was opened instead.
    """

    ok: ClassVar[bool] = False

    reason: Reason
    blocking: Tuple[Reason, ...] = ()
    invoices: Tuple[InvoiceRef, ...] = ()
    services: Tuple[ServiceRef, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)
    support_request_id: Optional[int] = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason", Reason(self.reason))
        blocking = tuple(Reason(b) for b in self.blocking) or (self.reason,)
        object.__setattr__(self, "blocking", blocking)
        object.__setattr__(self, "invoices", tuple(self.invoices))
        object.__setattr__(self, "services", tuple(self.services))
        object.__setattr__(self, "details", _encode(dict(self.details)))


@dataclass(frozen=True)
class ClosureRequested(Result):
    """The account is ``closing``; it closes at ``grace_period_ends_at`` unless undone."""

    account_id: int
    grace_period_ends_at: datetime


@dataclass(frozen=True)
class ClosureUndone(Result):
    """The closure request was withdrawn; the account is ``active`` again."""

    account_id: int


@dataclass(frozen=True)
class ClosuresFinalized(Result):
    """These accounts' grace periods ended and they are now ``closed``."""

    account_ids: Tuple[int, ...]


@dataclass(frozen=True)
class CurrencyChanged(Result):
    """The account's currency changed."""

    account_id: int
    old_currency: str
    new_currency: str


@dataclass(frozen=True)
class MemberInvited(Result):
    """An invitation was created and e-mailed.

    Attributes:
        token: The raw invitation token, for the caller only; it is never stored
            and is None when the result is replayed for a retried key (the
            e-mail with the link is already in the outbox).
    """

    account_id: int
    email: str
    role: str
    invitation_id: int
    expires_at: datetime
    token: Optional[str] = field(default=None, metadata={"secret": True}, repr=False)


@dataclass(frozen=True)
class InvitationAccepted(Result):
    """The invited person is now an active member."""

    account_id: int
    email: str
    role: str


@dataclass(frozen=True)
class MemberDisabled(Result):
    """The member can no longer access the account."""

    account_id: int
    email: str


@dataclass(frozen=True)
class SwitchedToBusiness(Result):
    """The account is now a business account paying by wire transfer."""

    account_id: int
    company_name: str
    vat_id: str
    payment_method: str


@dataclass(frozen=True)
class PasswordResetRequested(Result):
    """Same answer whether or not the address exists: if it does, a link was e-mailed."""

    expires_in_minutes: int


@dataclass(frozen=True)
class PasswordChanged(Result):
    """The reset token was used and the new password set."""

    email: str


@dataclass(frozen=True)
class SupportRequestCreated(Result):
    """A support request was stored; ``reference`` can be quoted to the customer."""

    support_request_id: int
    reference: str


def support_reference(support_request_id: int) -> str:
    """Return the customer-facing reference of a support request (``SR-000042``)."""
    return f"SR-{support_request_id:06d}"


# --------------------------------------------------------------------------- verification
# Results of accounts.codes, accounts.step_up, accounts.channel_links and
# accounts.tfa_recovery. Secret fields are marked and never stored.


@dataclass(frozen=True)
class LinkCodeSent(Result):
    """Same answer whether or not the address belongs to an account: if it does, a code was e-mailed."""

    expires_in_minutes: int


@dataclass(frozen=True)
class ChannelLinked(Result):
    """The chat identity now acts as this member until ``expires_at`` (or revocation)."""

    link_id: int
    channel: str
    account_id: int
    member_email: str
    expires_at: datetime


@dataclass(frozen=True)
class LinkRef:
    """An active channel link as listed to the customer."""

    link_id: int
    channel: str
    channel_user_id: str
    member_email: str
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class ChannelLinks(Result):
    """The active links the actor may see (own links; owners see the whole account's)."""

    links: Tuple[LinkRef, ...]


@dataclass(frozen=True)
class LinkRevoked(Result):
    """The link no longer identifies anyone."""

    link_id: int


@dataclass(frozen=True)
class StepUpStarted(Result):
    """Which second factor to ask for: ``totp`` (authenticator app) or ``email_code`` (just sent).

    Attributes:
        expires_in_minutes: Lifetime of the e-mailed code; None for ``totp``.
    """

    operation: str
    method: str
    expires_in_minutes: Optional[int] = None


@dataclass(frozen=True)
class StepUpGranted(Result):
    """The actor may perform ``operation`` once before ``expires_at``."""

    operation: str
    grant_id: int
    expires_at: datetime


@dataclass(frozen=True)
class StepUpConsumed(Result):
    """A grant was used up for ``operation``."""

    operation: str
    grant_id: int


@dataclass(frozen=True)
class TfaRecoveryStarted(Result):
    """A code was e-mailed; next ask for it and for one saved recovery code."""

    expires_in_minutes: int


@dataclass(frozen=True)
class TfaRecoveryCompleted(Result):
    """The old authenticator is revoked; an enrolment link was e-mailed; every address was told."""

    enrollment_expires_at: datetime
    notified_addresses: int


@dataclass(frozen=True)
class EnrollmentStarted(Result):
    """The new secret to show on the enrolment page (never in a chat); not active yet.

    Attributes:
        secret: Base32 TOTP secret (None in a stored replay).
        provisioning_uri: ``otpauth://`` URI for the QR code (None in a replay).
    """

    member_email: str
    expires_at: datetime
    secret: Optional[str] = field(default=None, metadata={"secret": True}, repr=False)
    provisioning_uri: Optional[str] = field(default=None, metadata={"secret": True}, repr=False)


@dataclass(frozen=True)
class TfaEnrolled(Result):
    """The new authenticator is active; ``recovery_codes`` are shown once (None in a replay)."""

    member_email: str
    recovery_codes: Optional[Tuple[str, ...]] = field(default=None, metadata={"secret": True}, repr=False)


@dataclass(frozen=True)
class NotMeReported(Result):
    """The report was recorded, pending enrolment links revoked and a support request opened."""

    support_request_id: int
    reference: str
