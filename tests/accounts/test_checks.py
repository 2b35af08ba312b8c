"""Read-only checks the assistant asks before offering an operation.

Each check must agree with what the operation itself would decide, and
change nothing.
"""

from __future__ import annotations

import pytest

from accounts import closing, currency, members
from accounts.results import Reason, Refused


@pytest.mark.parametrize("setup, expected", [
    ({}, None),
    ({"invoices": [("INV-1", "10.00", "unpaid")]}, Reason.UNPAID_INVOICES),
    ({"services": [("Backup", "active")]}, Reason.ACTIVE_SERVICES),
    ({"status": "closing"}, Reason.ALREADY_CLOSING),
], ids=["clean", "unpaid", "services", "closing"])
def test_check_closure_agrees_with_request_closure(world, setup, expected):
    acc = world.account(**setup)
    before = world.snapshot(exclude=())
    verdict = closing.check_closure(world.deps, world.actor(acc))
    assert world.snapshot(exclude=()) == before
    if expected is None:
        assert verdict is None
        assert closing.request_closure(world.deps, world.actor(acc), idempotency_key="k").ok
    else:
        assert isinstance(verdict, Refused) and verdict.reason == expected
        result = closing.request_closure(world.deps, world.actor(acc), idempotency_key="k")
        assert result.reason == expected


def test_check_closure_lists_what_blocks(world):
    acc = world.account(invoices=[("INV-9", "12.50", "unpaid")], services=[("Mail", "active")])
    verdict = closing.check_closure(world.deps, world.actor(acc))
    assert verdict.blocking == (Reason.UNPAID_INVOICES, Reason.ACTIVE_SERVICES)
    assert [i.number for i in verdict.invoices] == ["INV-9"]
    assert [s.name for s in verdict.services] == ["Mail"]


def test_check_closure_refuses_non_owners(world):
    acc = world.account(members=[("admin@example.com", "admin", "active")])
    verdict = closing.check_closure(world.deps, world.actor(acc, "admin@example.com"))
    assert verdict.reason == Reason.NOT_PERMITTED


@pytest.mark.parametrize("setup, expected", [
    ({}, "EUR"),
    ({"payments": ["5.00"]}, Reason.PAYMENTS_EXIST),
    ({"balance": "-1.00"}, Reason.NEGATIVE_BALANCE),
], ids=["clean", "payments", "negative"])
def test_check_currency_change(world, setup, expected):
    acc = world.account(**setup)
    verdict = currency.check_currency_change(world.deps, world.actor(acc))
    if not isinstance(expected, Reason):
        assert verdict == expected
    else:
        assert isinstance(verdict, Refused) and expected in (verdict.blocking or (verdict.reason,))


def test_list_members_for_owners_and_admins_only(world):
    acc = world.account(members=[("admin@example.com", "admin", "active"),
                                 ("bob@example.com", "member", "active")])
    listed = members.list_members(world.deps, world.actor(acc))
    assert [(m.email, m.role) for m in listed] == [
        ("owner@example.com", "owner"), ("admin@example.com", "admin"), ("bob@example.com", "member")]
    refused = members.list_members(world.deps, world.actor(acc, "bob@example.com"))
    assert isinstance(refused, Refused) and refused.reason == Reason.NOT_PERMITTED
