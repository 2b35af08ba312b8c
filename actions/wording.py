"""Results of the account domain in plain words for the customer."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Callable, Dict, Iterable, List, Tuple, Union

from accounts.results import (
    ClosureRequested,
    ClosureUndone,
    CurrencyChanged,
    InvoiceRef,
    MemberDisabled,
    MemberInvited,
    PasswordResetRequested,
    Reason,
    Refused,
    Result,
    ServiceRef,
    SupportRequestCreated,
    SwitchedToBusiness,
)

ROLE_NAMES = {"owner": "an owner", "admin": "an admin", "member": "a member"}


def day(moment: Union[datetime, date, str]) -> str:
    """A date as customers read it: 8 December 2026 (accepts ISO strings too)."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return f"{moment.day} {moment:%B %Y}"


def money(amount: Decimal, currency: str) -> str:
    """An amount with its currency: 49.00 EUR."""
    return f"{Decimal(amount):.2f} {currency}"


def _invoices(invoices: List[InvoiceRef]) -> str:
    return ", ".join(f"{i.number} ({money(i.amount, i.currency)}, due {day(i.due_date)})"
                     for i in invoices)


def _services(services: List[ServiceRef]) -> str:
    return ", ".join(s.name for s in services)


def _not_permitted(refused: Refused) -> str:
    roles = refused.details.get("required_roles") or []
    needed = " or ".join(r + "s" for r in roles) or "owners"
    return f"Only account {needed} can do that, and your sign-in doesn't have that role."


REFUSAL_WORDS: Dict[Reason, Callable[[Refused], str]] = {
    Reason.NOT_PERMITTED: _not_permitted,
    Reason.ACCOUNT_NOT_FOUND: lambda r: "I couldn't find your account.",
    Reason.ACCOUNT_NOT_ACTIVE: lambda r: "That isn't possible while the account is "
                                          f"{r.details.get('status', 'not active')}.",
    Reason.ACCOUNT_CLOSED: lambda r: "This account is closed.",
    Reason.IDEMPOTENCY_KEY_REUSED: lambda r: "That request was already handled.",
    Reason.INVALID_REQUEST: lambda r: "Something in that request wasn't valid.",
    Reason.ALREADY_CLOSING: lambda r: "Your account is already being closed"
        + (f": the grace period ends on {day(r.details['grace_period_ends_at'])}."
           if r.details.get("grace_period_ends_at") else "."),
    Reason.NOT_CLOSING: lambda r: "Your account isn't being closed.",
    Reason.GRACE_PERIOD_OVER: lambda r: "The grace period is over, so the closure can't be undone here.",
    Reason.PAYMENTS_EXIST: lambda r: "payments have already been made on the account",
    Reason.NEGATIVE_BALANCE: lambda r: "the balance is negative ("
        + money(r.details.get("balance", 0), r.details.get("currency", "")) + ")",
    Reason.UNSUPPORTED_CURRENCY: lambda r: f"{r.details.get('currency')} isn't a currency we support. "
        "Supported: " + ", ".join(r.details.get("supported_currencies") or []) + ".",
    Reason.SAME_CURRENCY: lambda r: f"Your account already uses {r.details.get('currency')}.",
    Reason.INVALID_EMAIL: lambda r: "That doesn't look like a valid email address.",
    Reason.INVALID_ROLE: lambda r: "The role must be owner, admin or member.",
    Reason.ALREADY_MEMBER: lambda r: "That person is already a user of this account.",
    Reason.ALREADY_INVITED: lambda r: "That person already has a pending invitation.",
    Reason.MEMBER_NOT_FOUND: lambda r: "There's no user with that email address on this account.",
    Reason.ALREADY_DISABLED: lambda r: "That user is already disabled.",
    Reason.CANNOT_DISABLE_SELF: lambda r: "You can't disable your own access.",
    Reason.CANNOT_DISABLE_OWNER: lambda r: "Admins can't disable an owner; an owner has to do that.",
    Reason.LAST_OWNER: lambda r: "That's the account's last owner, so they can't be disabled.",
    Reason.ALREADY_BUSINESS: lambda r: "Your account is already a business account.",
    Reason.INVALID_VAT_ID: lambda r: "That VAT ID doesn't have a valid format"
        + (f" ({r.details['hint']})" if r.details.get("hint") else "") + ".",
    Reason.MISSING_COMPANY_DETAILS: lambda r: "Some company details are missing.",
    Reason.RATE_LIMITED: lambda r: "Too many reset links were requested for this address. "
        "Please try again later.",
    Reason.UNPAID_INVOICES: lambda r: "there are unpaid invoices: " + _invoices(list(r.invoices)),
    Reason.ACTIVE_SERVICES: lambda r: "these services are still active: " + _services(list(r.services)),
}

# Reasons that are conditions of the account (joined into one sentence).
CONDITIONS = {Reason.UNPAID_INVOICES, Reason.ACTIVE_SERVICES, Reason.PAYMENTS_EXIST,
              Reason.NEGATIVE_BALANCE}


#: Refusals only a person can resolve, per operation (the FAQ: a grayed-out account
#: type switch, a currency change after payments). Everything else the customer fixes.
PERSON_NEEDED: Dict[str, Tuple[Reason, ...]] = {
    "change_currency": (Reason.PAYMENTS_EXIST,),
    "switch_to_business": (Reason.ACCOUNT_NOT_ACTIVE, Reason.UNPAID_INVOICES, Reason.NEGATIVE_BALANCE),
}

PERSON_OFFER = "Only our support team can do that for you: shall I pass it on to them?"


def person_needed(operation: str, reasons: Iterable[Any]) -> bool:
    """Whether a refusal of ``operation`` for these reasons can only be resolved by a person."""
    codes = {getattr(r, "value", r) for r in reasons}
    return any(r.value in codes for r in PERSON_NEEDED.get(operation, ()))


def next_step(refused: Refused) -> str:
    """What the customer can do themselves about a refusal (from the FAQ), or ""."""
    reasons = set(refused.blocking) or {refused.reason}
    steps = []
    if Reason.UNPAID_INVOICES in reasons and refused.invoices:
        numbers = " and ".join(i.number for i in refused.invoices)
        steps.append(f"pay {numbers} in the portal's billing section")
    if Reason.ACTIVE_SERVICES in reasons and refused.services:
        steps.append("cancel " + " and ".join(s.name for s in refused.services) + " in the portal")
    if Reason.NEGATIVE_BALANCE in reasons:
        steps.append("settle the balance in the portal's billing section")
    if not steps:
        return ""
    text = "; ".join(steps)
    return f"You can {text}, then ask me again."


def describe_refusal(refused: Refused, doing: str = "do that", operation: str = "") -> str:
    """Why an operation was refused, in one or two sentences, and what the customer can do next.

    With ``operation`` given, a refusal only a person can resolve ends with the
    offer of a person; the others end with the customer's own next step.
    """
    reasons = list(refused.blocking) or [refused.reason]
    conditions = [r for r in reasons if r in CONDITIONS]
    if conditions:
        parts = [REFUSAL_WORDS[r](refused) for r in conditions]
        text = f"I can't {doing} right now because " + "; and ".join(parts) + "."
    else:
        words = REFUSAL_WORDS.get(refused.reason)
        text = words(refused) if words else f"I can't {doing} right now."
    if operation and person_needed(operation, reasons):
        return f"{text} {PERSON_OFFER}"
    step = next_step(refused)
    return f"{text} {step}" if step else text


def describe_success(result: Result) -> str:
    """What was done, in words (no secrets)."""
    if isinstance(result, ClosureRequested):
        return ("Done: your account is now scheduled to close on "
                f"{day(result.grace_period_ends_at)}. Until then you can change your mind: "
                "just tell me you want to keep your account and I'll cancel the closure. "
                "We've emailed you a confirmation.")
    if isinstance(result, ClosureUndone):
        return "Done: the closure is cancelled and your account stays open."
    if isinstance(result, CurrencyChanged):
        return (f"Done: your account currency is now {result.new_currency} "
                f"(it was {result.old_currency}). We've emailed you a confirmation.")
    if isinstance(result, MemberInvited):
        return (f"Done: I've invited {result.email} as {ROLE_NAMES.get(result.role, result.role)}. "
                f"The invitation link works once and expires on {day(result.expires_at)}.")
    if isinstance(result, MemberDisabled):
        return (f"Done: {result.email} is disabled and can no longer access the account. "
                "The account owner has been notified by email.")
    if isinstance(result, SwitchedToBusiness):
        return (f"Done: your account is now a business account for {result.company_name}, "
                "paid by wire transfer. We've emailed you a confirmation.")
    if isinstance(result, PasswordResetRequested):
        return ("If that address belongs to an account, a password reset link is on its way. "
                f"The link works once and expires in {result.expires_in_minutes} minutes.")
    if isinstance(result, SupportRequestCreated):
        return f"I've passed this to our support team (reference {result.reference})."
    return "Done."


def describe_reset_sent(result: PasswordResetRequested, email: str) -> str:
    """A reset link sent to a verified customer's own address (no "if that address belongs...")."""
    return (f"I've sent a password reset link to {email}. "
            f"It works once and expires in {result.expires_in_minutes} minutes.")
