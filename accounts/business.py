"""Switching a personal account to a business account.

FAQ: business accounts are for legal entities and pay by wire transfer; "if
the *Account type* radio button is grayed out, please contact" support.

**When the switch is NOT allowed** (the grayed-out radio button), in this order:

1. ``already_business`` - the account is a business account already.
2. ``account_not_active`` - the account is ``closing`` or ``closed``.
3. ``unpaid_invoices`` - an invoice is unpaid (the refusal lists them); the
   payment method changes to wire transfer, so card debts are settled first.
4. ``negative_balance`` - the balance is below zero, for the same reason.

All of these conditions that apply are listed in ``Refused.blocking``. Call
:func:`check_switch_to_business` to learn them *before* asking the customer
for company details. With ``escalate=True``, a blocked switch (except
``already_business``) opens a :class:`~accounts.models.SupportRequest` in the
same transaction and returns its id in ``Refused.support_request_id``: this is
the "contact support" path of the FAQ.

Other refusals: ``not_permitted`` (only active owners and admins may switch),
``missing_company_details`` (details: ``missing`` field names) and
``invalid_vat_id`` (details: ``vat_id``, ``country``, ``hint``).

VAT IDs are normalised (upper case, spaces, dots and dashes removed) and
format-checked with a per-country pattern for the EU member states (Greece as
``EL``, Northern Ireland as ``XI``) and ``GB``. This is a format check only;
VIES / HMRC look-ups are out of scope.

On success the account becomes ``business`` with ``payment_method`` =
``wire_transfer`` and the company fields set.
"""

from __future__ import annotations

import re
from typing import Dict, List, Optional, Tuple

from sqlalchemy.orm import Session

from accounts.db import read_session
from accounts.deps import Actor, Deps
from accounts.guards import OWNER_OR_ADMIN, load_locked_account, require_role, unpaid_invoices
from accounts.models import Account
from accounts.operation import OperationContext, run_operation
from accounts.results import InvoiceRef, Reason, Refused, Result, SwitchedToBusiness
from accounts.step_up import consume_grant
from accounts.support_requests import open_support_request

#: Per-country VAT ID patterns (after the prefix), format only.
VAT_PATTERNS: Dict[str, str] = {
    "AT": r"U\d{8}",
    "BE": r"[01]\d{9}",
    "BG": r"\d{9,10}",
    "CY": r"\d{8}[A-Z]",
    "CZ": r"\d{8,10}",
    "DE": r"\d{9}",
    "DK": r"\d{8}",
    "EE": r"\d{9}",
    "EL": r"\d{9}",
    "ES": r"[A-Z0-9]\d{7}[A-Z0-9]",
    "FI": r"\d{8}",
    "FR": r"[A-HJ-NP-Z0-9]{2}\d{9}",
    "HR": r"\d{11}",
    "HU": r"\d{8}",
    "IE": r"\d{7}[A-W][A-I]?|\d[A-Z+*]\d{5}[A-W]",
    "IT": r"\d{11}",
    "LT": r"\d{9}|\d{12}",
    "LU": r"\d{8}",
    "LV": r"\d{11}",
    "MT": r"\d{8}",
    "NL": r"\d{9}B\d{2}",
    "PL": r"\d{10}",
    "PT": r"\d{9}",
    "RO": r"\d{2,10}",
    "SE": r"\d{10}01",
    "SI": r"\d{8}",
    "SK": r"\d{10}",
    "XI": r"\d{9}|\d{12}|GD[0-4]\d{2}|HA[5-9]\d{2}",
    "GB": r"\d{9}|\d{12}|GD[0-4]\d{2}|HA[5-9]\d{2}",
}
_COMPILED = {cc: re.compile(rf"(?:{p})") for cc, p in VAT_PATTERNS.items()}

#: Reasons that grey out the switch (a support request may be opened for these).
ESCALATABLE = (Reason.ACCOUNT_NOT_ACTIVE, Reason.UNPAID_INVOICES, Reason.NEGATIVE_BALANCE)

MAX_LENGTHS = {"company_name": 200, "registration_number": 64, "company_address": 500}


def normalize_vat_id(vat_id: str) -> str:
    """Return a VAT ID upper-cased without spaces, dots and dashes.

    Args:
        vat_id: As typed, e.g. ``"de 123.456.789"``.

    Returns:
        E.g. ``"DE123456789"``.
    """
    return re.sub(r"[\s.\-]", "", vat_id).upper()


def check_vat_id(vat_id: str) -> Tuple[bool, Optional[str]]:
    """Check a VAT ID's format against its country pattern.

    Args:
        vat_id: The VAT ID (normalised here).

    Returns:
        ``(True, None)`` if valid, else ``(False, hint)`` with a short hint.
    """
    value = normalize_vat_id(vat_id)
    country, rest = value[:2], value[2:]
    if country == "GR":
        return False, "Greek VAT IDs use the prefix EL"
    pattern = _COMPILED.get(country)
    if pattern is None:
        return False, "unknown country prefix; expected an EU country code or GB"
    if not pattern.fullmatch(rest):
        return False, f"wrong format for {country}"
    return True, None


def _blockers(session: Session, account: Account, *, lock: bool = True) -> Tuple[List[Reason], List[InvoiceRef]]:
    blocking: List[Reason] = []
    if account.kind == "business":
        blocking.append(Reason.ALREADY_BUSINESS)
    if account.status != "active":
        blocking.append(Reason.ACCOUNT_NOT_ACTIVE)
    invoices = unpaid_invoices(session, account.id, lock=lock)
    if invoices:
        blocking.append(Reason.UNPAID_INVOICES)
    if account.balance < 0:
        blocking.append(Reason.NEGATIVE_BALANCE)
    return blocking, invoices


def _refusal(account: Account, blocking: List[Reason], invoices: List[InvoiceRef]) -> Refused:
    return Refused(
        reason=blocking[0],
        blocking=tuple(blocking),
        invoices=tuple(invoices),
        details={"status": account.status, "kind": account.kind, "balance": account.balance, "currency": account.currency},
    )


def check_switch_to_business(deps: Deps, actor: Actor) -> Optional[Refused]:
    """Tell, without changing anything, whether the switch is possible now.

    Args:
        deps: Injected dependencies.
        actor: The verified acting member.

    Returns:
        None if the switch is allowed (company details still to be checked),
        else the :class:`Refused` the switch would return.
    """
    with read_session(deps.session_factory) as session:
        account = session.get(Account, actor.account_id)
        if account is None:
            return Refused(reason=Reason.ACCOUNT_NOT_FOUND, details={"account_id": actor.account_id})
        member = require_role(session, actor, OWNER_OR_ADMIN, lock=False)
        if isinstance(member, Refused):
            return member
        blocking, invoices = _blockers(session, account, lock=False)
        return _refusal(account, blocking, invoices) if blocking else None


def switch_to_business(
    deps: Deps,
    actor: Actor,
    *,
    company_name: str,
    registration_number: str,
    vat_id: str,
    company_address: str,
    idempotency_key: str,
    escalate: bool = False,
    channel: str = "chat",
    require_step_up: bool = False,
    step_up_conversation: Optional[str] = None,
) -> Result:
    """Make the actor's account a business account paying by wire transfer.

    Args:
        deps: Injected dependencies.
        actor: The verified acting member (active owner or admin).
        company_name: Legal name of the company.
        registration_number: Company register number.
        vat_id: VAT ID with country prefix (format-checked).
        company_address: Registered address.
        idempotency_key: Caller's key.
        escalate: Open a support request when the switch is blocked (see module doc).
        channel: Channel recorded on that support request.
        require_step_up: Refuse with ``step_up_required`` unless the actor holds a
            step-up grant for ``switch_to_business`` (:mod:`accounts.step_up`); the grant is
            used up in this transaction, after every other check passed; it must
            have been granted for this company name and VAT ID.
        step_up_conversation: The conversation that proved the step-up (the grant is bound to it).

    Returns:
        :class:`SwitchedToBusiness`, or :class:`Refused` (reasons in the module
        docstring; ``support_request_id`` set when escalated).
    """
    fields = {
        "company_name": company_name.strip(),
        "registration_number": registration_number.strip(),
        "company_address": company_address.strip(),
    }
    vat = normalize_vat_id(vat_id)

    def body(ctx: OperationContext) -> Result:
        account = load_locked_account(ctx.session, actor.account_id)
        if isinstance(account, Refused):
            return account
        member = require_role(ctx.session, actor, OWNER_OR_ADMIN)
        if isinstance(member, Refused):
            return member
        blocking, invoices = _blockers(ctx.session, account)
        if blocking:
            refusal = _refusal(account, blocking, invoices)
            if escalate and refusal.reason in ESCALATABLE:
                ctx.audit(
                    account_id=account.id,
                    outcome="refused",
                    details={"reason": refusal.reason.value, "blocking": [b.value for b in refusal.blocking]},
                )
                request = open_support_request(
                    ctx,
                    account_id=account.id,
                    channel=channel,
                    reason="business_switch_blocked",
                    summary=(
                        "Customer asked to switch to a business account; blocked by: "
                        + ", ".join(b.value for b in refusal.blocking)
                    ),
                    context={
                        "blocking": [b.value for b in refusal.blocking],
                        "unpaid_invoices": [i.number for i in invoices],
                        "requested_by": member.email,
                        "company_name": fields["company_name"],
                        "vat_id": vat,
                    },
                    contact_email=account.primary_email,
                )
                return Refused(
                    reason=refusal.reason,
                    blocking=refusal.blocking,
                    invoices=refusal.invoices,
                    details=refusal.details,
                    support_request_id=request.id,
                )
            return refusal
        missing = [name for name, value in fields.items() if not value]
        too_long = [name for name, value in fields.items() if len(value) > MAX_LENGTHS[name]]
        if missing or too_long:
            return Refused(
                reason=Reason.MISSING_COMPANY_DETAILS, details={"missing": missing, "too_long": too_long}
            )
        valid, hint = check_vat_id(vat)
        if not valid:
            return Refused(
                reason=Reason.INVALID_VAT_ID, details={"vat_id": vat, "country": vat[:2], "hint": hint}
            )
        if require_step_up:
            refusal = consume_grant(ctx, actor, "switch_to_business", conversation_id=step_up_conversation,
                                    params={"company_name": company_name, "vat_id": vat_id})
            if refusal is not None:
                return refusal

        account.kind = "business"
        account.payment_method = "wire_transfer"
        account.company_name = fields["company_name"]
        account.registration_number = fields["registration_number"]
        account.company_address = fields["company_address"]
        account.vat_id = vat
        ctx.notify(
            account_id=account.id,
            recipient_email=account.primary_email,
            kind="switched_to_business",
            payload={"company_name": account.company_name, "vat_id": vat, "payment_method": "wire_transfer"},
        )
        ctx.audit(
            account_id=account.id,
            details={
                "company_name": account.company_name,
                "registration_number": account.registration_number,
                "vat_id": vat,
                "payment_method": "wire_transfer",
            },
        )
        return SwitchedToBusiness(
            account_id=account.id, company_name=account.company_name, vat_id=vat, payment_method="wire_transfer"
        )

    return run_operation(
        deps,
        operation="switch_to_business",
        idempotency_key=idempotency_key,
        actor=actor,
        params={**fields, "vat_id": vat, "escalate": escalate, "channel": channel},
        body=body,
    )
