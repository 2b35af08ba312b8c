"""Connect tickets and anonymous session keys of the widget, with an injected clock."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt

import pytest

from channels.widget_tickets import (
    TICKET_SECONDS,
    AnonymousSessions,
    ConnectTickets,
    InvalidTicket,
    anonymous_conversation_id,
)
from supportbot.portal_token import PortalTokenVerifier

SECRET = "widget-ticket-test-secret-" + "s" * 32
START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone.utc)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def redeem(tickets: ConnectTickets, ticket: str):
    return asyncio.run(tickets.redeem(ticket))


def test_a_ticket_names_its_customer_once_and_reveals_nothing_readable(clock: Clock):
    verifier = PortalTokenVerifier(SECRET, clock=clock)
    identity = verifier.verify(verifier.issue("41", "ana@demo.example"))
    tickets = ConnectTickets.for_verifier(verifier, clock=clock)
    ticket = tickets.issue(identity)

    readable = ticket.encode() + base64.urlsafe_b64decode(ticket)
    assert b"ana@demo.example" not in readable and b'"41"' not in readable
    assert redeem(tickets, ticket) == identity
    with pytest.raises(InvalidTicket, match="already used"):
        redeem(tickets, ticket)


def test_a_ticket_expires_after_a_minute(clock: Clock):
    verifier = PortalTokenVerifier(SECRET, clock=clock)
    tickets = ConnectTickets.for_verifier(verifier, clock=clock)
    late = tickets.issue(verifier.verify(verifier.issue("41", "ana@demo.example")))
    in_time = tickets.issue(verifier.verify(verifier.issue("41", "ana@demo.example")))

    clock.now = START + dt.timedelta(seconds=TICKET_SECONDS - 1)
    assert redeem(tickets, in_time).account_id == "41"
    clock.now = START + dt.timedelta(seconds=TICKET_SECONDS + 1)
    with pytest.raises(InvalidTicket, match="forged or expired"):
        redeem(tickets, late)


def test_a_ticket_of_another_secret_or_altered_is_refused(clock: Clock):
    verifier = PortalTokenVerifier(SECRET, clock=clock)
    identity = verifier.verify(verifier.issue("41", "ana@demo.example"))
    other = ConnectTickets(b"another-secret-" + b"o" * 32, clock=clock).issue(identity)
    tickets = ConnectTickets.for_verifier(verifier, clock=clock)
    genuine = tickets.issue(identity)
    altered = genuine[:20] + ("x" if genuine[20] != "x" else "y") + genuine[21:]

    for ticket in (other, altered, "", "not a ticket"):
        with pytest.raises(InvalidTicket):
            redeem(tickets, ticket)


def test_a_ticket_outliving_its_portal_token_is_refused(clock: Clock):
    verifier = PortalTokenVerifier(SECRET, clock=clock)
    identity = verifier.verify(verifier.issue("41", "ana@demo.example",
                                              lifetime=dt.timedelta(seconds=30)))
    tickets = ConnectTickets.for_verifier(verifier, clock=clock)
    ticket = tickets.issue(identity)
    clock.now = START + dt.timedelta(seconds=45)
    with pytest.raises(InvalidTicket, match="expired"):
        redeem(tickets, ticket)


def test_an_anonymous_session_key_is_signed_expires_and_is_not_its_conversation_id(clock: Clock):
    sessions = AnonymousSessions(b"k" * 32, clock=clock, lifetime=dt.timedelta(hours=12))
    key = sessions.new()
    conversation = anonymous_conversation_id(key)

    assert sessions.is_valid(key)
    assert conversation != key and key not in conversation
    assert not sessions.is_valid(conversation)
    assert not AnonymousSessions(b"j" * 32, clock=clock).is_valid(key)
    clock.now = START + dt.timedelta(hours=12, seconds=1)
    assert not sessions.is_valid(key)
