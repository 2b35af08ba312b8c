"""Shared checks and queries of the operations: locks, roles, blocking items.

Every helper here runs inside an operation's write transaction and reads
child rows with ``FOR UPDATE`` (no-op on SQLite), after the account row was
locked with :func:`accounts.db.lock_account`.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import sqlalchemy as sa
from sqlalchemy.orm import Session

from accounts.db import lock_account
from accounts.deps import Actor
from accounts.models import Account, Invoice, Member, Payment, Service
from accounts.results import InvoiceRef, Reason, Refused, ServiceRef
from accounts.security import normalize_email

OWNER_ONLY: Tuple[str, ...] = ("owner",)
OWNER_OR_ADMIN: Tuple[str, ...] = ("owner", "admin")


def find_member(session: Session, account_id: int, email: str, *, lock: bool = True) -> Optional[Member]:
    """Return the member of an account with this e-mail, if any.

    Args:
        session: The operation's session.
        account_id: The account.
        email: Address (normalised here).
        lock: Whether to lock the row ``FOR UPDATE``.

    Returns:
        The member or None.
    """
    stmt = sa.select(Member).where(
        Member.account_id == account_id, Member.email == normalize_email(email)
    )
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return session.execute(stmt).scalar_one_or_none()


def require_role(
    session: Session, actor: Actor, roles: Sequence[str], *, lock: bool = True
) -> Union[Member, Refused]:
    """Return the actor's active membership if it has one of ``roles``, else a refusal.

    Call it after locking the account, so a concurrent change of the actor's
    own membership is seen.

    Args:
        session: The operation's session.
        actor: The verified acting member.
        roles: Roles allowed to perform the operation.
        lock: Whether to lock the member row ``FOR UPDATE``.

    Returns:
        The acting :class:`Member`, or ``Refused(NOT_PERMITTED)`` with
        ``required_roles`` and the actor's ``role`` in the details.
    """
    member = find_member(session, actor.account_id, actor.member_email, lock=lock)
    if member is None or member.status != "active" or member.role not in roles:
        return Refused(
            reason=Reason.NOT_PERMITTED,
            details={
                "required_roles": list(roles),
                "role": member.role if member is not None and member.status == "active" else None,
            },
        )
    return member


def load_locked_account(session: Session, account_id: int) -> Union[Account, Refused]:
    """Lock and return the account, or ``Refused(ACCOUNT_NOT_FOUND)``.

    Args:
        session: The operation's session.
        account_id: The account.

    Returns:
        The account or the refusal.
    """
    account = lock_account(session, account_id)
    if account is None:
        return Refused(reason=Reason.ACCOUNT_NOT_FOUND, details={"account_id": account_id})
    return account


def unpaid_invoices(session: Session, account_id: int, *, lock: bool = True) -> List[InvoiceRef]:
    """Return the account's unpaid invoices, oldest due first.

    Args:
        session: The operation's session.
        account_id: The account.
        lock: Whether to lock the rows ``FOR UPDATE``.

    Returns:
        Invoice references for the refusal.
    """
    stmt = (
        sa.select(Invoice)
        .where(Invoice.account_id == account_id, Invoice.status == "unpaid")
        .order_by(Invoice.due_date, Invoice.id)
    )
    if lock:
        stmt = stmt.with_for_update()
    return [
        InvoiceRef(number=i.number, amount=i.amount, currency=i.currency, due_date=i.due_date)
        for i in session.execute(stmt).scalars()
    ]


def active_services(session: Session, account_id: int) -> List[ServiceRef]:
    """Return the account's active services (locked), by id.

    Args:
        session: The operation's session.
        account_id: The account.

    Returns:
        Service references for the refusal.
    """
    stmt = (
        sa.select(Service)
        .where(Service.account_id == account_id, Service.status == "active")
        .order_by(Service.id)
        .with_for_update()
    )
    return [ServiceRef(id=s.id, name=s.name) for s in session.execute(stmt).scalars()]


def payment_count(session: Session, account_id: int) -> int:
    """Return how many payments the account ever made.

    Args:
        session: The operation's session.
        account_id: The account.

    Returns:
        The number of payments.
    """
    stmt = sa.select(sa.func.count()).select_from(Payment).where(Payment.account_id == account_id)
    return int(session.execute(stmt).scalar_one())


def active_owner_count(session: Session, account_id: int, *, excluding_member_id: Optional[int] = None) -> int:
    """Return how many active owners the account has (owner rows locked).

    Args:
        session: The operation's session.
        account_id: The account.
        excluding_member_id: A member not to count.

    Returns:
        The count.
    """
    stmt = sa.select(Member.id).where(
        Member.account_id == account_id, Member.role == "owner", Member.status == "active"
    )
    if excluding_member_id is not None:
        stmt = stmt.where(Member.id != excluding_member_id)
    return len(session.execute(stmt.with_for_update()).scalars().all())
