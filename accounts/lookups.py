"""Read-only answers about an account's state, for questions such as "what's my currency?".

Rules:

* Any active member of the account may read its state (owners, admins and
  members alike): the answers show nothing a member cannot see in the portal.
* Nothing here writes, locks or starts an operation; every function opens one
  read transaction and returns a value (or a refusal) the caller puts in words.
* Open support requests are the account's requests with status ``open``, newest
  first, as customer-facing references (``SR-000042``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Optional, Tuple, Union

import sqlalchemy as sa

from accounts.db import read_session
from accounts.deps import Actor, Deps
from accounts.guards import unpaid_invoices
from accounts.models import Account, Member, Service, SupportRequest
from accounts.results import InvoiceRef, Reason, Refused, ServiceRef, support_reference
from accounts.security import normalize_email


@dataclass(frozen=True)
class AccountState:
    """What a member may ask about their account, read in one transaction."""

    account_id: int
    status: str
    kind: str
    currency: str
    balance: Decimal
    grace_period_ends_at: Optional[datetime]
    closed_at: Optional[datetime]
    unpaid_invoices: Tuple[InvoiceRef, ...]
    active_services: Tuple[ServiceRef, ...]
    open_support_requests: Tuple[str, ...]

    @property
    def amount_owed(self) -> Decimal:
        """What the customer owes: unpaid invoices in the account currency plus a negative balance."""
        owed = sum((i.amount for i in self.unpaid_invoices if i.currency == self.currency), Decimal("0"))
        return owed + (-self.balance if self.balance < 0 else Decimal("0"))


def account_state(deps: Deps, actor: Actor) -> Union[AccountState, Refused]:
    """Read the actor's account: status, currency, balance, unpaid invoices, services, requests.

    Args:
        deps: Injected dependencies.
        actor: The verified member asking.

    Returns:
        :class:`AccountState`, or :class:`Refused` with ``account_not_found`` or
        ``not_permitted`` (the actor is not an active member of the account).
    """
    with read_session(deps.session_factory) as session:
        account = session.get(Account, actor.account_id)
        if account is None:
            return Refused(reason=Reason.ACCOUNT_NOT_FOUND, details={"account_id": actor.account_id})
        member = session.execute(sa.select(Member).where(
            Member.account_id == account.id,
            Member.email == normalize_email(actor.member_email))).scalar_one_or_none()
        if member is None or member.status != "active":
            return Refused(reason=Reason.NOT_PERMITTED, details={"required_roles": [], "role": None})
        requests = session.execute(
            sa.select(SupportRequest.id)
            .where(SupportRequest.account_id == account.id, SupportRequest.status == "open")
            .order_by(SupportRequest.id.desc())).scalars()
        return AccountState(
            account_id=account.id,
            status=account.status,
            kind=account.kind,
            currency=account.currency,
            balance=Decimal(account.balance),
            grace_period_ends_at=account.grace_period_ends_at,
            closed_at=account.closed_at,
            unpaid_invoices=tuple(unpaid_invoices(session, account.id, lock=False)),
            active_services=tuple(_active_services(session, account.id)),
            open_support_requests=tuple(support_reference(i) for i in requests),
        )


def _active_services(session: sa.orm.Session, account_id: int) -> Tuple[ServiceRef, ...]:
    """The account's active services, by id (guards.active_services locks them; this only reads)."""
    rows = session.execute(sa.select(Service).where(
        Service.account_id == account_id, Service.status == "active").order_by(Service.id)).scalars()
    return tuple(ServiceRef(id=s.id, name=s.name) for s in rows)


def support_request_status(deps: Deps, support_request_id: int) -> Optional[str]:
    """The status of a support request (``open``, ``in_progress``, ``resolved``), None if unknown."""
    with read_session(deps.session_factory) as session:
        request = session.get(SupportRequest, support_request_id)
        return request.status if request is not None else None
