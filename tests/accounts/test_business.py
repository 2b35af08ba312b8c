"""Tests of accounts.business: VAT check, switch, grayed-out cases, escalation."""

from __future__ import annotations

import pytest

from accounts import business
from accounts.models import Account, SupportRequest
from accounts.results import Reason, SwitchedToBusiness

COMPANY = dict(
    company_name="Acme GmbH",
    registration_number="HRB 98765",
    vat_id="de 123.456.789",
    company_address="Hauptstrasse 1, 10115 Berlin",
)

VALID_VAT = [
    "ATU12345678", "BE0123456789", "BG123456789", "BG1234567890", "CY12345678L", "CZ12345678",
    "CZ1234567890", "DE123456789", "DK12345678", "EE123456789", "EL123456789", "ESA1234567B",
    "ESX1234567X", "FI12345678", "FRAB123456789", "FR12345678901", "HR12345678901", "HU12345678",
    "IE1234567WA", "IE1A12345B", "IT12345678901", "LT123456789", "LT123456789012", "LU12345678",
    "LV12345678901", "MT12345678", "NL123456789B01", "PL1234567890", "PT123456789", "RO12",
    "RO1234567890", "SE123456789001", "SI12345678", "SK1234567890", "GB123456789", "GB123456789012",
    "GBGD001", "GBHA599", "XI123456789", "nl 1234.56789-b01",
]
INVALID_VAT = [
    "DE12345678", "DE1234567890", "AT12345678", "FRIO123456789", "NL123456789A01", "SE1234567890",
    "PL123456789", "GBGD500", "US123456789", "12345678", "", "GR123456789",
]


@pytest.mark.parametrize("vat", VALID_VAT)
def test_valid_vat_ids(vat):
    assert business.check_vat_id(vat) == (True, None)


@pytest.mark.parametrize("vat", INVALID_VAT)
def test_invalid_vat_ids(vat):
    valid, hint = business.check_vat_id(vat)
    assert not valid and hint


def test_greek_prefix_hint():
    assert business.check_vat_id("GR123456789")[1] == "Greek VAT IDs use the prefix EL"


def switch(world, acc, actor="owner@example.com", key="b", deps=None, **overrides):
    params = {**COMPANY, **overrides}
    return business.switch_to_business(deps or world.deps, world.actor(acc, actor), idempotency_key=key, **params)


@pytest.mark.parametrize("actor", ["owner@example.com", "admin@example.com"])
def test_switch_to_business(world, actor):
    acc = world.account(members=[("admin@example.com", "admin", "active")])

    result = switch(world, acc, actor=actor)

    assert result == SwitchedToBusiness(
        account_id=acc, company_name="Acme GmbH", vat_id="DE123456789", payment_method="wire_transfer"
    )
    account = world.get(Account, acc)
    assert (account.kind, account.payment_method, account.vat_id, account.company_name,
            account.registration_number, account.company_address) == (
        "business", "wire_transfer", "DE123456789", "Acme GmbH", "HRB 98765", "Hauptstrasse 1, 10115 Berlin",
    )
    [audit] = world.audits()
    assert audit.details["vat_id"] == "DE123456789"
    [note] = world.outbox()
    assert (note.kind, note.recipient_email) == ("switched_to_business", "owner@example.com")
    assert switch(world, acc, actor=actor) == result
    assert len(world.audits()) == 1 and len(world.outbox()) == 1


@pytest.mark.parametrize(
    "setup, reason",
    [
        (dict(kind="business", payment_method="wire_transfer"), "already_business"),
        (dict(status="closing"), "account_not_active"),
        (dict(status="closed"), "account_not_active"),
        (dict(invoices=[("INV-9", "20.00", "unpaid")]), "unpaid_invoices"),
        (dict(balance="-1.00"), "negative_balance"),
    ],
)
def test_switch_not_allowed(world, setup, reason):
    acc = world.account(**setup)
    before = world.snapshot()

    result = switch(world, acc)

    world.assert_refused(before, result, reason)
    assert result.support_request_id is None
    assert business.check_switch_to_business(world.deps, world.actor(acc)) == result
    assert world.snapshot() == before


def test_all_blocking_conditions_listed_with_invoices(world):
    acc = world.account(status="closing", balance="-3.00", invoices=[("INV-9", "20.00", "unpaid")])
    result = switch(world, acc)
    assert result.blocking == (Reason.ACCOUNT_NOT_ACTIVE, Reason.UNPAID_INVOICES, Reason.NEGATIVE_BALANCE)
    assert [i.number for i in result.invoices] == ["INV-9"]
    assert result.to_dict()["details"]["balance"] == "-3.00"


def test_check_allows_clean_account(world):
    acc = world.account()
    assert business.check_switch_to_business(world.deps, world.actor(acc)) is None
    member_only = world.account("m@example.com", members=[("x@example.com", "member", "active")])
    assert business.check_switch_to_business(world.deps, world.actor(member_only, "x@example.com")).reason == (
        Reason.NOT_PERMITTED
    )
    assert business.check_switch_to_business(world.deps, world.actor(999)).reason == Reason.ACCOUNT_NOT_FOUND


def test_blocked_switch_escalates_to_support_request(world):
    acc = world.account(invoices=[("INV-9", "20.00", "unpaid")])

    result = switch(world, acc, escalate=True, channel="chat")
    replay = switch(world, acc, escalate=True, channel="chat")

    assert result.reason == Reason.UNPAID_INVOICES and result.support_request_id is not None
    assert replay == result
    [request] = world.all(SupportRequest)
    assert (request.id, request.account_id, request.channel, request.reason, request.status) == (
        result.support_request_id, acc, "chat", "business_switch_blocked", "open",
    )
    assert request.context["blocking"] == ["unpaid_invoices"]
    assert request.context["unpaid_invoices"] == ["INV-9"]
    assert world.get(Account, acc).kind == "personal"
    assert [(a.action, a.outcome) for a in world.audits()] == [
        ("switch_to_business", "refused"), ("support_request_created", "succeeded"),
    ]
    [note] = world.outbox()
    assert (note.kind, note.recipient_email) == ("support_request_received", "owner@example.com")
    assert note.payload["reference"] == f"SR-{request.id:06d}"


def test_already_business_is_not_escalated(world):
    acc = world.account(kind="business", payment_method="wire_transfer")
    before = world.snapshot()
    result = switch(world, acc, escalate=True)
    world.assert_refused(before, result, "already_business")
    assert result.support_request_id is None


@pytest.mark.parametrize(
    "overrides, reason, detail",
    [
        (dict(company_name="  "), "missing_company_details", ("missing", ["company_name"])),
        (dict(registration_number="", company_address=""), "missing_company_details",
         ("missing", ["registration_number", "company_address"])),
        (dict(company_name="x" * 201), "missing_company_details", ("too_long", ["company_name"])),
        (dict(vat_id="DE12345"), "invalid_vat_id", ("vat_id", "DE12345")),
        (dict(vat_id="GR123456789"), "invalid_vat_id", ("hint", "Greek VAT IDs use the prefix EL")),
    ],
)
def test_invalid_company_details(world, overrides, reason, detail):
    acc = world.account()
    before = world.snapshot()
    result = switch(world, acc, escalate=True, **overrides)
    world.assert_refused(before, result, reason)
    assert result.details[detail[0]] == detail[1]
    assert result.support_request_id is None


def test_members_may_not_switch(world):
    acc = world.account(members=[("m@example.com", "member", "active")])
    before = world.snapshot()
    world.assert_refused(before, switch(world, acc, actor="m@example.com", escalate=True), "not_permitted")


def test_key_reuse_with_other_details(world):
    acc = world.account()
    switch(world, acc)
    assert switch(world, acc, company_name="Other Ltd").reason == Reason.IDEMPOTENCY_KEY_REUSED
    assert world.get(Account, acc).company_name == "Acme GmbH"


@pytest.mark.parametrize("escalate", [False, True])
def test_all_or_nothing(world, escalate):
    acc = world.account(balance="-1.00" if escalate else "0.00")
    before = world.snapshot(exclude=())
    with pytest.raises(Exception):
        switch(world, acc, deps=world.broken_deps(), escalate=escalate)
    world.assert_nothing_written(before)
