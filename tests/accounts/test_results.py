"""Tests of accounts.results: JSON round trips and secret fields."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest

from accounts.results import (
    ClosureRequested,
    ClosuresFinalized,
    ClosureUndone,
    CurrencyChanged,
    InvitationAccepted,
    InvoiceRef,
    MemberDisabled,
    MemberInvited,
    PasswordChanged,
    PasswordResetRequested,
    Reason,
    Refused,
    Result,
    ServiceRef,
    SupportRequestCreated,
    SwitchedToBusiness,
)

WHEN = datetime(2024, 6, 17, 9, 0, tzinfo=timezone.utc)

EXAMPLES = [
    ClosureRequested(account_id=1, grace_period_ends_at=WHEN),
    ClosureUndone(account_id=1),
    ClosuresFinalized(account_ids=(1, 2)),
    CurrencyChanged(account_id=1, old_currency="EUR", new_currency="USD"),
    MemberInvited(account_id=1, email="a@b.example", role="admin", invitation_id=3, expires_at=WHEN, token="t"),
    InvitationAccepted(account_id=1, email="a@b.example", role="admin"),
    MemberDisabled(account_id=1, email="a@b.example"),
    SwitchedToBusiness(account_id=1, company_name="Acme", vat_id="DE123456789", payment_method="wire_transfer"),
    PasswordResetRequested(expires_in_minutes=30),
    PasswordChanged(email="a@b.example"),
    SupportRequestCreated(support_request_id=7, reference="SR-000007"),
    Refused(
        reason=Reason.UNPAID_INVOICES,
        blocking=(Reason.UNPAID_INVOICES, Reason.ACTIVE_SERVICES),
        invoices=(InvoiceRef("INV-1", Decimal("12.50"), "EUR", date(2024, 6, 30)),),
        services=(ServiceRef(4, "VPS"),),
        details={"balance": Decimal("-1.00"), "when": WHEN},
        support_request_id=9,
    ),
]


@pytest.mark.parametrize("result", EXAMPLES, ids=lambda r: type(r).__name__)
def test_json_round_trip(result):
    data = json.loads(json.dumps(result.to_dict()))
    assert Result.from_dict(data) == result
    assert data["type"] == type(result).__name__


def test_refused_shape_for_the_assistant():
    refused = EXAMPLES[-1]
    assert not refused.ok and all(r.ok for r in EXAMPLES[:-1])
    assert refused.to_dict() == {
        "type": "Refused",
        "reason": "unpaid_invoices",
        "blocking": ["unpaid_invoices", "active_services"],
        "invoices": [{"number": "INV-1", "amount": "12.50", "currency": "EUR", "due_date": "2024-06-30"}],
        "services": [{"id": 4, "name": "VPS"}],
        "details": {"balance": "-1.00", "when": "2024-06-17T09:00:00+00:00"},
        "support_request_id": 9,
    }


def test_refused_defaults_and_string_reasons():
    refused = Refused(reason="not_permitted")
    assert refused.reason is Reason.NOT_PERMITTED and refused.blocking == (Reason.NOT_PERMITTED,)


def test_secret_fields_are_left_out_on_request():
    invited = EXAMPLES[4]
    assert invited.to_dict()["token"] == "t"
    assert invited.to_dict(include_secrets=False)["token"] is None
    assert "token=" not in repr(invited)


def test_unknown_type():
    with pytest.raises(ValueError):
        Result.from_dict({"type": "Nope"})
