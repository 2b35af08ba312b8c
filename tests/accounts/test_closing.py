"""Tests of accounts.closing: request, undo within the grace period, finalize."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from accounts import closing
from accounts.models import Account, Service
from accounts.results import (
    ClosureRequested,
    ClosuresFinalized,
    ClosureUndone,
    InvoiceRef,
    Reason,
    ServiceRef,
)


def test_request_closure_sets_closing_with_grace_period(world):
    acc = world.account(services=[("VPS", "cancelled")], invoices=[("INV-1", "10.00", "paid")])

    result = closing.request_closure(world.deps, world.actor(acc), idempotency_key="k1")

    ends = world.clock() + timedelta(days=14)
    assert result == ClosureRequested(account_id=acc, grace_period_ends_at=ends)
    account = world.get(Account, acc)
    assert (account.status, account.closing_requested_at, account.grace_period_ends_at) == (
        "closing", world.clock(), ends,
    )
    [audit] = world.audits()
    assert (audit.action, audit.outcome, audit.account_id, audit.actor) == (
        "request_closure", "succeeded", acc, "member:owner@example.com",
    )
    [note] = world.outbox()
    assert (note.kind, note.recipient_email, note.account_id) == ("closure_requested", "owner@example.com", acc)
    assert note.payload["grace_period_ends_at"] == ends.isoformat()


def test_grace_period_comes_from_settings_or_argument(world):
    a = world.account("a@example.com")
    b = world.account("b@example.com")
    deps = world.with_deps(settings=world.settings.__class__(grace_period_days=30))

    ra = closing.request_closure(deps, world.actor(a, "a@example.com"), idempotency_key="a")
    rb = closing.request_closure(world.deps, world.actor(b, "b@example.com"), idempotency_key="b", grace_period_days=1)

    assert ra.grace_period_ends_at == world.clock() + timedelta(days=30)
    assert rb.grace_period_ends_at == world.clock() + timedelta(days=1)
    with pytest.raises(ValueError):
        closing.request_closure(world.deps, world.actor(a, "a@example.com"), idempotency_key="c", grace_period_days=-1)


def test_unpaid_invoices_block_and_are_listed(world):
    acc = world.account(invoices=[("INV-2", "12.50", "unpaid"), ("INV-1", "10.00", "paid")])
    before = world.snapshot()

    result = closing.request_closure(world.deps, world.actor(acc), idempotency_key="k1")

    world.assert_refused(before, result, "unpaid_invoices")
    assert result.invoices == (InvoiceRef("INV-2", Decimal("12.50"), "EUR", date(2024, 6, 30)),)
    assert result.services == ()
    assert result.to_dict()["invoices"] == [
        {"number": "INV-2", "amount": "12.50", "currency": "EUR", "due_date": "2024-06-30"}
    ]
    assert world.outbox() == []


def test_active_services_block_and_are_listed(world):
    acc = world.account(services=[("VPS", "active"), ("Old", "cancelled"), ("Backup", "active")])
    before = world.snapshot()

    result = closing.request_closure(world.deps, world.actor(acc), idempotency_key="k1")

    world.assert_refused(before, result, "active_services")
    assert [s.name for s in result.services] == ["VPS", "Backup"]
    assert all(isinstance(s, ServiceRef) for s in result.services)


def test_all_blocking_conditions_are_reported(world):
    acc = world.account(services=[("VPS", "active")], invoices=[("INV-1", "5.00", "unpaid")])
    before = world.snapshot()

    result = closing.request_closure(world.deps, world.actor(acc), idempotency_key="k1")

    world.assert_refused(before, result, "unpaid_invoices")
    assert result.blocking == (Reason.UNPAID_INVOICES, Reason.ACTIVE_SERVICES)
    assert len(result.invoices) == 1 and len(result.services) == 1


@pytest.mark.parametrize(
    "actor_email, members",
    [
        ("admin@example.com", [("admin@example.com", "admin", "active")]),
        ("member@example.com", [("member@example.com", "member", "active")]),
        ("old@example.com", [("old@example.com", "owner", "disabled")]),
        ("invitee@example.com", [("invitee@example.com", "owner", "invited")]),
        ("stranger@example.com", []),
    ],
)
def test_only_active_owners_may_close(world, actor_email, members):
    acc = world.account(members=members)
    before = world.snapshot()

    result = closing.request_closure(world.deps, world.actor(acc, actor_email), idempotency_key="k1")

    world.assert_refused(before, result, "not_permitted")
    assert result.details["required_roles"] == ["owner"]


def test_owner_of_another_account_may_not_close(world):
    acc = world.account()
    world.account("other@example.com")
    before = world.snapshot()

    result = closing.request_closure(world.deps, world.actor(acc, "other@example.com"), idempotency_key="k1")

    world.assert_refused(before, result, "not_permitted")


def test_unknown_account(world):
    world.account()
    before = world.snapshot()
    result = closing.request_closure(world.deps, world.actor(999), idempotency_key="k1")
    world.assert_refused(before, result, "account_not_found")
    assert world.audits()[-1].account_id is None


@pytest.mark.parametrize("status, reason", [("closing", "already_closing"), ("closed", "account_closed")])
def test_closing_or_closed_account(world, status, reason):
    acc = world.account(status=status)
    before = world.snapshot()
    result = closing.request_closure(world.deps, world.actor(acc), idempotency_key="k1")
    world.assert_refused(before, result, reason)


def test_retry_with_same_key_returns_same_result_once(world):
    acc = world.account()

    first = closing.request_closure(world.deps, world.actor(acc), idempotency_key="k1")
    world.clock.advance(minutes=5)
    second = closing.request_closure(world.deps, world.actor(acc), idempotency_key="k1")

    assert second == first
    assert len(world.audits()) == 1 and len(world.outbox()) == 1
    assert world.get(Account, acc).closing_requested_at == first.grace_period_ends_at - timedelta(days=14)
    [record] = world.idempotency_records()
    assert record.key == "k1" and record.operation == "request_closure"


def test_same_key_with_other_parameters_or_operation_is_refused(world):
    acc = world.account()
    closing.request_closure(world.deps, world.actor(acc), idempotency_key="k1")
    before = world.snapshot()

    other_params = closing.request_closure(world.deps, world.actor(acc), idempotency_key="k1", grace_period_days=3)
    other_operation = closing.undo_closure(world.deps, world.actor(acc), idempotency_key="k1")

    assert other_params.reason == other_operation.reason == Reason.IDEMPOTENCY_KEY_REUSED
    assert world.snapshot() == before
    assert world.get(Account, acc).status == "closing"


def test_a_refusal_is_not_stored_so_the_key_works_once_fixed(world):
    acc = world.account(services=[("VPS", "active")])
    assert not closing.request_closure(world.deps, world.actor(acc), idempotency_key="k1").ok
    assert world.idempotency_records() == []
    world.execute(sa.update(Service).values(status="cancelled"))

    assert closing.request_closure(world.deps, world.actor(acc), idempotency_key="k1").ok


@pytest.mark.parametrize("how", ["constraint", "raise"])
def test_all_or_nothing_when_the_outbox_fails(world, how):
    acc = world.account()
    before = world.snapshot(exclude=())

    with pytest.raises(Exception) as info:
        closing.request_closure(world.broken_deps(how), world.actor(acc), idempotency_key="k1")

    assert how == "raise" or "outbox_notifications" in str(info.value)
    world.assert_nothing_written(before)
    assert world.get(Account, acc).status == "active"


# ----------------------------------------------------------------------------- undo


def test_undo_within_grace_period(world):
    acc = world.account()
    closing.request_closure(world.deps, world.actor(acc), idempotency_key="close")
    world.clock.advance(days=13, hours=23)

    result = closing.undo_closure(world.deps, world.actor(acc), idempotency_key="undo")

    assert result == ClosureUndone(account_id=acc)
    account = world.get(Account, acc)
    assert (account.status, account.closing_requested_at, account.grace_period_ends_at) == ("active", None, None)
    assert [a.action for a in world.audits()] == ["request_closure", "undo_closure"]
    assert [n.kind for n in world.outbox()] == ["closure_requested", "closure_undone"]
    assert closing.undo_closure(world.deps, world.actor(acc), idempotency_key="undo") == result
    assert len(world.audits()) == 2


def test_undo_after_grace_period_is_refused(world):
    acc = world.account()
    closing.request_closure(world.deps, world.actor(acc), idempotency_key="close")
    world.clock.advance(days=14)
    before = world.snapshot()

    result = closing.undo_closure(world.deps, world.actor(acc), idempotency_key="undo")

    world.assert_refused(before, result, "grace_period_over")


@pytest.mark.parametrize("status, reason", [("active", "not_closing"), ("closed", "account_closed")])
def test_undo_needs_a_closing_account(world, status, reason):
    acc = world.account(status=status)
    before = world.snapshot()
    world.assert_refused(before, closing.undo_closure(world.deps, world.actor(acc), idempotency_key="u"), reason)


def test_undo_only_by_owner(world):
    acc = world.account(status="closing", members=[("admin@example.com", "admin", "active")])
    before = world.snapshot()
    result = closing.undo_closure(world.deps, world.actor(acc, "admin@example.com"), idempotency_key="u")
    world.assert_refused(before, result, "not_permitted")


def test_undo_all_or_nothing(world):
    acc = world.account(status="closing")
    before = world.snapshot(exclude=())
    with pytest.raises(Exception):
        closing.undo_closure(world.broken_deps(), world.actor(acc), idempotency_key="u")
    world.assert_nothing_written(before)


# ------------------------------------------------------------------------- finalize


def test_finalize_closes_only_accounts_whose_grace_period_ended(world):
    due = world.account("due@example.com")
    later = world.account("later@example.com")
    active = world.account("active@example.com")
    closing.request_closure(world.deps, world.actor(due, "due@example.com"), idempotency_key="a")
    world.clock.advance(days=3)
    closing.request_closure(world.deps, world.actor(later, "later@example.com"), idempotency_key="b")
    world.clock.advance(days=11)  # due: exactly 14 days, later: 11 days

    result = closing.finalize_due_closures(world.deps, idempotency_key="fin-1")

    assert result == ClosuresFinalized(account_ids=(due,))
    assert [world.get(Account, i).status for i in (due, later, active)] == ["closed", "closing", "active"]
    assert world.get(Account, due).closed_at == world.clock()
    assert [a.account_id for a in world.audits(action="finalize_closure")] == [due]
    assert world.audits(action="finalize_closure")[0].actor == "system:closure_finalizer"
    [note] = world.outbox("account_closed")
    assert note.recipient_email == "due@example.com"
    assert closing.finalize_due_closures(world.deps, idempotency_key="fin-1") == result
    assert len(world.audits(action="finalize_closure")) == 1


def test_finalize_with_explicit_now_and_nothing_due(world):
    acc = world.account(status="closing")
    assert closing.finalize_due_closures(world.deps, idempotency_key="f0") == ClosuresFinalized(account_ids=())
    result = closing.finalize_due_closures(
        world.deps, idempotency_key="f1", now=world.clock() + timedelta(days=15)
    )
    assert result.account_ids == (acc,)


def test_finalize_all_or_nothing(world):
    a = world.account("a@example.com", status="closing", grace_period_ends_at=world.clock())
    b = world.account("b@example.com", status="closing", grace_period_ends_at=world.clock())
    before = world.snapshot(exclude=())
    with pytest.raises(Exception):
        closing.finalize_due_closures(world.broken_deps(), idempotency_key="f")
    world.assert_nothing_written(before)
    assert {world.get(Account, a).status, world.get(Account, b).status} == {"closing"}
