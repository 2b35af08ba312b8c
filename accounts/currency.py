"""Changing the account currency.

Rules (FAQ: "possible in case of absence of payments and absence of adverse
balance"):

* Only active **owners and admins** may change it, and only on an ``active``
  account.
* The new code must be in :data:`SUPPORTED_CURRENCIES` and differ from the
  current one.
* No payment may ever have been made and the balance must not be negative.
  The refusal names every blocking condition (``payments_exist``,
  ``negative_balance``) with the facts (payment count, balance).

The balance amount is kept as is; with no payments it is normally zero.
Existing invoices keep the currency they were issued in.
"""

from __future__ import annotations

from typing import List, Optional, Union

from sqlalchemy.orm import Session

from accounts.db import read_session
from accounts.deps import Actor, Deps
from accounts.models import Account
from accounts.guards import OWNER_OR_ADMIN, load_locked_account, payment_count, require_role
from accounts.operation import OperationContext, run_operation
from accounts.results import CurrencyChanged, Reason, Refused, Result
from accounts.step_up import consume_grant

#: ISO 4217 codes an account may use, in display order.
SUPPORTED_CURRENCIES = (
    "EUR", "USD", "GBP", "CHF", "PLN", "CZK", "SEK", "NOK", "DKK", "CAD", "AUD", "JPY",
)


def _account_refusal(session: Session, account: Account) -> Optional[Refused]:
    """Why this account's currency cannot change, or None (the FAQ's rule)."""
    if account.status != "active":
        return Refused(reason=Reason.ACCOUNT_NOT_ACTIVE, details={"status": account.status})
    payments = payment_count(session, account.id)
    blocking: List[Reason] = []
    if payments:
        blocking.append(Reason.PAYMENTS_EXIST)
    if account.balance < 0:
        blocking.append(Reason.NEGATIVE_BALANCE)
    if blocking:
        return Refused(
            reason=blocking[0],
            blocking=tuple(blocking),
            details={"payment_count": payments, "balance": account.balance, "currency": account.currency},
        )
    return None


def check_currency_change(deps: Deps, actor: Actor) -> Union[str, Refused]:
    """Tell, without changing anything, whether the actor may change the currency now.

    Args:
        deps: Injected dependencies.
        actor: The verified acting member.

    Returns:
        The account's current currency code if a change is possible, else the
        refusal :func:`change_currency` would return for any new currency.
    """
    with read_session(deps.session_factory) as session:
        account = session.get(Account, actor.account_id)
        if account is None:
            return Refused(reason=Reason.ACCOUNT_NOT_FOUND, details={"account_id": actor.account_id})
        member = require_role(session, actor, OWNER_OR_ADMIN, lock=False)
        if isinstance(member, Refused):
            return member
        refusal = _account_refusal(session, account)
        return account.currency if refusal is None else refusal


def change_currency(
    deps: Deps, actor: Actor, *, currency: str, idempotency_key: str, require_step_up: bool = False,
    step_up_conversation: Optional[str] = None,
) -> Result:
    """Change the billing currency of the actor's account.

    Args:
        deps: Injected dependencies.
        actor: The verified acting member (active owner or admin).
        currency: ISO 4217 code (case and surrounding spaces ignored).
        idempotency_key: Caller's key.
        require_step_up: Refuse with ``step_up_required`` unless the actor holds a
            step-up grant for ``change_currency`` (:mod:`accounts.step_up`); the grant is
            used up in this transaction, after every other check passed; it must
            have been granted for this currency.
        step_up_conversation: The conversation that proved the step-up (the grant is bound to it).

    Returns:
        :class:`CurrencyChanged`, or :class:`Refused` with reason
        ``account_not_found``, ``not_permitted``, ``account_not_active``,
        ``unsupported_currency`` (details: ``supported_currencies``),
        ``same_currency``, ``payments_exist`` (details: ``payment_count``) or
        ``negative_balance`` (details: ``balance``, ``currency``) or
        ``step_up_required``.
    """
    code = currency.strip().upper()

    def body(ctx: OperationContext) -> Result:
        account = load_locked_account(ctx.session, actor.account_id)
        if isinstance(account, Refused):
            return account
        member = require_role(ctx.session, actor, OWNER_OR_ADMIN)
        if isinstance(member, Refused):
            return member
        if account.status != "active":
            return Refused(reason=Reason.ACCOUNT_NOT_ACTIVE, details={"status": account.status})
        if code not in SUPPORTED_CURRENCIES:
            return Refused(
                reason=Reason.UNSUPPORTED_CURRENCY,
                details={"currency": code, "supported_currencies": list(SUPPORTED_CURRENCIES)},
            )
        if code == account.currency:
            return Refused(reason=Reason.SAME_CURRENCY, details={"currency": code})
        refusal = _account_refusal(ctx.session, account)
        if refusal is not None:
            return refusal
        if require_step_up:
            refusal = consume_grant(ctx, actor, "change_currency", conversation_id=step_up_conversation,
                                    params={"currency": code})
            if refusal is not None:
                return refusal

        old = account.currency
        account.currency = code
        ctx.notify(
            account_id=account.id,
            recipient_email=account.primary_email,
            kind="currency_changed",
            payload={"old_currency": old, "new_currency": code, "changed_by": member.email},
        )
        ctx.audit(account_id=account.id, details={"old_currency": old, "new_currency": code})
        return CurrencyChanged(account_id=account.id, old_currency=old, new_currency=code)

    return run_operation(
        deps,
        operation="change_currency",
        idempotency_key=idempotency_key,
        actor=actor,
        params={"currency": code},
        body=body,
    )
