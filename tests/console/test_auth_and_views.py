"""Sign-in rules with a controlled clock, and what the pages do with hostile text."""

from __future__ import annotations

import pytest

from console import auth, queries, views
from console.app import prepare_database, safe_local_path
from tracking.db import make_engine, write_transaction

START = 1_800_000_000.0


@pytest.fixture
def engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'console.db'}")
    prepare_database(engine)
    yield engine
    engine.dispose()


def test_passwords_are_stored_as_salted_scrypt_hashes():
    first, second = auth.hash_password("a long passphrase"), auth.hash_password("a long passphrase")
    assert first.startswith("scrypt$32768$8$1$") and first != second and "passphrase" not in first
    assert auth.verify_password("a long passphrase", first)
    assert not auth.verify_password("a long passphrasE", first)
    assert not auth.verify_password("anything", "not-a-hash")


def test_the_lock_after_five_wrong_passwords_lifts_after_fifteen_minutes(engine):
    with write_transaction(engine) as conn:
        auth.create_lead(conn, "lead@example.com", "a long passphrase", now=START)
        for minute in range(5):
            auth.record_failure(conn, "Lead@Example.com", "10.0.0.1", now=START + minute * 60)
        locked = auth.seconds_until_allowed(conn, "lead@example.com", "10.0.0.2", now=START + 5 * 60)
        other = auth.seconds_until_allowed(conn, "other@example.com", "10.0.0.1", now=START + 5 * 60)
        later = auth.seconds_until_allowed(conn, "lead@example.com", "10.0.0.2", now=START + 15 * 60 + 1)
    assert 0 < locked <= 10 * 60 + 1 and other == 0 and later == 0


def test_a_session_expires_and_sign_out_ends_it(engine):
    with write_transaction(engine) as conn:
        lead_id = auth.create_lead(conn, "lead@example.com", "a long passphrase", now=START)
        token = auth.start_session(conn, lead_id, now=START, lifetime_seconds=3600)
        signed_in = auth.load_session(conn, token, now=START + 3599)
        assert signed_in is not None and signed_in.email == "lead@example.com"
        assert auth.load_session(conn, token, now=START + 3600) is None
        assert auth.load_session(conn, token + "x", now=START) is None
        auth.end_session(conn, signed_in.token_hash)
        assert auth.load_session(conn, token, now=START + 1) is None


@pytest.mark.parametrize("target, expected", [
    ("/conversations?tag=x", "/conversations?tag=x"), ("//evil.example/x", "/conversations"),
    ("https://evil.example/", "/conversations"), ("/\\evil.example", "/conversations"), ("", "/conversations"),
])
def test_only_local_paths_are_followed_after_sign_in(target, expected):
    assert safe_local_path(target, "/conversations") == expected


def test_customer_and_assistant_text_is_shown_never_run():
    hostile = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
    events = [
        (1, {"event": "user", "timestamp": START, "text": hostile, "input_channel": "rest", "parse_data": {
            "intent": {"name": "greet", "confidence": 0.9}, "entities": [], "text": hostile}}),
        (2, {"event": "bot", "timestamp": START, "text": hostile, "data": {"buttons": [{"title": hostile}]}}),
        (3, {"event": "slot", "timestamp": START, "name": hostile, "value": hostile}),
    ]
    html = "".join(views._item(item) for item in queries.build_items(events, 0.6))
    assert "<script>" not in html and "<img" not in html
    assert html.count("&lt;script&gt;alert(2)&lt;/script&gt;") == 5  # message, reply, button, slot name and value
