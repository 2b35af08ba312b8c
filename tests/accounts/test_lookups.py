"""Read-only lookups of an account's state (accounts/lookups.py), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import sqlalchemy as sa

from accounts import lookups, support_requests
from accounts.lookups import AccountState
from accounts.models import SupportRequest
from accounts.results import Reason, Refused


def test_state_of_a_closing_account_with_what_blocks_nothing(world):
    acc = world.account(status="closing", currency="USD")
    state = lookups.account_state(world.deps, world.actor(acc))
    assert isinstance(state, AccountState)
    assert (state.status, state.currency, state.kind) == ("closing", "USD", "personal")
    assert state.grace_period_ends_at == world.clock() + timedelta(days=14)
    assert state.unpaid_invoices == () and state.active_services == ()


def test_state_lists_unpaid_invoices_active_services_and_what_is_owed(world):
    acc = world.account(balance="-25.00", invoices=[("INV-1", "49.00", "unpaid"), ("INV-2", "10.00", "paid")],
                        services=[("Cloud VPS S", "active"), ("Old mail", "cancelled"), ("Backup 100 GB", "active")])
    state = lookups.account_state(world.deps, world.actor(acc))
    assert [i.number for i in state.unpaid_invoices] == ["INV-1"]
    assert [s.name for s in state.active_services] == ["Cloud VPS S", "Backup 100 GB"]
    assert state.balance == Decimal("-25.00")
    assert state.amount_owed == Decimal("74.00")


def test_reading_the_state_changes_nothing(world):
    acc = world.account(status="closing", invoices=[("INV-1", "49.00", "unpaid")], services=[("VPS", "active")])
    before = world.snapshot(exclude=())
    lookups.account_state(world.deps, world.actor(acc))
    assert world.snapshot(exclude=()) == before


def test_every_active_member_may_read_but_not_a_disabled_one_or_a_stranger(world):
    acc = world.account(members=[("member@example.com", "member", "active"),
                                 ("gone@example.com", "member", "disabled")])
    assert isinstance(lookups.account_state(world.deps, world.actor(acc, "member@example.com")), AccountState)
    refused = lookups.account_state(world.deps, world.actor(acc, "gone@example.com"))
    assert isinstance(refused, Refused) and refused.reason == Reason.NOT_PERMITTED
    other = world.account("other@example.com")
    assert lookups.account_state(world.deps, world.actor(other, "owner@example.com")).reason == Reason.NOT_PERMITTED
    assert lookups.account_state(world.deps, world.actor(999999)).reason == Reason.ACCOUNT_NOT_FOUND


def test_open_support_requests_newest_first_and_their_status(world):
    acc = world.account()
    ids = []
    for key in ("k1", "k2"):
        result = support_requests.create_support_request(
            world.deps, account_id=acc, channel="chat", reason="customer_request", summary="help",
            idempotency_key=key)
        ids.append(result.support_request_id)
    world.execute(sa.update(SupportRequest).where(SupportRequest.id == ids[0]).values(status="resolved"))
    state = lookups.account_state(world.deps, world.actor(acc))
    assert state.open_support_requests == (f"SR-{ids[1]:06d}",)
    assert lookups.support_request_status(world.deps, ids[0]) == "resolved"
    assert lookups.support_request_status(world.deps, ids[1]) == "open"
    assert lookups.support_request_status(world.deps, 987654) is None
