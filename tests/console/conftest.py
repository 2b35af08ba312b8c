"""Fixtures of the review console tests: one assistant per database, filled by real chats.

For each backend (SQLite file, PostgreSQL database) one assistant is started
with ``start_assistant`` and ``TRACKER_DB_URL`` pointing at that database; the
conversations below are then chatted through its REST channel, so the console
reads exactly what Rasa and the tracker store wrote. A support lead is created
with ``python -m console create-lead``.

Failed actions are real too: the assistant's action endpoint points at
:class:`FaultyActionServer`, a small proxy that forwards to the real action
server except for the conversations of the ``broken`` script (it answers HTTP
500, as a crashed action server does) and the ``rejected`` one (HTTP 400 with
an ``ActionExecutionRejection`` body).

PostgreSQL: a uniquely named database is created through
``CONSOLE_TEST_PG_ADMIN_URL`` (default
``postgresql+psycopg2://postgres@127.0.0.1:5432/postgres``) and dropped at the
end. If the server cannot be reached the PostgreSQL variants FAIL; set
``CONSOLE_SKIP_PG=1`` to skip them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from datetime import date, datetime, timezone
from typing import Dict, Iterator, List, Optional, Set

import pytest
import requests
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from supportbot.runner import free_port
from channels.rest import anonymous_sender_id, verified_sender_id
from supportbot.portal_token import PortalTokenVerifier
from supportbot.settings import PROJECT_ROOT
from tests.conftest import TEST_PORTAL_SECRET, RunningAssistant, assistant_env, start_assistant, stop_process

PG_ADMIN_DEFAULT = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
LEAD_EMAIL = "lead@example.com"
LEAD_PASSWORD = "correct horse battery staple"
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


class FaultyActionServer:
    """Forwards Rasa's action calls to the action server, failing some conversations on purpose."""

    def __init__(self) -> None:
        self.target = ""
        #: conversation id -> "broken" or "rejected" (anonymous ids are digests: registered by chat())
        self.faults: Dict[str, str] = {}
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                call = json.loads(body or b"{}")
                sender = (call.get("tracker") or {}).get("sender_id", "")
                fault = proxy.faults.get(sender)
                if fault == "broken":
                    self._answer(500, b"Internal Server Error", "text/plain")
                elif fault == "rejected":
                    rejection = {"action_name": call.get("next_action"), "error": "rejected by the test"}
                    self._answer(400, json.dumps(rejection).encode(), "application/json")
                else:
                    request = urllib.request.Request(proxy.target, data=body, method="POST",
                                                     headers={"Content-Type": "application/json"})
                    try:
                        with urllib.request.urlopen(request, timeout=30) as reply:
                            self._answer(reply.status, reply.read(), "application/json")
                    except urllib.error.HTTPError as error:
                        self._answer(error.code, error.read(), "application/json")

            def _answer(self, status: int, payload: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


#: In a script: the one-time code the assistant has just e-mailed to the customer.
EMAILED_CODE = "<the code from the e-mail>"

# The conversations every backend gets, by name: the messages, and the demo
# customer (primary e-mail) who chats when the conversation is verified. The
# wording comes from tests/test_stories.yml.
SCRIPTS: Dict[str, List[str]] = {
    "faq": ["hi there", "how can I give my coworker access to our account?", "thanks!"],
    "password": ["i forgot my pasword and cant log in"],
    "tfa": ["what is two factor authentication?"],
    "clarified": ["switch it", "/forgot_password"],
    "two_failures": ["switch it", "the phone and the colleague", "no"],
    "handoff": ["am I talking to a robot?", "I want to speak to a real person"],
    "broken": ["switch it"],
    "rejected": ["I want to speak to a real person"],
    "closed": ["I want to close my account", "yes", EMAILED_CODE],
    "refused": ["how do I close my account?", "/human_handoff"],
}
VERIFIED = {"closed": "clean@demo.example", "refused": "unpaid@demo.example"}
# "rejected": after the rejection Rasa runs action_default_fallback.
FALLBACK = {"clarified", "two_failures", "broken", "rejected"}
HANDED_OFF = {"handoff", "refused"}
FAILED = {"broken"}
# "rejected": Rasa stores action_execution_rejected, an interruption, not a failure.
INTERRUPTED = {"rejected"}


@dataclass
class ConsoleUnderTest:
    """A running assistant and console on one database, with the conversations it holds."""

    backend: str
    assistant: RunningAssistant
    db_url: str
    senders: Dict[str, str] = field(default_factory=dict)  # script name -> conversation id
    accounts: Dict[str, int] = field(default_factory=dict)  # script name -> verified account id
    replies: Dict[str, List[str]] = field(default_factory=dict)
    sent: Dict[str, List[str]] = field(default_factory=dict)  # what the customer actually typed
    # the days (UTC, the console's clock) on which the chats began and ended: one day unless run across midnight
    first_day: Optional[date] = None
    last_day: Optional[date] = None

    @property
    def url(self) -> str:
        return self.assistant.console_url

    def name_of(self, sender_id: str) -> str:
        return {v: k for k, v in self.senders.items()}[sender_id]

    def names(self, sender_ids: Set[str]) -> Set[str]:
        return {self.name_of(s) for s in sender_ids}

    def sign_in(self, email: str = LEAD_EMAIL, password: str = LEAD_PASSWORD) -> requests.Session:
        """A requests session signed in through the sign-in form."""
        session = requests.Session()
        form = session.get(f"{self.url}/login", timeout=10)
        reply = session.post(f"{self.url}/login", data={
            "csrf_token": csrf_of(form.text), "email": email, "password": password, "next": "/conversations",
        }, timeout=10)
        assert reply.status_code == 200 and "Sign out" in reply.text, reply.text[:500]
        return session


def csrf_of(html: str) -> str:
    """The CSRF token of the first form in a page."""
    match = CSRF_RE.search(html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def _pg_database() -> Iterator[str]:
    if os.environ.get("CONSOLE_SKIP_PG") == "1":
        pytest.skip("CONSOLE_SKIP_PG=1")
    admin_url = os.environ.get("CONSOLE_TEST_PG_ADMIN_URL") or PG_ADMIN_DEFAULT
    admin = sa.create_engine(admin_url, future=True, isolation_level="AUTOCOMMIT")
    name = f"console_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        admin.dispose()
        pytest.fail(
            f"PostgreSQL not reachable at {make_url(admin_url).render_as_string(hide_password=True)}: "
            f"{exc.orig}. Start it, point CONSOLE_TEST_PG_ADMIN_URL at it, or set CONSOLE_SKIP_PG=1.",
            pytrace=False,
        )
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def demo_account_id(accounts_db_url: str, email: str) -> int:
    """The id of a demo account of the assistant's account store."""
    engine = sa.create_engine(accounts_db_url, future=True)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT id FROM accounts WHERE primary_email = :e"),
                                    {"e": email}).scalar_one())
    finally:
        engine.dispose()


def emailed_code(assistant: RunningAssistant, email: str) -> str:
    """The newest one-time code e-mailed to ``email`` (the outbox row, or the delivered ``.eml`` file)."""
    from tests.operations.conftest import Store

    store = Store(assistant.accounts_db_url, mail_dir=Path(assistant.log_path).parent / "mail")
    try:
        return store.latest_code(email)
    finally:
        store.factory.kw["bind"].dispose()


def create_lead(db_url: str, email: str, password: str) -> subprocess.CompletedProcess:
    """Run ``python -m console create-lead`` with the password on standard input."""
    env = dict(os.environ, TRACKER_DB_URL=db_url, PYTHONPATH=str(PROJECT_ROOT),
               SQLALCHEMY_SILENCE_UBER_WARNING="1")
    return subprocess.run([sys.executable, "-m", "console", "create-lead", email], input=password + "\n",
                          capture_output=True, text=True, cwd=PROJECT_ROOT, env=env, timeout=60)


def utc_today() -> date:
    """Today on the console's clock (``time.time`` shown in UTC), not the machine's local date."""
    return datetime.now(timezone.utc).date()


def chat(console: ConsoleUnderTest, actions: FaultyActionServer) -> None:
    """Run every script through the assistant's REST channel (``broken``, ``rejected``: failing actions)."""
    console.first_day = utc_today()
    run = uuid.uuid4().hex[:8]
    verifier = PortalTokenVerifier(TEST_PORTAL_SECRET)
    for name, messages in SCRIPTS.items():
        token = None
        if name in VERIFIED:
            account_id = demo_account_id(console.assistant.accounts_db_url, VERIFIED[name])
            console.accounts[name] = account_id
            token = verifier.issue(str(account_id), VERIFIED[name])
        sender = f"{name}-{run}"
        if token is not None:
            # the channel derives a verified customer's conversation id from the token's claims
            console.senders[name] = verified_sender_id("rest", verifier.verify(token))
        else:
            # channels/rest.py scopes anonymous senders to the caller's address
            console.senders[name] = anonymous_sender_id(sender, "127.0.0.1")
        if name in ("broken", "rejected"):
            actions.faults[console.senders[name]] = name
        texts: List[str] = []
        for message in messages:
            if message == EMAILED_CODE:
                message = emailed_code(console.assistant, VERIFIED[name])
            console.sent.setdefault(name, []).append(message)
            texts.extend(r.get("text", "") for r in console.assistant.say(sender, message, token=token))
        console.replies[name] = texts
    console.last_day = utc_today()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def console(request, model_path: Path, tmp_path_factory) -> Iterator[ConsoleUnderTest]:
    """The assistant and its review console on one backend, after the scripted chats."""
    tmp_dir = tmp_path_factory.mktemp(f"console-{request.param}")
    pg = None
    if request.param == "postgresql":
        pg = _pg_database()
        db_url = next(pg)
    else:
        db_url = f"sqlite:///{tmp_dir / 'tracker.db'}"
    actions = FaultyActionServer()
    env = dict(assistant_env(tmp_dir), TRACKER_DB_URL=db_url, ACTION_ENDPOINT_URL=actions.url)
    process, assistant = start_assistant(tmp_dir, env)
    try:
        assistant.accounts_db_url = env["ACCOUNTS_DB_URL"]
        actions.target = f"{assistant.action_url}/webhook"
        under_test = ConsoleUnderTest(request.param, assistant, db_url)
        created = create_lead(db_url, LEAD_EMAIL, LEAD_PASSWORD)
        assert created.returncode == 0, created.stderr
        chat(under_test, actions)
        yield under_test
    finally:
        stop_process(process)
        actions.close()
        if pg is not None:
            next(pg, None)
