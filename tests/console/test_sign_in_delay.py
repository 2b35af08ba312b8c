"""Console sign-in: a progressive delay instead of a lock, and X-Forwarded-For only from trusted proxies.

The console runs in process with an injected clock; requests go through aiohttp's test client.
"""

from __future__ import annotations

import asyncio
from typing import Dict, List

import pytest
from aiohttp.test_utils import TestClient, TestServer

from console import auth
from console.app import create_app, prepare_database
from console.settings import ConsoleSettings, load_console_settings
from tracking.db import make_engine, write_transaction

START = 1_800_000_000.0
PASSWORD = "a long passphrase for the lead"
CSRF = "csrf-token-for-the-test"


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'console.db'}")
    prepare_database(engine)
    with write_transaction(engine) as conn:
        auth.create_lead(conn, "lead@example.com", PASSWORD, now=START)
    yield engine
    engine.dispose()


def sign_ins(engine, clock: Clock, attempts: List[Dict], trusted: str = "") -> List[tuple]:
    """Post each attempt ({"password", "email", "xff", "at"}); return (status, Retry-After) of each."""
    settings = ConsoleSettings(trusted_proxies=auth.parse_trusted_proxies(trusted))

    async def go() -> List[tuple]:
        results = []
        async with TestClient(TestServer(create_app(settings, engine, clock=clock))) as client:
            for attempt in attempts:
                clock.now = START + attempt.get("at", 0)
                headers = {"Cookie": f"console_login_csrf={CSRF}"}
                if attempt.get("xff"):
                    headers["X-Forwarded-For"] = attempt["xff"]
                response = await client.post("/login", allow_redirects=False, headers=headers, data={
                    "csrf_token": CSRF, "email": attempt.get("email", "lead@example.com"),
                    "password": attempt["password"]})
                results.append((response.status, response.headers.get("Retry-After")))
        return results

    return asyncio.run(go())


def test_after_five_wrong_passwords_the_lead_waits_two_minutes_not_a_quarter_hour(engine):
    clock = Clock()
    wrong = [{"password": "guess", "at": second} for second in range(5)]
    results = sign_ins(engine, clock, wrong + [
        {"password": PASSWORD, "at": 64},    # too early: told exactly how long to wait
        {"password": PASSWORD, "at": 125},   # the delay is over: signed in
    ])
    assert [status for status, _ in results] == [401] * 5 + [429, 302]
    assert results[5][1] == "60"


def test_a_stranger_guessing_all_day_never_keeps_the_lead_out_longer_than_five_minutes(engine):
    with write_transaction(engine) as conn:
        at = START
        for _ in range(40):  # a guess whenever one is allowed
            wait = auth.seconds_until_allowed(conn, "lead@example.com", "198.51.100.1", now=at)
            assert wait <= auth.ACCOUNT_DELAY_MAX_SECONDS
            at += wait
            auth.record_failure(conn, "lead@example.com", f"198.51.100.{_ % 200}", now=at)
        waits = [auth.seconds_until_allowed(conn, "lead@example.com", "192.0.2.10", now=at + s)
                 for s in (0, 299, 301)]
    assert 0 < waits[0] <= auth.ACCOUNT_DELAY_MAX_SECONDS and waits[2] == 0
    assert [auth.account_delay_seconds(n) for n in (4, 5, 6, 7, 50)] == [0, 120, 240, 300, 300]


@pytest.mark.parametrize("peer, forwarded, expected", [
    ("198.51.100.7", ["203.0.113.1"], "198.51.100.7"),            # not a proxy: the header is the client's word
    ("10.0.0.2", ["203.0.113.1"], "203.0.113.1"),                 # our proxy says who connected
    ("10.0.0.2", ["6.6.6.6, 203.0.113.1"], "203.0.113.1"),        # a client's own header entry is not believed
    ("10.0.0.2", ["203.0.113.1, 10.0.0.9"], "203.0.113.1"),       # two of our proxies in a row
    ("10.0.0.2", ["203.0.113.1", "10.0.0.3"], "203.0.113.1"),     # one header per hop
    ("10.0.0.2", [], "10.0.0.2"),
    ("10.0.0.2", ["not-an-address"], "10.0.0.2"),
    ("::1", ["2001:db8::5"], "2001:db8::5"),
])
def test_x_forwarded_for_counts_only_from_a_trusted_proxy(peer, forwarded, expected):
    trusted = auth.parse_trusted_proxies("10.0.0.0/8, ::1")
    assert auth.client_address(peer, forwarded, trusted) == expected


def test_the_trusted_proxies_setting_is_checked_when_the_console_starts():
    assert load_console_settings({}).trusted_proxies == ()
    assert [str(n) for n in load_console_settings({"CONSOLE_TRUSTED_PROXIES": "127.0.0.1, 10.1.0.0/16"})
            .trusted_proxies] == ["127.0.0.1/32", "10.1.0.0/16"]
    with pytest.raises(ValueError, match="CONSOLE_TRUSTED_PROXIES"):
        load_console_settings({"CONSOLE_TRUSTED_PROXIES": "proxy.internal"})


def guesses_from(address: str, count: int, at: int = 0, password: str = "guess") -> List[Dict]:
    return [{"email": f"nobody{n}@example.com", "password": password, "xff": address, "at": at}
            for n in range(count)]


def test_behind_a_trusted_proxy_one_guessing_address_does_not_block_another(engine):
    results = sign_ins(engine, Clock(), guesses_from("203.0.113.1", 31) + [
        {"password": PASSWORD, "xff": "203.0.113.2"}], trusted="127.0.0.1")
    assert [status for status, _ in results[:30]] == [401] * 30
    assert results[30][0] == 429                      # the guessing address is limited
    assert results[31][0] == 302                      # the lead behind the same proxy signs in


def test_a_client_cannot_escape_the_address_limit_by_writing_x_forwarded_for(engine):
    spoofed = [{"email": f"nobody{n}@example.com", "password": "guess", "xff": f"203.0.113.{n}"}
               for n in range(31)]
    results = sign_ins(engine, Clock(), spoofed)  # no trusted proxy: the peer address counts
    assert [status for status, _ in results] == [401] * 30 + [429]
