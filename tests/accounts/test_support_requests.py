"""Tests of accounts.support_requests.create_support_request."""

from __future__ import annotations

import pytest

from accounts import support_requests as sr
from accounts.models import SupportRequest
from accounts.results import Reason, SupportRequestCreated


def create(world, key="s", deps=None, **kw):
    params = dict(account_id=None, channel="chat", reason="lost_tfa_device", summary="Lost my phone")
    params.update(kw)
    return sr.create_support_request(deps or world.deps, idempotency_key=key, **params)


def test_support_request_for_account_is_stored_and_acknowledged(world):
    acc = world.account()

    result = create(world, account_id=acc, context={"conversation_id": "c-1", "slots": {"otp_code": "1"}})

    assert isinstance(result, SupportRequestCreated)
    assert result.reference == f"SR-{result.support_request_id:06d}"
    [request] = world.all(SupportRequest)
    assert (request.account_id, request.channel, request.reason, request.summary, request.status) == (
        acc, "chat", "lost_tfa_device", "Lost my phone", "open",
    )
    assert request.context == {"conversation_id": "c-1", "slots": {"otp_code": "1"}}
    [note] = world.outbox()
    assert (note.kind, note.recipient_email, note.payload["reference"]) == (
        "support_request_received", "owner@example.com", result.reference,
    )
    [audit] = world.audits()
    assert (audit.action, audit.account_id) == ("support_request_created", acc)


def test_anonymous_request_with_and_without_contact(world):
    with_contact = create(world, key="a", contact_email="Someone@Example.com")
    without = create(world, key="b")
    assert with_contact.ok and without.ok
    assert [n.recipient_email for n in world.outbox()] == ["someone@example.com"]
    assert [r.account_id for r in world.all(SupportRequest)] == [None, None]


def test_secret_looking_context_is_redacted(world):
    create(world, context={"password": "hunter2", "nested": {"token": "abc", "ok": 1}, "secret_link": "x"})
    [request] = world.all(SupportRequest)
    assert request.context == {"password": "[redacted]", "nested": {"token": "[redacted]", "ok": 1}, "secret_link": "[redacted]"}
    assert "hunter2" not in world.dump()


def test_idempotent_by_key(world):
    first = create(world)
    assert create(world) == first
    assert world.count(SupportRequest) == 1
    assert create(world, summary="something else").reason == Reason.IDEMPOTENCY_KEY_REUSED


@pytest.mark.parametrize(
    "kw, reason, field",
    [
        (dict(channel=" "), "invalid_request", "channel"),
        (dict(reason=""), "invalid_request", "reason"),
        (dict(summary="x" * 5001), "invalid_request", "summary"),
        (dict(context={"when": object()}), "invalid_request", "context"),
        (dict(contact_email="nope"), "invalid_email", None),
        (dict(account_id=4242), "account_not_found", None),
    ],
)
def test_refusals(world, kw, reason, field):
    before = world.snapshot()
    result = create(world, **kw)
    world.assert_refused(before, result, reason)
    if field:
        assert result.details["field"] == field


def test_all_or_nothing(world):
    acc = world.account()
    before = world.snapshot(exclude=())
    with pytest.raises(Exception):
        create(world, account_id=acc, deps=world.broken_deps())
    world.assert_nothing_written(before)


# --------------------------------------------------------------------------- rate limits (issue #12, item 10)


def anonymous(world, n, conversation="visitor-1", contact=None, deps=None):
    return sr.create_support_request(
        deps or world.deps, account_id=None, channel="socketio", reason="human_handoff", summary="help pls",
        idempotency_key=f"anon-{n}", context={"conversation": conversation}, contact_email=contact)


def test_anonymous_requests_are_limited_per_conversation_and_address(world):
    for n in range(3):
        assert anonymous(world, n).ok
        world.clock.advance(minutes=10)
    before = world.snapshot()

    again = anonymous(world, 3)

    world.assert_refused(before, again, "rate_limited")
    assert again.details["retry_after_seconds"] == 30 * 60  # the first leaves the hour
    assert anonymous(world, 4, conversation="visitor-2").ok  # another visitor is not held up
    for n in range(5, 8):
        anonymous(world, n, conversation=f"v-{n}", contact="same@example.com")
    assert anonymous(world, 8, conversation="v-8", contact="Same@Example.com").reason == Reason.RATE_LIMITED
    world.clock.advance(minutes=30)
    assert anonymous(world, 9).ok


def test_anonymous_requests_from_everybody_are_capped_per_hour_but_customers_never(world):
    import dataclasses

    deps = world.with_deps(settings=dataclasses.replace(world.settings, support_requests_anonymous_per_hour=2))
    acc = world.account()
    assert anonymous(world, 1, "a", deps=deps).ok and anonymous(world, 2, "b", deps=deps).ok
    assert anonymous(world, 3, "c", deps=deps).reason == Reason.RATE_LIMITED
    for n in range(5):  # a verified customer is not counted or limited here
        assert sr.create_support_request(deps, account_id=acc, channel="chat", reason="x", summary="y",
                                         idempotency_key=f"cust-{n}").ok
