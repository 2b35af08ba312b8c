"""Tests of accounts.helpdesk and accounts.helpdesk_dispatch against a fake helpdesk on 127.0.0.1.

Each test with ``world`` runs on SQLite and on PostgreSQL (see conftest.py).
Retries become due by moving the world's fake clock, never by sleeping.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import Any, Iterator

import pytest
import requests
import sqlalchemy as sa

from accounts.__main__ import main
from accounts.helpdesk import (
    GenericHelpdesk,
    HelpdeskSettings,
    ZendeskHelpdesk,
    helpdesk_from_env,
)
from accounts.helpdesk_dispatch import (
    append_message,
    deliver_pending,
    failed_support_requests,
    requeue_support_requests,
    run_loop,
    support_request_status,
)
from accounts.models import SupportRequest, SupportRequestMessage
from accounts.support_requests import create_support_request
from tests.accounts.conftest import World
from tests.fake_helpdesk import FakeHelpdesk

TOKEN = "hd-token-SECRET-4b1d"
TRANSCRIPT = [{"from": "customer", "text": "I want to close my account"},
              {"from": "assistant", "text": "You have an unpaid invoice."}]


@pytest.fixture
def fake() -> Iterator[FakeHelpdesk]:
    server = FakeHelpdesk().start()
    yield server
    server.stop()


def generic(fake: FakeHelpdesk, timeout: float = 3.0) -> GenericHelpdesk:
    return GenericHelpdesk(base_url=fake.url, token=TOKEN, timeout=timeout, session=requests.Session())


def zendesk(fake: FakeHelpdesk) -> ZendeskHelpdesk:
    return ZendeskHelpdesk(base_url=fake.url, token=TOKEN, timeout=3.0, session=requests.Session())


def open_request(world: World, n: int = 1, *, account: bool = True) -> int:
    """Store a support request as the hand-off does; return its id."""
    account_id = world.account(f"owner{n}@example.com") if account else None
    result = create_support_request(
        world.deps, account_id=account_id, channel="chat", reason="close_account:unpaid_invoices",
        summary="I want to close my account", idempotency_key=f"handoff-{n}",
        context={"conversation": f"conv-{n}", "transcript": TRANSCRIPT, "password": "hunter2"},
    )
    assert result.ok, result
    return result.support_request_id


def row(world: World, ident: int) -> SupportRequest:
    return world.get(SupportRequest, ident)


# --------------------------------------------------------------------------- delivery


def test_delivers_once_with_the_documented_payload_and_headers(world, fake):
    ident = open_request(world)
    account_id = row(world, ident).account_id

    report = deliver_pending(world.deps, generic(fake))

    assert report.delivered == (ident,) and not report.helpdesk_unavailable
    [sent] = fake.creations
    assert sent.headers["Authorization"] == f"Bearer {TOKEN}"
    assert sent.headers["Idempotency-Key"] == f"support-request-{ident}"
    assert sent.body == {
        "reference": f"SR-{ident:06d}",
        "reason": "close_account:unpaid_invoices",
        "summary": "I want to close my account",
        "channel": "chat",
        "customer": {"account_id": account_id, "email": "owner1@example.com"},
        "transcript": TRANSCRIPT,
        "created_at": world.clock().isoformat(),
    }
    status = support_request_status(world.deps, ident)
    assert (status.delivery_status, status.helpdesk_ticket_id, status.attempts) == ("delivered", "1001", 0)
    assert status.helpdesk_url == f"{fake.url}/t/1001" and status.delivered_at == world.clock()
    assert status.reference == f"SR-{ident:06d}" and status.last_error is None

    world.clock.advance(hours=2)
    assert deliver_pending(world.deps, generic(fake)).handled == 0
    assert len(fake.requests) == 1 and len(fake.tickets) == 1


def test_helpdesk_down_then_back_is_delivered_once(world, caplog):
    fake = FakeHelpdesk()  # not listening yet: connection refused
    first, second = open_request(world, 1), open_request(world, 2)
    client = generic(fake)
    caplog.set_level(logging.WARNING, logger="accounts.helpdesk")

    report = deliver_pending(world.deps, client)
    assert report.retrying == (first,) and report.helpdesk_unavailable  # the round stops at the first
    r = row(world, first)
    assert (r.delivery_status, r.attempts, r.next_attempt_at) == ("pending", 1, world.clock() + timedelta(seconds=30))
    assert "cannot connect" in r.last_error and TOKEN not in r.last_error and TOKEN not in caplog.text
    assert deliver_pending(world.deps, client).retrying == (second,)   # the next one is tried next time
    assert deliver_pending(world.deps, client).handled == 0          # nothing due before 30 s

    world.clock.advance(seconds=30)
    assert deliver_pending(world.deps, client).retrying == (first,)
    assert row(world, first).next_attempt_at == world.clock() + timedelta(seconds=60)  # doubling

    fake.start()
    try:
        world.clock.advance(seconds=60)
        report = deliver_pending(world.deps, client)
        assert set(report.delivered) == {first, second}
        assert len(fake.creations) == 2 and len(fake.tickets) == 2
        assert row(world, first).delivery_status == "delivered" and row(world, first).attempts == 2
    finally:
        fake.stop()


def test_500_then_201_is_delivered_once(world, fake):
    ident = open_request(world)
    fake.script("500")
    report = deliver_pending(world.deps, generic(fake))
    assert report.retrying == (ident,)
    assert row(world, ident).last_error.startswith("POST /tickets: HTTP 500")

    world.clock.advance(seconds=30)
    assert deliver_pending(world.deps, generic(fake)).delivered == (ident,)
    assert len(fake.creations) == 2 and len(fake.tickets) == 1
    assert row(world, ident).helpdesk_ticket_id == "1001"


@pytest.mark.parametrize("answer", ["429", "503"])
def test_overload_answers_are_retried(world, fake, answer):
    ident = open_request(world)
    fake.script(answer)
    assert deliver_pending(world.deps, generic(fake)).retrying == (ident,)
    assert row(world, ident).delivery_status == "pending"


@pytest.mark.parametrize("answer", ["malformed", "no_id", "400"])
def test_a_rejected_or_malformed_answer_fails_visibly_and_the_round_goes_on(world, fake, answer):
    bad, good = open_request(world, 1), open_request(world, 2)
    fake.script(answer)

    report = deliver_pending(world.deps, generic(fake))

    assert report.failed == (bad,) and report.delivered == (good,)
    r = row(world, bad)
    assert (r.delivery_status, r.attempts, r.next_attempt_at) == ("failed", 1, None)
    assert "HTTP" in r.last_error and TOKEN not in r.last_error
    assert [f.id for f in failed_support_requests(world.deps)] == [bad]
    world.clock.advance(days=1)
    assert deliver_pending(world.deps, generic(fake)).handled == 0  # failed rows stay put

    assert requeue_support_requests(world.deps, [bad, good]) == 1
    assert deliver_pending(world.deps, generic(fake)).delivered == (bad,)
    assert failed_support_requests(world.deps) == []
    assert len({t.id for t in fake.tickets}) == len(fake.tickets) == 2


def test_a_lost_response_is_retried_with_the_same_key_and_gives_one_ticket(world, fake):
    ident = open_request(world)
    fake.slow_seconds = 1.2
    fake.script("slow")  # the helpdesk creates the ticket, the answer comes too late

    report = deliver_pending(world.deps, generic(fake, timeout=0.4))
    assert report.retrying == (ident,)
    assert "no answer within 0.4 s" in row(world, ident).last_error
    assert len(fake.tickets) == 1

    world.clock.advance(seconds=30)
    assert deliver_pending(world.deps, generic(fake, timeout=0.4)).delivered == (ident,)
    keys = [r.headers["Idempotency-Key"] for r in fake.creations]
    assert keys == [f"support-request-{ident}"] * 2
    assert len(fake.tickets) == 1 and row(world, ident).helpdesk_ticket_id == str(fake.tickets[0].id)


def test_409_duplicate_counts_as_delivered_with_the_existing_ticket(world, fake):
    ident = open_request(world)
    deliver_pending(world.deps, generic(fake))
    # a crash after the helpdesk answered but before our commit leaves the row pending
    world.execute(sa.update(SupportRequest).values(delivery_status="pending", helpdesk_ticket_id=None))
    fake.duplicate_status = 409

    assert deliver_pending(world.deps, generic(fake)).delivered == (ident,)
    assert row(world, ident).helpdesk_ticket_id == "1001" and len(fake.tickets) == 1


def test_two_deliverers_racing_on_postgresql_create_one_ticket_each(world, fake):
    if world.backend != "postgresql":
        pytest.skip("SKIP LOCKED claiming is a PostgreSQL matter; SQLite serialises writers")
    ids = [open_request(world, n) for n in range(1, 7)]
    reports = world.run_threads(3, lambda i: deliver_pending(world.deps, generic(fake)))
    delivered = [x for r in reports for x in r.delivered]
    assert sorted(delivered) == ids
    assert len(fake.creations) == 6 and len(fake.tickets) == 6
    assert {r.delivery_status for r in world.all(SupportRequest)} == {"delivered"}


def test_an_unexpected_client_error_is_recorded_and_retried(world):
    ident = open_request(world)

    class Broken:
        kind = "broken"

        def create_ticket(self, ticket: Any) -> Any:
            raise KeyError("bug")

        def add_comment(self, comment: Any) -> None:
            raise AssertionError

    report = deliver_pending(world.deps, Broken())
    assert report.retrying == (ident,) and row(world, ident).last_error == "unexpected KeyError"


# --------------------------------------------------------------------------- the thread


def test_thread_messages_follow_the_ticket_in_order(world, fake):
    ident = open_request(world)
    early = append_message(world.deps, support_request_id=ident, author="customer", text="Are you there?")
    assert deliver_pending(world.deps, generic(fake)).messages_delivered == (early,)  # after its ticket
    second = append_message(world.deps, support_request_id=ident, author="assistant", text="A person will answer.")
    append_message(world.deps, support_request_id=ident, author="agent", text="Hello, Anna here.")
    third = append_message(world.deps, support_request_id=ident, author="customer", text="Thanks")

    fake.script("500")
    report = deliver_pending(world.deps, generic(fake))
    assert report.messages_retrying == (second,) and report.helpdesk_unavailable
    world.clock.advance(seconds=30)
    assert deliver_pending(world.deps, generic(fake)).messages_delivered == (second, third)

    comments = fake.tickets[0].comments
    assert [(c["author"], c["text"]) for c in comments] == [
        ("customer", "Are you there?"), ("assistant", "A person will answer."), ("customer", "Thanks")]
    keys = [r.headers["Idempotency-Key"] for r in fake.requests if r.path.endswith("/messages")]
    assert keys[-1] == f"support-request-{ident}-message-{third}"
    assert support_request_status(world.deps, ident).messages_pending == 0
    with pytest.raises(ValueError):
        append_message(world.deps, support_request_id=ident, author="bot", text="x")


def test_a_rejected_message_is_visible_and_can_be_requeued(world, fake):
    ident = open_request(world)
    deliver_pending(world.deps, generic(fake))
    msg = append_message(world.deps, support_request_id=ident, author="customer", text="hello")
    fake.script("400")
    assert deliver_pending(world.deps, generic(fake)).messages_failed == (msg,)
    status = support_request_status(world.deps, ident)
    assert (status.delivery_status, status.messages_failed) == ("delivered", 1)
    assert [f.id for f in failed_support_requests(world.deps)] == [ident]
    assert requeue_support_requests(world.deps, [ident]) == 1
    assert deliver_pending(world.deps, generic(fake)).messages_delivered == (msg,)
    assert world.get(SupportRequestMessage, msg).delivered_at is not None


# --------------------------------------------------------------------------- Zendesk


def test_zendesk_adapter_payload_shape_and_duplicate_lookup(world, fake):
    ident = open_request(world, account=False)
    assert deliver_pending(world.deps, zendesk(fake)).delivered == (ident,)
    [sent] = fake.creations
    assert sent.path == "/api/v2/tickets.json"
    assert sent.headers["Idempotency-Key"] == f"support-request-{ident}"
    ticket = sent.body["ticket"]
    reference = f"SR-{ident:06d}"
    assert ticket["external_id"] == reference
    assert ticket["subject"] == f"[{reference}] close_account:unpaid_invoices"
    assert ticket["comment"]["public"] is False
    assert "Customer: I want to close my account\nAssistant: You have an unpaid invoice." in ticket["comment"]["body"]
    assert "Account: not verified" in ticket["comment"]["body"] and "hunter2" not in str(sent.body)
    assert ticket["tags"] == ["supportbot", "channel_chat"] and "requester" not in ticket
    assert row(world, ident).helpdesk_url == f"{fake.url}/agent/tickets/1001"

    msg = append_message(world.deps, support_request_id=ident, author="customer", text="Still there?")
    assert deliver_pending(world.deps, zendesk(fake)).messages_delivered == (msg,)
    put = fake.requests[-1]
    assert (put.method, put.path) == ("PUT", "/api/v2/tickets/1001.json")
    assert put.body == {"ticket": {"comment": {"body": "Customer: Still there?", "public": False}}}

    # Zendesk's duplicate signal: 409, then the ticket is found by external_id
    world.execute(sa.update(SupportRequest).values(delivery_status="pending", helpdesk_ticket_id=None))
    fake.script("409")
    assert deliver_pending(world.deps, zendesk(fake)).delivered == (ident,)
    assert row(world, ident).helpdesk_ticket_id == "1001" and len(fake.tickets) == 1
    assert fake.requests[-1].method == "GET"


# --------------------------------------------------------------------------- configuration, loop, CLI


def test_settings_from_env():
    assert helpdesk_from_env({}) is None
    client = helpdesk_from_env({"HELPDESK_URL": "https://acme.zendesk.com/", "HELPDESK_TOKEN": TOKEN,
                                "HELPDESK_KIND": "Zendesk", "HELPDESK_TIMEOUT": "4"})
    assert isinstance(client, ZendeskHelpdesk) and client.base_url == "https://acme.zendesk.com"
    assert client.timeout == 4 and TOKEN not in repr(client)
    for bad in ({"HELPDESK_URL": "https://h"}, {"HELPDESK_KIND": "jira"},
                {"HELPDESK_URL": "ftp://h", "HELPDESK_TOKEN": "t"}, {"HELPDESK_TIMEOUT": "0"}):
        with pytest.raises(ValueError):
            HelpdeskSettings.from_env(bad)


def test_unconfigured_helpdesk_keeps_requests_pending_and_says_so_once(sqlite_world, caplog):
    ident = open_request(sqlite_world)
    stop = threading.Event()
    stop.set()
    caplog.set_level(logging.WARNING, logger="accounts.helpdesk")
    run_loop(sqlite_world.deps, None, stop=stop)
    assert caplog.text.count("no helpdesk configured") == 1
    assert support_request_status(sqlite_world.deps, ident).delivery_status == "pending"
    assert support_request_status(sqlite_world.deps, 999) is None


def test_run_loop_delivers_and_stops(sqlite_world, fake):
    ident = open_request(sqlite_world)
    stop = threading.Event()
    thread = threading.Thread(target=run_loop, args=(sqlite_world.deps, generic(fake)),
                              kwargs={"stop": stop, "interval": 0.05})
    thread.start()
    try:
        for _ in range(100):
            if row(sqlite_world, ident).delivery_status == "delivered":
                break
            stop.wait(0.05)
    finally:
        stop.set()
        thread.join(5)
    assert row(sqlite_world, ident).delivery_status == "delivered" and not thread.is_alive()


def test_cli_once(sqlite_world, fake, monkeypatch, capsys):
    ident = open_request(sqlite_world)
    url = str(sqlite_world.engine.url)
    monkeypatch.setenv("HELPDESK_URL", fake.url)
    monkeypatch.setenv("HELPDESK_TOKEN", TOKEN)
    assert main(["--url", url, "helpdesk", "--once"]) == 0
    assert "delivered 1" in capsys.readouterr().out
    assert row(sqlite_world, ident).delivery_status == "delivered"
    monkeypatch.delenv("HELPDESK_URL")
    assert main(["--url", url, "helpdesk", "--once"]) == 0
    assert "no helpdesk configured" in capsys.readouterr().out


def test_the_runner_starts_the_helpdesk_deliverer():
    from supportbot.runner import process_specs
    from supportbot.settings import load_settings

    [spec] = [s for s in process_specs(load_settings({})) if s.name == "helpdesk delivery"]
    assert spec.argv[-3:] == ["accounts", "helpdesk", "--loop"] and spec.health_url is None

