"""The review console over HTTP, on conversations real chats produced (SQLite and PostgreSQL).

Each test runs once per backend (the ``console`` fixture, see conftest.py).
"""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
import os
from datetime import timedelta
from typing import Dict, List, Set

import pytest
import requests
import sqlalchemy as sa

from supportbot.settings import PROJECT_ROOT
from tests.console.conftest import (
    FAILED,
    FALLBACK,
    HANDED_OFF,
    LEAD_EMAIL,
    SCRIPTS,
    ConsoleUnderTest,
    create_lead,
    csrf_of,
    utc_today,
)
from tests.secret_scan import contains_secret

pytestmark = pytest.mark.slow

ROW_RE = re.compile(r'<tr data-sender="([^"]+)"')


def listed(session: requests.Session, console: ConsoleUnderTest, **params: str) -> Set[str]:
    """Names of the conversations the list shows for ``params`` (all on one page)."""
    reply = session.get(f"{console.url}/conversations", params={"per_page": "200", **params}, timeout=10)
    assert reply.status_code == 200
    return console.names(set(ROW_RE.findall(reply.text)))


@pytest.fixture
def lead(console: ConsoleUnderTest) -> requests.Session:
    return console.sign_in()


# --------------------------------------------------------------------------- sign-in and protection

PAGES = ["/", "/conversations", "/conversations?fallback=1", "/conversation?id=x", "/dashboard", "/nlu-inbox",
         "/conversations/export.csv", "/conversations/export.jsonl", "/nlu-inbox/export.yml",
         "/support-requests", "/support-requests?delivery=failed", "/privacy", "/admin/leads",
         "/links", "/links?account=1"]
ACTIONS = ["/conversation/tags", "/conversation/tags/remove", "/conversation/notes", "/conversation/status",
           "/nlu-inbox/label", "/logout", "/support-requests/retry", "/support-requests/release",
           "/privacy/export", "/privacy/erase", "/links/revoke",
           "/admin/leads/create", "/admin/leads/disable", "/admin/leads/enable", "/admin/leads/reset-password"]


def test_nothing_is_reachable_without_signing_in(console: ConsoleUnderTest):
    anonymous = requests.Session()
    fallback_text = "the phone and the colleague"
    for path in PAGES:
        reply = anonymous.get(f"{console.url}{path}", allow_redirects=False, timeout=10)
        assert reply.status_code == 302, path
        assert reply.headers["Location"].startswith("/login?next="), path
        assert fallback_text not in reply.text
    for path in ACTIONS:
        reply = anonymous.post(f"{console.url}{path}", data={"id": console.senders["faq"], "tag": "x"},
                               allow_redirects=False, timeout=10)
        assert reply.status_code == 401, path
    assert anonymous.get(f"{console.url}/static/console.js", timeout=10).status_code == 401
    login = anonymous.get(f"{console.url}/login", timeout=10)
    assert login.status_code == 200 and 'type="password"' in login.text
    assert "default-src 'self'" in login.headers["Content-Security-Policy"]


def test_the_app_has_no_route_that_escapes_the_sign_in_check(console: ConsoleUnderTest):
    from console.app import PUBLIC_PATHS, TOKEN_PATHS, create_app
    from console.settings import ConsoleSettings
    from tracking.db import make_engine

    engine = make_engine("sqlite://")
    routes = {r.resource.canonical for r in create_app(ConsoleSettings(), engine).router.routes()}
    engine.dispose()
    # TOKEN_PATHS (the helpdesk webhook) check their own token: tests/test_handoff_release.py
    tested = {p.split("?")[0] for p in PAGES + ACTIONS} | PUBLIC_PATHS | TOKEN_PATHS | {"/static"}
    assert routes <= tested, f"routes without a sign-in test: {routes - tested}"


def test_signing_in_sets_a_strict_http_only_session_and_signing_out_ends_it(console: ConsoleUnderTest):
    session = requests.Session()
    form = session.get(f"{console.url}/login", timeout=10)
    reply = session.post(f"{console.url}/login", allow_redirects=False, timeout=10, data={
        "csrf_token": csrf_of(form.text), "email": "Lead@Example.com ", "password": "correct horse battery staple",
        "next": "/dashboard"})
    assert reply.status_code == 302 and reply.headers["Location"] == "/dashboard"
    cookie = next(c for c in reply.headers.getall("Set-Cookie") if c.startswith("console_session=")) \
        if hasattr(reply.headers, "getall") else reply.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    page = session.get(f"{console.url}/conversations", timeout=10)
    assert LEAD_EMAIL in page.text
    session.post(f"{console.url}/logout", data={"csrf_token": csrf_of(page.text)}, timeout=10)
    after = session.get(f"{console.url}/conversations", allow_redirects=False, timeout=10)
    assert after.status_code == 302 and after.headers["Location"].startswith("/login")


def test_sign_in_never_redirects_to_another_site(console: ConsoleUnderTest):
    session = requests.Session()
    form = session.get(f"{console.url}/login", timeout=10)
    reply = session.post(f"{console.url}/login", allow_redirects=False, timeout=10, data={
        "csrf_token": csrf_of(form.text), "email": LEAD_EMAIL, "password": "correct horse battery staple",
        "next": "//evil.example/steal"})
    assert reply.headers["Location"] == "/conversations"


def test_wrong_passwords_are_refused_then_sign_in_is_locked_for_a_while(console: ConsoleUnderTest):
    created = create_lead(console.db_url, "second.lead@example.com", "another long passphrase")
    assert created.returncode == 0, created.stderr
    session = requests.Session()
    token = csrf_of(session.get(f"{console.url}/login", timeout=10).text)

    def attempt(password: str) -> requests.Response:
        return session.post(f"{console.url}/login", timeout=10, data={
            "csrf_token": token, "email": "second.lead@example.com", "password": password})

    for _ in range(5):
        wrong = attempt("not the password")
        assert wrong.status_code == 401 and "Wrong e-mail or password" in wrong.text
    locked = attempt("another long passphrase")
    assert locked.status_code == 429 and "Too many failed sign-ins" in locked.text
    assert int(locked.headers["Retry-After"]) > 0
    assert "console_session" not in session.cookies


def test_create_lead_refuses_short_passwords_and_duplicates(console: ConsoleUnderTest):
    short = create_lead(console.db_url, "third@example.com", "short")
    assert short.returncode == 1 and "at least 12 characters" in short.stderr
    again = create_lead(console.db_url, LEAD_EMAIL, "yet another long password")
    assert again.returncode == 1 and "exists already" in again.stderr


def test_state_changes_need_the_csrf_token_and_our_own_origin(console: ConsoleUnderTest, lead):
    sender = console.senders["tfa"]
    page = lead.get(f"{console.url}/conversation", params={"id": sender}, timeout=10)
    token = csrf_of(page.text)
    missing = lead.post(f"{console.url}/conversation/tags", data={"id": sender, "tag": "no-token"}, timeout=10)
    assert missing.status_code == 403
    foreign = lead.post(f"{console.url}/conversation/tags", data={"id": sender, "tag": "cross-site", "csrf_token": token},
                        headers={"Origin": "https://evil.example"}, timeout=10)
    assert foreign.status_code == 403
    page = lead.get(f"{console.url}/conversation", params={"id": sender}, timeout=10)
    assert "no-token" not in page.text and "cross-site" not in page.text


# --------------------------------------------------------------------------- the list and its filters


def test_the_list_shows_every_real_conversation_with_what_happened(console: ConsoleUnderTest, lead):
    reply = lead.get(f"{console.url}/conversations", params={"per_page": "200"}, timeout=10)
    assert console.names(set(ROW_RE.findall(reply.text))) == set(SCRIPTS)
    assert f"<strong>{len(SCRIPTS)}</strong> conversations" in reply.text
    row = reply.text[reply.text.index(f'data-sender="{console.senders["broken"]}"'):]
    row = row[:row.index("</tr>")]
    assert "failed action" in row and "fallback" in row and "switch it" in row


@pytest.mark.parametrize("params, expected", [
    ({"fallback": "1"}, FALLBACK),
    ({"handoff": "1"}, HANDED_OFF),
    ({"failed": "1"}, FAILED),
    ({"intent": "forgot_password"}, {"password", "clarified"}),
    ({"intent": "nlu_fallback", "failed": "1"}, {"broken"}),
    ({"operation": "close_account", "outcome": "performed"}, {"closed"}),
    ({"outcome": "refused"}, {"refused"}),
    ({"q": "COWORKER"}, {"faq"}),
    ({"q": "forgot password?"}, {"password", "clarified"}),
    ({"q": "o"}, set(SCRIPTS) - {"broken"}),
    ({"channel": "rest"}, set(SCRIPTS)),
    ({"channel": "telegram"}, set()),
    ({"from": "{first_day}", "to": "{last_day}"}, set(SCRIPTS)),
    ({"to": "{two_days_before}"}, set()),
], ids=["fallback", "handoff", "failed", "intent", "combined", "performed", "refused", "search-user",
        "search-bot", "search-short", "channel", "other-channel", "today", "before"])
def test_filters_find_exactly_the_matching_conversations(console: ConsoleUnderTest, lead, params, expected):
    days = {"first_day": console.first_day.isoformat(), "last_day": console.last_day.isoformat(),
            "two_days_before": (console.first_day - timedelta(days=2)).isoformat()}
    params = {name: value.format(**days) for name, value in params.items()}
    assert listed(lead, console, **params) == expected


def test_filters_by_verified_customer_and_low_confidence(console: ConsoleUnderTest, lead):
    assert listed(lead, console, customer=str(console.accounts["closed"])) == {"closed"}
    low = listed(lead, console, confidence_below="0.5")
    assert {"clarified", "two_failures", "broken"} <= low and "faq" not in low and "tfa" not in low


def test_sorting_and_pagination(console: ConsoleUnderTest, lead):
    pages: List[List[str]] = []
    for page in (1, 2, 3, 4):
        reply = lead.get(f"{console.url}/conversations", params={"sort": "messages", "per_page": "3", "page": str(page)},
                         timeout=10)
        pages.append(ROW_RE.findall(reply.text))
        assert f"Page {page} of 4" in reply.text
    flat = [s for p in pages for s in p]
    assert [len(p) for p in pages] == [3, 3, 3, 1] and len(set(flat)) == len(SCRIPTS)
    counts = [len(SCRIPTS[console.name_of(sender)]) for sender in flat]  # customer messages per conversation
    assert counts == sorted(counts, reverse=True)


# --------------------------------------------------------------------------- transcript


def test_a_transcript_shows_intents_confidences_policies_and_marks_the_fallback(console: ConsoleUnderTest, lead):
    page = lead.get(f"{console.url}/conversation", params={"id": console.senders["two_failures"]}, timeout=10).text
    assert page.count('class="bubble">switch it<') == 1 and "the phone and the colleague" in page
    assert '<b class="intent">nlu_fallback</b>' in page and "Fallback: not understood (best guess" in page
    assert '<code class="action-name">action_clarify</code>' in page and "RulePolicy" in page
    assert re.search(r'<b class="confidence">0\.\d\d</b>', page)
    assert "Did you mean one of these?" in page  # the assistant's reply, with its buttons
    assert "Something else" in page
    assert "channel rest" in page


def test_a_transcript_marks_where_an_action_failed(console: ConsoleUnderTest, lead):
    broken = lead.get(f"{console.url}/conversation", params={"id": console.senders["broken"]}, timeout=10).text
    assert "Failed: the action left no result" in broken
    rejected = lead.get(f"{console.url}/conversation", params={"id": console.senders["rejected"]}, timeout=10).text
    assert "form interrupted" in rejected and "declined to run; the assistant chose another action" in rejected
    assert "Failed:" not in rejected and "rejected the action" not in rejected


def test_interruptions_are_neutral_in_the_list_and_real_failures_count_on_the_dashboard(console, lead):
    page = lead.get(f"{console.url}/conversations", params={"per_page": "200"}, timeout=10).text
    rows = dict(re.findall(r'<tr data-sender="([^"]+)"(.*?)</tr>', page, re.S))
    assert re.search(r"form interrupted ×[1-9]", rows[console.senders["rejected"]])
    assert "failed action" not in rows[console.senders["rejected"]]
    assert "failed action ×1" in rows[console.senders["broken"]]
    dashboard = lead.get(f"{console.url}/dashboard", params={"from": console.first_day.isoformat(),
                                                               "to": console.last_day.isoformat()},
                         timeout=10).text
    assert re.search(r'id="stat-failed" href="[^"]*failed=1[^"]*">%d<' % len(FAILED), dashboard)


def test_a_transcript_shows_the_verified_customer_slots_and_operations(console: ConsoleUnderTest, lead):
    closed = lead.get(f"{console.url}/conversation", params={"id": console.senders["closed"]}, timeout=10).text
    account = console.accounts["closed"]
    assert f"<dd>{account}</dd>" in closed and "clean@demo.example" in closed
    assert "<code>last_operation</code>" in closed and "Operation close_account performed" in closed
    code = console.sent["closed"][-1]
    assert "Answer to the form close_account_form" in closed  # a slot value, not a fallback
    assert not contains_secret(closed, code) and "[redacted]" in closed  # the e-mailed code is never shown
    refused = lead.get(f"{console.url}/conversation", params={"id": console.senders["refused"]}, timeout=10).text
    assert "Operation close_account refused (unpaid_invoices)" in refused
    assert "Support request opened" in refused and "hand-off" in refused


def test_an_unknown_conversation_is_not_found(console: ConsoleUnderTest, lead):
    reply = lead.get(f"{console.url}/conversation", params={"id": "no-such-conversation"}, timeout=10)
    assert reply.status_code == 404 and "No such conversation" in reply.text


# --------------------------------------------------------------------------- review records


def test_tags_notes_and_status_are_recorded_with_who_and_when(console: ConsoleUnderTest, lead):
    sender = console.senders["two_failures"]
    page = lead.get(f"{console.url}/conversation", params={"id": sender}, timeout=10).text
    token = csrf_of(page)
    days = {utc_today().isoformat()}  # the console's clock (UTC), around the posts
    for path, data in (("/conversation/tags", {"tag": "Unclear Wording"}),
                       ("/conversation/notes", {"body": "Customer meant the currency; add examples."}),
                       ("/conversation/status", {"status": "follow_up"})):
        reply = lead.post(f"{console.url}{path}", data={"id": sender, "csrf_token": token, **data}, timeout=10)
        assert reply.status_code == 200
    page = reply.text
    days.add(utc_today().isoformat())
    assert '<span class="tag">unclear-wording</span>' in page
    assert "Customer meant the currency; add examples." in page
    assert any(f"Set by {LEAD_EMAIL}, {day}" in page for day in days)
    assert page.count(LEAD_EMAIL) >= 4  # tag, note, status and the activity log name the lead
    assert listed(lead, console, tag="unclear-wording") == {"two_failures"}
    assert listed(lead, console, status="follow_up") == {"two_failures"}
    assert "two_failures" not in listed(lead, console, status="new")

    removed = lead.post(f"{console.url}/conversation/tags/remove",
                        data={"id": sender, "tag": "unclear-wording", "csrf_token": token}, timeout=10)
    assert '<span class="tag">unclear-wording</span>' not in removed.text and "tag removed" in removed.text
    assert listed(lead, console, tag="unclear-wording") == set()


def test_an_invalid_tag_is_refused_with_a_reason(console: ConsoleUnderTest, lead):
    sender = console.senders["tfa"]
    token = csrf_of(lead.get(f"{console.url}/conversation", params={"id": sender}, timeout=10).text)
    reply = lead.post(f"{console.url}/conversation/tags", data={"id": sender, "tag": "<b>", "csrf_token": token}, timeout=10)
    assert reply.status_code == 400 and "A tag is 1-32 characters" in reply.text and "<b>" not in reply.text


# --------------------------------------------------------------------------- NLU inbox


def test_nlu_inbox_corrections_export_as_rasa_training_data(console: ConsoleUnderTest, lead, tmp_path):
    inbox = lead.get(f"{console.url}/nlu-inbox", timeout=10).text
    assert "switch it" in inbox and "the phone and the colleague" in inbox
    assert "/forgot_password" not in inbox  # button payloads are not NLU
    event_ids = dict(re.findall(r'<tr data-event="(\d+)"><td><p class="message">([^<]+)</p>', inbox))
    phone = next(e for e, text in event_ids.items() if text == "the phone and the colleague")
    token = csrf_of(inbox)
    corrected = lead.post(f"{console.url}/nlu-inbox/label", timeout=10, data={
        "event_id": phone, "label": "add_user", "csrf_token": token, "back": "/nlu-inbox"})
    assert "Correction saved." in corrected.text
    assert f'data-event="{phone}"' not in corrected.text  # no longer pending
    done = lead.get(f"{console.url}/nlu-inbox", params={"view": "corrected"}, timeout=10).text
    assert "the phone and the colleague" in done and f"Corrected as <b>add_user</b> by {LEAD_EMAIL}" in done

    export = lead.get(f"{console.url}/nlu-inbox/export.yml", timeout=10)
    assert export.status_code == 200 and "attachment" in export.headers["Content-Disposition"]
    path = tmp_path / "review.yml"
    path.write_text(export.text)
    from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLReader

    data = RasaYAMLReader().read(path)
    examples = {(m.get("text"), m.get("intent")) for m in data.intent_examples}
    assert ("the phone and the colleague", "add_user") in examples


def test_an_unknown_intent_cannot_be_used_as_a_label(console: ConsoleUnderTest, lead):
    inbox = lead.get(f"{console.url}/nlu-inbox", timeout=10).text
    event = re.search(r'<tr data-event="(\d+)">', inbox).group(1)
    reply = lead.post(f"{console.url}/nlu-inbox/label", timeout=10, data={
        "event_id": event, "label": "made_up_intent", "csrf_token": csrf_of(inbox)})
    assert reply.status_code == 400 and "Pick one of the assistant&#x27;s intents" in reply.text


# --------------------------------------------------------------------------- dashboard and exports


def test_the_dashboard_counts_what_happened(console: ConsoleUnderTest, lead):
    page = lead.get(f"{console.url}/dashboard", timeout=10).text
    total = len(SCRIPTS)
    assert f'id="stat-conversations">{total}<' in page
    assert f'id="stat-containment">{(total - len(HANDED_OFF)) / total * 100:.1f}%<' in page
    assert f'id="stat-fallback">{len(FALLBACK) / total * 100:.1f}%<' in page
    series = {m[0]: json.loads(m[1].replace("&quot;", '"')) for m in
              re.findall(r'data-chart="(\w+)" data-title="[^"]*" data-series="([^"]*)"', page)}
    chat_days = {console.first_day.isoformat(), console.last_day.isoformat()}
    columns = [column for column in series["columns"] if column["label"] in chat_days]
    assert (sum(c["value"] for c in columns), sum(c["extra"] for c in columns)) == (total, len(HANDED_OFF))
    intents = {d["label"]: d["value"] for d in series["bars"]}
    assert intents["forgot_password"] == 2 and "nlu_fallback" not in intents
    assert {"label": "close_account", "performed": 1, "refused": 1} in series["stacked"]


def test_exports_follow_the_filters(console: ConsoleUnderTest, lead):
    reply = lead.get(f"{console.url}/conversations/export.csv", params={"fallback": "1"}, timeout=10)
    assert reply.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(reply.text)))
    assert console.names({r["conversation_id"] for r in rows}) == FALLBACK
    broken = next(r for r in rows if r["conversation_id"] == console.senders["broken"])
    assert broken["failed_actions"] == "1" and broken["first_message"] == "switch it"

    lines = lead.get(f"{console.url}/conversations/export.jsonl", params={"outcome": "performed"}, timeout=10).text
    records = [json.loads(line) for line in lines.splitlines()]
    assert [console.name_of(r["conversation_id"]) for r in records] == ["closed"]
    assert records[0]["operations_performed"] == ["close_account"]
    assert records[0]["customer_id"] == str(console.accounts["closed"])
    said = [m["text"] for m in records[0]["messages"] if m["role"] == "user"]
    assert said[:2] == SCRIPTS["closed"][:2] and len(said) == 3


# --------------------------------------------------------------------------- rebuilding the index


def _index(db_url: str) -> Dict[str, list]:
    engine = sa.create_engine(db_url, future=True)
    try:
        with engine.connect() as conn:
            return {
                "summary": sorted(tuple(r) for r in conn.execute(sa.text(
                    "SELECT * FROM conversation_summary ORDER BY sender_id"))),
                "facts": sorted(tuple(r) for r in conn.execute(sa.text("SELECT * FROM conversation_fact"))),
                "messages": sorted(tuple(r)[1:] for r in conn.execute(sa.text(
                    "SELECT * FROM message_index ORDER BY event_id"))),
            }
    finally:
        engine.dispose()


def test_rebuilding_the_index_reproduces_what_the_store_maintained(console: ConsoleUnderTest, lead):
    before = _index(console.db_url)
    env = dict(os.environ, TRACKER_DB_URL=console.db_url, PYTHONPATH=str(PROJECT_ROOT),
               SQLALCHEMY_SILENCE_UBER_WARNING="1")
    result = subprocess.run([sys.executable, "-m", "tracking", "rebuild-index"], capture_output=True, text=True,
                            env=env, cwd=PROJECT_ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"Indexed {len(SCRIPTS)} conversations" in result.stdout
    assert _index(console.db_url) == before
    assert listed(lead, console, q="coworker") == {"faq"}  # the search index was rebuilt too
