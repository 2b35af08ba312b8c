"""Lost-TFA recovery with its two proofs sent to two different action servers.

Two ``rasa_sdk`` action server processes (started as ``make run`` starts
one) share one account store, as several action servers behind a load
balancer do. The recovery code reaches one of them, the e-mailed code the
other: the recovery succeeds, because nothing of step one lives in a
process. An expired pending proof makes the other server ask for the
recovery code again, and no code reaches either server's log.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest
import requests
import sqlalchemy as sa
import yaml
from sqlalchemy.engine import make_url

from accounts.db import make_session_factory, upgrade, write_session
from accounts.demo import DEMO_RECOVERY_CODES, demo_account_id, load_demo
from accounts.models import TfaEnrolment, TfaPendingProof, TfaRecoveryCode
from accounts.security import hash_secret
from supportbot.action_claims import sign_action_call
from supportbot.runner import free_port
from supportbot.runner import wait_until_up
from tests.accounts.conftest import PG_ADMIN_DEFAULT
from tests.conftest import TEST_ACTION_CLAIMS_KEY, stop_process
from tests.operations.conftest import Store
from tests.secret_scan import contains_secret

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DOMAIN = yaml.safe_load((PROJECT_ROOT / "domain.yml").read_text())
EMAIL = "tfa@demo.example"
FORM = "tfa_recovery_form"


class ActionServers:
    """Two action server processes on one account store, and what they logged."""

    def __init__(self, tmp: Path, url: str) -> None:
        self.urls: List[str] = []
        self.logs: List[Path] = []
        self.processes: List[subprocess.Popen] = []
        for index in range(2):
            port = free_port()
            log = tmp / f"actions-{index}.log"
            env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT), ACCOUNTS_DB_URL=url,
                       SANIC_HOST="127.0.0.1", RASA_TELEMETRY_ENABLED="false",
                       ACTION_CLAIMS_KEY=TEST_ACTION_CLAIMS_KEY)
            with open(log, "wb") as out:
                self.processes.append(subprocess.Popen(
                    [sys.executable, "-m", "supportbot.log_redaction", "rasa_sdk", "--actions", "actions",
                     "--port", str(port)], cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT))
            self.urls.append(f"http://127.0.0.1:{port}")
            self.logs.append(log)

    def stop(self) -> None:
        for process in self.processes:
            stop_process(process)

    def log_text(self) -> str:
        return "\n".join(log.read_text(errors="replace") for log in self.logs)

    def run(self, server: int, action: str, sender: str, account_id: int, text: str,
            slots: Dict[str, Any], new_slots: Optional[Dict[str, Any]] = None,
            alter: Callable[[Dict[str, Any]], None] = lambda body: None) -> Tuple[List[Dict], str]:
        """Run ``action`` on one server after a customer message, signed as Rasa signs it and then
        passed through ``alter``; return (events, texts)."""
        expires = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)).isoformat()
        user = {"event": "user", "text": text, "input_channel": "rest", "message_id": uuid.uuid4().hex,
                "parse_data": {"intent": {"name": "lost_tfa_app", "confidence": 0.99}, "entities": [],
                               "text": text},
                "metadata": {"verified_identity": {"account_id": str(account_id), "email": EMAIL,
                                                   "source": "portal_token", "expires_at": expires,
                                                   "channel": "rest"}}}
        events = [{"event": "session_started"}, user]
        events += [{"event": "slot", "name": k, "value": v} for k, v in (new_slots or {}).items()]
        all_slots = dict(slots, **(new_slots or {}))
        tracker = {"sender_id": sender, "slots": all_slots, "latest_message": user["parse_data"],
                   "events": events, "paused": False, "followup_action": None,
                   "active_loop": {"name": FORM} if action.startswith("validate_") else {},
                   "latest_action_name": "action_listen"}
        body = {"next_action": action, "sender_id": sender, "tracker": tracker, "domain": DOMAIN,
                "version": "3.6.21"}
        sign_action_call(body, TEST_ACTION_CLAIMS_KEY.encode())
        alter(body)
        response = requests.post(f"{self.urls[server]}/webhook", timeout=30, json=body)
        response.raise_for_status()
        body = response.json()
        return body["events"], " ".join(r.get("text") or "" for r in body["responses"])


def slot_values(events: List[Dict]) -> Dict[str, Any]:
    return {e["name"]: e["value"] for e in events if e.get("event") == "slot"}


@contextlib.contextmanager
def account_store(backend: str, tmp: Path) -> Iterator[str]:
    """A migrated account store with the demo TFA account: a SQLite file, or a PostgreSQL database."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp / 'accounts.db'}"
    else:
        if os.environ.get("ACCOUNTS_SKIP_PG") == "1":
            pytest.skip("ACCOUNTS_SKIP_PG=1")
        admin_url = make_url(os.environ.get("ACCOUNTS_TEST_PG_ADMIN_URL") or PG_ADMIN_DEFAULT)
        name = f"shared_tfa_{uuid.uuid4().hex[:10]}"
        admin = sa.create_engine(admin_url, future=True, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:  # unreachable: the test fails, as the account tests do
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        url = admin_url.set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        load_demo(make_session_factory(url), only=[EMAIL])
        yield url
    finally:
        if backend != "sqlite":
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def servers(request, tmp_path_factory) -> Iterator[Tuple[ActionServers, Store, int]]:
    tmp = tmp_path_factory.mktemp("two-action-servers")
    with account_store(request.param, tmp) as url:
        running = ActionServers(tmp, url)
        try:
            assert wait_until_up([f"{u}/health" for u in running.urls], timeout=120,
                                 processes=running.processes), running.log_text()
            store = Store(url)
            yield running, store, demo_account_id(store.factory, EMAIL)
        finally:
            running.stop()


def reset_tfa(store: Store) -> None:
    from accounts.demo import reset_demo_tfa

    assert reset_demo_tfa(store.factory)


def start_and_hold(servers: ActionServers, server: int, account_id: int, recovery_code: str) -> str:
    """A new conversation: "I lost my app" and the recovery code, on ``server``; its sender id."""
    sender = f"rest-{uuid.uuid4().hex}"
    events, text = servers.run(server, "action_check_tfa_recovery", sender, account_id,
                               "I lost my authenticator app", {})
    assert slot_values(events)["operation_check"] == "allowed", text
    events, _ = servers.run(server, "validate_tfa_recovery_form", sender, account_id, recovery_code,
                            {"requested_slot": "recovery_code"}, {"recovery_code": recovery_code})
    assert slot_values(events)["recovery_code"] == "received"
    return sender


def send_email_code(servers: ActionServers, server: int, store: Store, account_id: int,
                    sender: str) -> Tuple[List[Dict], str, str]:
    """The e-mailed code, on ``server``; (events, texts, the code)."""
    email_code = store.latest_code(EMAIL)
    events, text = servers.run(server, "validate_tfa_recovery_form", sender, account_id, email_code,
                               {"requested_slot": "email_code", "recovery_code": "received"},
                               {"email_code": email_code})
    return events, text, email_code


def test_step_one_on_one_server_and_step_two_on_another_reset_the_app(servers):
    running, store, account_id = servers
    reset_tfa(store)
    recovery_code = DEMO_RECOVERY_CODES[3]
    sender = start_and_hold(running, 0, account_id, recovery_code)

    events, _, email_code = send_email_code(running, 1, store, account_id, sender)

    assert slot_values(events)["tfa_recovery_result"] == "completed"
    with store.factory() as session:
        enrolment = session.execute(sa.select(TfaEnrolment)).scalar_one()
        used = session.execute(sa.select(TfaRecoveryCode.code_hash)
                               .where(TfaRecoveryCode.used_at.is_not(None))).scalars().all()
    assert not enrolment.enabled and used == [hash_secret(recovery_code)]
    _events, text = running.run(0, "action_finish_tfa_recovery", sender, account_id, email_code,
                                {"tfa_recovery_result": "completed"})
    assert "old authenticator app no longer works" in text
    logged = running.log_text()
    assert not contains_secret(logged, recovery_code) and not contains_secret(logged, email_code)


def test_an_expired_pending_proof_asks_for_the_recovery_code_again(servers):
    running, store, account_id = servers
    reset_tfa(store)
    sender = start_and_hold(running, 1, account_id, DEMO_RECOVERY_CODES[4])
    with write_session(store.factory) as session:  # as if the customer came back much later
        session.execute(sa.update(TfaPendingProof).where(TfaPendingProof.conversation_id == sender)
                        .values(expires_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)))

    events, text, _ = send_email_code(running, 0, store, account_id, sender)

    assert "need your recovery code again" in text
    slots = slot_values(events)
    assert (slots["recovery_code"], slots["email_code"]) == (None, None)  # the form asks again
    with store.factory() as session:
        assert session.execute(sa.select(TfaEnrolment.enabled)).scalar_one()
        assert session.execute(sa.select(sa.func.count()).select_from(TfaRecoveryCode)
                               .where(TfaRecoveryCode.used_at.is_not(None))).scalar_one() == 0


def _claims(body: Dict[str, Any]) -> Dict[str, Any]:
    return body["tracker"]["events"][1]["metadata"]


@pytest.mark.parametrize("alter", [
    lambda body: _claims(body).pop("identity_signature"),
    lambda body: body.update(sender_id="rest-someone-else") or body["tracker"].update(sender_id="rest-someone-else"),
], ids=["unsigned", "another conversation"])
def test_an_action_call_with_altered_claims_identifies_nobody(servers, alter):
    running, store, account_id = servers
    reset_tfa(store)
    sender = f"rest-{uuid.uuid4().hex}"
    events, _ = running.run(0, "action_check_tfa_recovery", sender, account_id, "I lost my app", {})
    assert slot_values(events)["operation_check"] != "anonymous"  # signed as Rasa signs it: the customer

    events, _ = running.run(1, "action_check_tfa_recovery", sender, account_id, "I lost my app", {},
                            alter=alter)
    assert slot_values(events)["operation_check"] == "anonymous"
