"""Demo data: one account per branch of the rules, loaded idempotently.

``python -m accounts demo`` (or :func:`load_demo`) creates each account of
:data:`DEMO_ACCOUNTS` unless an account with that primary e-mail exists, so
running it twice changes nothing. Each account's owner has the account's
primary e-mail.

**Demo-only secrets (never use them outside a demo database):**

* ``tfa@demo.example`` has TFA enabled with the fixed TOTP secret
  :data:`DEMO_TOTP_SECRET` (``DEMOTFADEMOTFADEMOTFADEMOTFADEMO``, base32;
  add it to any authenticator app) and the recovery codes
  :data:`DEMO_RECOVERY_CODES` (stored hashed, like real ones). Step-up asks
  for a code of that app; "I lost my authenticator app" takes one recovery
  code plus an e-mailed code and mails a ``/tfa/enroll`` link. After such a
  demo, :func:`reset_demo_tfa` (``python -m accounts demo-reset-tfa``) puts
  the demo secret and the 8 codes back.
* The pending invitation of ``invited@demo.example`` has a random token that
  is thrown away; invite someone again to get a usable link.

Because those secrets are published, the start-up preparation
(``python -m accounts prepare``, run by ``make run`` and the local cluster)
loads the demo accounts only into the default SQLite file or where
``DEMO_DATA=1`` (:func:`demo_data_wanted`); ``python -m accounts demo`` loads
them by hand into any store.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Iterable, List, Mapping, Optional, Sequence, Tuple

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from accounts.db import write_session
from accounts.deps import Clock, TokenGenerator, secret_token, utc_now
from accounts.models import (
    Account,
    Invitation,
    Invoice,
    Member,
    Payment,
    Service,
    TfaEnrolment,
    TfaRecoveryCode,
)
from accounts.security import hash_secret
from accounts.settings import default_db_url

DEMO_TOTP_SECRET = "DEMOTFADEMOTFADEMOTFADEMOTFADEMO"
DEMO_RECOVERY_CODES: Tuple[str, ...] = tuple(f"DEMO-RECOVERY-{i:02d}" for i in range(1, 9))


@dataclass(frozen=True)
class DemoAccount:
    """A demo account's primary e-mail and what it demonstrates."""

    email: str
    description: str


DEMO_ACCOUNTS: Tuple[DemoAccount, ...] = (
    DemoAccount("clean@demo.example", "Personal EUR account with nothing blocking: can close, change currency, go business."),
    DemoAccount("unpaid@demo.example", "Unpaid invoice DEMO-0001 (49.00 EUR): closing and going business are refused."),
    DemoAccount("services@demo.example", "Two active services: closing is refused until they are cancelled."),
    DemoAccount("payments@demo.example", "Past payment on a paid invoice: currency change is refused."),
    DemoAccount("negative@demo.example", "Balance -25.00 USD: currency change and going business are refused."),
    DemoAccount(
        "business@demo.example",
        "Business account (Demo Widgets GmbH) with owner, admin@, member@ and invited@demo.example.",
    ),
    DemoAccount(
        "tfa@demo.example",
        "TFA enabled with the demo TOTP secret and 8 demo recovery codes: step-up by app, lost-app recovery.",
    ),
    DemoAccount("closing@demo.example", "Closure requested at load time: can be undone within the 14-day grace period."),
)


@dataclass(frozen=True)
class DemoLoadReport:
    """Which demo accounts were created and which were already there."""

    created: Tuple[str, ...]
    skipped: Tuple[str, ...]


def _account(session: Session, email: str, now: datetime, **fields: object) -> Account:
    account = Account(
        primary_email=email,
        kind=fields.pop("kind", "personal"),
        currency=fields.pop("currency", "EUR"),
        status=fields.pop("status", "active"),
        payment_method=fields.pop("payment_method", "card"),
        balance=fields.pop("balance", Decimal("0.00")),
        created_at=now,
        **fields,
    )
    session.add(account)
    session.flush()
    session.add(Member(account_id=account.id, email=email, role="owner", status="active", joined_at=now, created_at=now))
    session.flush()
    return account


def _services(session: Session, account: Account, now: datetime, items: Iterable[Tuple[str, str]]) -> None:
    for name, status in items:
        session.add(
            Service(
                account_id=account.id,
                name=name,
                status=status,
                created_at=now,
                cancelled_at=now if status == "cancelled" else None,
            )
        )


def _build(session: Session, email: str, now: datetime, tokens: TokenGenerator) -> None:
    today = now.date()
    if email == "clean@demo.example":
        account = _account(session, email, now)
        _services(session, account, now, [("Starter plan", "cancelled")])
    elif email == "unpaid@demo.example":
        account = _account(session, email, now)
        _services(session, account, now, [("Starter plan", "cancelled")])
        session.add(
            Invoice(
                account_id=account.id, number="DEMO-0001", amount=Decimal("49.00"), currency="EUR",
                status="unpaid", issued_at=now, due_date=today + timedelta(days=14),
            )
        )
    elif email == "services@demo.example":
        account = _account(session, email, now)
        _services(session, account, now, [("Cloud VPS S", "active"), ("Backup 100 GB", "active")])
    elif email == "payments@demo.example":
        account = _account(session, email, now)
        invoice = Invoice(
            account_id=account.id, number="DEMO-0002", amount=Decimal("19.00"), currency="EUR",
            status="paid", issued_at=now - timedelta(days=40), due_date=today - timedelta(days=26),
            paid_at=now - timedelta(days=30),
        )
        session.add(invoice)
        session.flush()
        session.add(
            Payment(account_id=account.id, invoice_id=invoice.id, amount=Decimal("19.00"), currency="EUR",
                    paid_at=now - timedelta(days=30))
        )
    elif email == "negative@demo.example":
        _account(session, email, now, currency="USD", balance=Decimal("-25.00"))
    elif email == "business@demo.example":
        account = _account(
            session, email, now, kind="business", payment_method="wire_transfer",
            company_name="Demo Widgets GmbH", registration_number="HRB 123456",
            vat_id="DE123456789", company_address="Musterstrasse 1, 10115 Berlin, Germany",
        )
        owner = session.execute(sa.select(Member).where(Member.account_id == account.id)).scalar_one()
        for member_email, role in (("admin@demo.example", "admin"), ("member@demo.example", "member")):
            session.add(Member(account_id=account.id, email=member_email, role=role, status="active",
                               invited_at=now, invited_by_member_id=owner.id, joined_at=now, created_at=now))
        invited = Member(account_id=account.id, email="invited@demo.example", role="member", status="invited",
                         invited_at=now, invited_by_member_id=owner.id, created_at=now)
        session.add(invited)
        session.flush()
        session.add(
            Invitation(account_id=account.id, member_id=invited.id, email=invited.email, role="member",
                       token_hash=hash_secret(tokens()), invited_by_member_id=owner.id, created_at=now,
                       expires_at=now + timedelta(days=7))
        )
    elif email == "tfa@demo.example":
        account = _account(session, email, now)
        owner = session.execute(sa.select(Member).where(Member.account_id == account.id)).scalar_one()
        enrolment = TfaEnrolment(member_id=owner.id, secret=DEMO_TOTP_SECRET, enabled=True, created_at=now)
        enrolment.recovery_codes = [TfaRecoveryCode(code_hash=hash_secret(c)) for c in DEMO_RECOVERY_CODES]
        session.add(enrolment)
    elif email == "closing@demo.example":
        _account(session, email, now, status="closing", closing_requested_at=now,
                 grace_period_ends_at=now + timedelta(days=14))
    else:  # pragma: no cover - DEMO_ACCOUNTS and this function go together
        raise ValueError(email)


#: ``1`` loads the demo accounts at start-up into a store other than the default SQLite file.
DEMO_DATA_ENV = "DEMO_DATA"


def demo_data_wanted(url: str, environ: Optional[Mapping[str, str]] = None) -> bool:
    """Whether start-up loads the demo accounts into ``url``: the default SQLite file, or ``DEMO_DATA=1``.

    Args:
        url: The account store's URL.
        environ: Mapping to read ``DEMO_DATA`` from; defaults to ``os.environ``.
    """
    env = os.environ if environ is None else environ
    if (env.get(DEMO_DATA_ENV) or "").strip().lower() in ("1", "true", "yes", "on"):
        return True
    return url == default_db_url()


def load_demo(
    session_factory: sessionmaker,
    *,
    clock: Clock = utc_now,
    tokens: TokenGenerator = secret_token,
    only: Optional[Sequence[str]] = None,
) -> DemoLoadReport:
    """Create the demo accounts that are missing, in one transaction.

    Args:
        session_factory: Factory from :func:`accounts.db.make_session_factory`
            (database already migrated).
        clock: Time used for created_at, due dates, expiries.
        tokens: Generator for the (discarded) demo invitation token.
        only: Restrict to these primary e-mails.

    Returns:
        The report of created and skipped accounts.
    """
    now = clock()
    wanted = [d.email for d in DEMO_ACCOUNTS if only is None or d.email in only]
    created: List[str] = []
    skipped: List[str] = []
    with write_session(session_factory) as session:
        existing = set(
            session.execute(sa.select(Account.primary_email).where(Account.primary_email.in_(wanted))).scalars()
        )
        for email in wanted:
            if email in existing:
                skipped.append(email)
                continue
            _build(session, email, now, tokens)
            created.append(email)
    return DemoLoadReport(created=tuple(created), skipped=tuple(skipped))


def demo_account_id(session_factory: sessionmaker, email: str) -> Optional[int]:
    """Return the id of the demo account with this primary e-mail, if loaded.

    Args:
        session_factory: Session factory.
        email: Primary e-mail from :data:`DEMO_ACCOUNTS`.

    Returns:
        The account id or None.
    """
    with session_factory() as session:
        return session.execute(sa.select(Account.id).where(Account.primary_email == email)).scalar_one_or_none()


def reset_demo_tfa(session_factory: sessionmaker, *, clock: Clock = utc_now) -> bool:
    """Put ``tfa@demo.example`` back to its documented TFA state after a recovery demo.

    Restores the demo TOTP secret (enabled, no accepted step), the 8 demo
    recovery codes (unused), revokes unused enrolment links and clears the
    account's failure counters. Demo databases only.

    Args:
        session_factory: Session factory of a migrated database with the demo loaded.
        clock: Time for the revocations.

    Returns:
        False if the demo account is not there.
    """
    from accounts.models import TfaEnrollmentToken, VerificationFailure

    now = clock()
    with write_session(session_factory) as session:
        owner = session.execute(
            sa.select(Member).join(Account, Account.id == Member.account_id)
            .where(Account.primary_email == "tfa@demo.example", Member.email == "tfa@demo.example")
        ).scalar_one_or_none()
        if owner is None:
            return False
        enrolment = session.execute(
            sa.select(TfaEnrolment).where(TfaEnrolment.member_id == owner.id)
        ).scalar_one_or_none()
        if enrolment is None:
            enrolment = TfaEnrolment(member_id=owner.id, secret=DEMO_TOTP_SECRET, enabled=True, created_at=now)
            session.add(enrolment)
            session.flush()
        session.execute(sa.delete(TfaRecoveryCode).where(TfaRecoveryCode.enrolment_id == enrolment.id))
        enrolment.secret = DEMO_TOTP_SECRET
        enrolment.enabled = True
        enrolment.revoked_at = None
        enrolment.last_accepted_step = None
        for code in DEMO_RECOVERY_CODES:
            session.add(TfaRecoveryCode(enrolment_id=enrolment.id, code_hash=hash_secret(code)))
        session.execute(
            sa.update(TfaEnrollmentToken)
            .where(TfaEnrollmentToken.member_id == owner.id, TfaEnrollmentToken.used_at.is_(None),
                   TfaEnrollmentToken.revoked_at.is_(None))
            .values(revoked_at=now, pending_secret=None)
        )
        session.execute(sa.delete(VerificationFailure).where(VerificationFailure.account_id == owner.account_id))
        return True
