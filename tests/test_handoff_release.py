"""A person gives a handed-over conversation back to the assistant; support leads see deliveries.

A whole assistant runs with a fake helpdesk on 127.0.0.1, a hand-over timeout
far longer than the tests (so only a release can resume a conversation) and
``HELPDESK_WEBHOOK_TOKEN`` set; once with SQLite, once with PostgreSQL for the
tracker store and the account store. The helpdesk releases through the
console's webhook, a support lead through the console's button; the
support-requests page shows delivery status and retries a rejected delivery;
a currency change blocked by payments is handed over and delivered.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from typing import Iterator

import pytest
import requests
import sqlalchemy as sa

from accounts.models import AuditEvent, SupportRequest, SupportRequestMessage
from channels.rest import anonymous_sender_id
from tests.conftest import RunningAssistant, assistant_env, start_assistant, stop_process, wait_for
from tests.conftest import reply_texts as texts
from tests.console.conftest import LEAD_EMAIL, LEAD_PASSWORD, create_lead, csrf_of
from tests.fake_helpdesk import FakeHelpdesk
from tests.operations.conftest import Customer, Store, postgres_database

pytestmark = pytest.mark.slow

WEBHOOK_TOKEN = "hd-webhook-" + "k" * 24
REFERENCE_RE = re.compile(r"reference (SR-(\d+))")


class Desk:
    """The running assistant, its fake helpdesk, its account store and a signed-in lead."""

    def __init__(self, assistant: RunningAssistant, helpdesk: FakeHelpdesk, store: Store) -> None:
        self.assistant, self.helpdesk, self.store = assistant, helpdesk, store

    def lead(self) -> requests.Session:
        session = requests.Session()
        form = session.get(f"{self.assistant.console_url}/login", timeout=10)
        reply = session.post(f"{self.assistant.console_url}/login", timeout=10, data={
            "csrf_token": csrf_of(form.text), "email": LEAD_EMAIL, "password": LEAD_PASSWORD,
            "next": "/support-requests"})
        assert reply.status_code == 200 and "Sign out" in reply.text
        return session

    def webhook(self, payload: object, token: str = WEBHOOK_TOKEN, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.post(f"{self.assistant.console_url}/helpdesk/webhook", json=payload, headers=headers,
                             timeout=10, **kwargs)

    def request(self, ident: int) -> SupportRequest:
        with self.store.factory() as session:
            return session.get(SupportRequest, ident)

    def hand_over(self, sender: str) -> tuple:
        """An anonymous customer asks for a person; returns (reference, id) once it is delivered."""
        reply = texts(self.assistant.say(sender, "I want to talk to a real person about my account"))
        found = REFERENCE_RE.search(reply)
        assert found and "pass on everything you write" in reply, reply
        ident = int(found.group(2))
        assert wait_for(lambda: self.request(ident).delivery_status == "delivered"), "never delivered"
        return found.group(1), ident

    def all_delivered(self) -> bool:
        with self.store.factory() as session:
            pending = session.execute(sa.select(sa.func.count(SupportRequest.id))
                                      .where(SupportRequest.delivery_status == "pending")).scalar_one()
            messages = session.execute(sa.select(sa.func.count(SupportRequestMessage.id)).where(
                SupportRequestMessage.delivered_at.is_(None), SupportRequestMessage.failed_at.is_(None))).scalar_one()
        return pending == 0 and messages == 0


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def desk(request, model_path, tmp_path_factory) -> Iterator[Desk]:
    tmp_dir = tmp_path_factory.mktemp(f"handoff-release-{request.param}")
    helpdesk = FakeHelpdesk().start()
    with contextlib.ExitStack() as stack:
        stack.callback(helpdesk.stop)
        env = {**assistant_env(tmp_dir), "HELPDESK_URL": helpdesk.url, "HELPDESK_TOKEN": "hd-test-token",
               "HANDOFF_TIMEOUT_MINUTES": "60", "HELPDESK_WEBHOOK_TOKEN": WEBHOOK_TOKEN}
        if request.param == "postgresql":
            if os.environ.get("ACCOUNTS_SKIP_PG") == "1":
                pytest.skip("ACCOUNTS_SKIP_PG=1")
            env["ACCOUNTS_DB_URL"] = stack.enter_context(postgres_database())
            env["TRACKER_DB_URL"] = stack.enter_context(postgres_database())
        process, assistant = start_assistant(tmp_dir, env)
        stack.callback(stop_process, process)
        assistant.accounts_db_url = env["ACCOUNTS_DB_URL"]
        created = create_lead(env.get("TRACKER_DB_URL") or f"sqlite:///{tmp_dir / 'tracker.db'}",
                              LEAD_EMAIL, LEAD_PASSWORD)
        assert created.returncode == 0, created.stderr
        yield Desk(assistant, helpdesk, Store(env["ACCOUNTS_DB_URL"]))


# --------------------------------------------------------------------------- the helpdesk's webhook


def test_the_helpdesk_releases_a_conversation_through_the_webhook(desk: Desk):
    sender = f"release-{uuid.uuid4().hex}"
    reference, ident = desk.hand_over(sender)
    assert desk.assistant.say(sender, "hello? anyone there?") == []

    # no token, a wrong token, another scheme: refused, and the bot stays quiet
    assert desk.webhook({"external_id": reference, "status": "solved"}, token="").status_code == 401
    wrong = desk.webhook({"external_id": reference, "status": "solved"}, token=WEBHOOK_TOKEN + "x")
    assert wrong.status_code == 401 and wrong.headers.get("WWW-Authenticate", "").startswith("Bearer")
    basic = requests.post(f"{desk.assistant.console_url}/helpdesk/webhook", timeout=10,
                          json={"external_id": reference, "status": "solved"},
                          headers={"Authorization": f"Basic {WEBHOOK_TOKEN}"})
    assert basic.status_code == 401
    assert desk.request(ident).released_at is None
    assert desk.assistant.say(sender, "still waiting for a person") == []

    # malformed and unknown requests: clear 4xx, nothing changes
    assert desk.webhook({"status": "solved"}).status_code == 400
    assert desk.webhook({"external_id": "not-a-reference", "status": "solved"}).status_code == 400
    assert desk.webhook({"request_id": ident}).status_code == 400
    assert desk.webhook([ident]).status_code == 400
    assert desk.webhook({"request_id": ident, "external_id": "SR-999999", "status": "solved"}).status_code == 400
    unknown = desk.webhook({"external_id": "SR-999999", "status": "solved"})
    assert unknown.status_code == 404 and unknown.json()["error"] == "unknown support request"
    pending = desk.webhook({"request_id": ident, "status": "pending"})
    assert pending.status_code == 200 and pending.json()["released"] is False
    assert desk.request(ident).released_at is None

    released = desk.webhook({"external_id": reference, "status": "Solved"})
    assert released.status_code == 200, released.text
    assert released.json()["released"] is True and released.json()["already_released"] is False
    again = desk.webhook({"request_id": ident, "status": "solved"})
    assert again.status_code == 200 and again.json()["already_released"] is True
    assert again.json()["released_at"] == released.json()["released_at"]
    stored = desk.request(ident)
    assert (stored.released_by, stored.status) == ("helpdesk", "resolved")
    with desk.store.factory() as session:
        audits = session.execute(sa.select(AuditEvent).where(AuditEvent.action == "support_request_released")).scalars()
        assert [a.details["support_request_id"] for a in audits].count(ident) == 1

    # the customer's next message is answered by the assistant again
    assert "personal and business" in texts(desk.assistant.say(sender, "which account types do you have?"))
    # and it is not added to the ticket any more
    ticket = next(t for t in desk.helpdesk.tickets if t.payload.get("reference") == reference)
    assert wait_for(desk.all_delivered)
    assert not any("which account types" in str(c) for c in ticket.comments)
    assert any("still waiting for a person" in str(c) for c in ticket.comments)


def test_the_webhook_needs_no_session_but_console_pages_still_do(desk: Desk):
    page = requests.get(f"{desk.assistant.console_url}/support-requests", allow_redirects=False, timeout=10)
    assert page.status_code == 302 and page.headers["Location"].startswith("/login")
    for path in ("/support-requests/release", "/support-requests/retry"):
        reply = requests.post(f"{desk.assistant.console_url}{path}", data={"request_id": "1"},
                              allow_redirects=False, timeout=10)
        assert reply.status_code == 401, path
    assert requests.get(f"{desk.assistant.console_url}/helpdesk/webhook", timeout=10).status_code == 405


# --------------------------------------------------------------------------- the console


def test_a_support_lead_gives_the_conversation_back_from_the_console(desk: Desk):
    sender = f"button-{uuid.uuid4().hex}"
    reference, ident = desk.hand_over(sender)
    lead = desk.lead()
    conversation = anonymous_sender_id(sender, "127.0.0.1")  # channels/rest.py scopes anonymous senders
    page = lead.get(f"{desk.assistant.console_url}/conversation", params={"id": conversation}, timeout=10)
    assert page.status_code == 200
    assert reference in page.text and "delivered" in page.text and "Give back to the assistant" in page.text

    # without the CSRF token the button does nothing
    forged = lead.post(f"{desk.assistant.console_url}/support-requests/release", timeout=10,
                       data={"request_id": str(ident)}, allow_redirects=False)
    assert forged.status_code == 403
    assert desk.assistant.say(sender, "is anybody there?") == []

    done = lead.post(f"{desk.assistant.console_url}/support-requests/release", timeout=10, data={
        "csrf_token": csrf_of(page.text), "request_id": str(ident),
        "back": f"/conversation?id={conversation}"})
    assert done.status_code == 200 and "given back to the assistant" in done.text
    assert f"by console:{LEAD_EMAIL}" in done.text and "Give back to the assistant" not in done.text
    assert desk.request(ident).released_by == f"console:{LEAD_EMAIL}"
    assert desk.request(ident).status == "open"

    assert "personal and business" in texts(desk.assistant.say(sender, "which account types do you have?"))

    twice = lead.post(f"{desk.assistant.console_url}/support-requests/release", timeout=10, data={
        "csrf_token": csrf_of(page.text), "request_id": str(ident), "back": "/support-requests"})
    assert twice.status_code == 200 and "had already been given back" in twice.text
    unknown = lead.post(f"{desk.assistant.console_url}/support-requests/release", timeout=10, data={
        "csrf_token": csrf_of(page.text), "request_id": "999999"})
    assert unknown.status_code == 404


def test_leads_see_delivery_status_and_retry_a_rejected_delivery(desk: Desk):
    assert wait_for(desk.all_delivered), "earlier deliveries still pending"
    desk.helpdesk.script("400")
    sender = f"rejected-{uuid.uuid4().hex}"
    reply = texts(desk.assistant.say(sender, "I want to talk to a real person about my account"))
    reference, ident = REFERENCE_RE.search(reply).group(1), int(REFERENCE_RE.search(reply).group(2))
    assert wait_for(lambda: desk.request(ident).delivery_status == "failed")

    lead = desk.lead()
    failed = lead.get(f"{desk.assistant.console_url}/support-requests", params={"delivery": "failed"}, timeout=10)
    assert failed.status_code == 200
    row = re.search(rf'<tr data-request="{ident}">(.*?)</tr>', failed.text, re.S)
    assert row, failed.text[:2000]
    assert reference in row.group(1) and "failed" in row.group(1) and "HTTP 400" in row.group(1)
    assert f'href="/conversation?id={anonymous_sender_id(sender, "127.0.0.1")}"' in row.group(1)
    assert "Retry delivery" in row.group(1)
    delivered = lead.get(f"{desk.assistant.console_url}/support-requests", params={"delivery": "delivered"},
                         timeout=10)
    assert f'data-request="{ident}"' not in delivered.text
    assert lead.get(f"{desk.assistant.console_url}/support-requests", params={"delivery": "nonsense"},
                    timeout=10).status_code == 400

    retried = lead.post(f"{desk.assistant.console_url}/support-requests/retry", timeout=10, data={
        "csrf_token": csrf_of(failed.text), "request_id": str(ident), "back": "/support-requests?delivery=failed"})
    assert retried.status_code == 200 and "Delivery will be tried again" in retried.text
    assert wait_for(lambda: desk.request(ident).delivery_status == "delivered")
    ticket_id = desk.request(ident).helpdesk_ticket_id
    page = lead.get(f"{desk.assistant.console_url}/support-requests", timeout=10)
    row = re.search(rf'<tr data-request="{ident}">(.*?)</tr>', page.text, re.S).group(1)
    assert "delivered" in row and f">{ticket_id}</a>" in row and "Retry delivery" not in row
    assert len([t for t in desk.helpdesk.tickets if t.payload.get("reference") == reference]) == 1


# --------------------------------------------------------------------------- currency blocked by payments


def test_a_currency_change_blocked_by_payments_is_handed_over_on_yes_and_delivered_redacted(desk: Desk):
    account_id, email = desk.store.create_customer(payment=True)
    customer = Customer(desk.assistant, account_id, email, f"cur-{uuid.uuid4().hex}")
    offer = customer.says("I want to change the currency of my account to GBP, account number 48291377")
    assert "payments have already been made" in offer and "shall I pass it on to them?" in offer, offer
    assert "reference SR-" not in offer
    reply = customer.says("yes")
    assert "reference SR-" in reply, reply
    assert "pass on everything you write" in reply
    ident = int(REFERENCE_RE.search(reply).group(2))
    stored = desk.request(ident)
    assert (stored.reason, stored.account_id, stored.contact_email) == (
        "change_currency:payments_exist", account_id, email)
    assert wait_for(lambda: desk.request(ident).delivery_status == "delivered")
    ticket = next(t for t in desk.helpdesk.tickets if t.payload.get("reference") == f"SR-{ident:06d}")
    lines = [line["text"] for line in ticket.payload["transcript"]]
    assert any("change the currency" in line and "account number [redacted]" in line for line in lines)
    assert "48291377" not in str(ticket.payload) and "48291377" not in str(stored.context)
    assert desk.store.account(account_id).currency == "EUR"
    # the conversation is with a person now
    assert customer.say("hello?") == []
