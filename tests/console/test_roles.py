"""Roles: admins manage leads (web console and command line), leads review; every admin action is audited.

The console runs as it does in production (``python -m console serve``) on a
SQLite file and on a fresh PostgreSQL database; the first admin is made with
``python -m console create-lead --admin``, as an operator would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import pytest
import requests
import sqlalchemy as sa

from tracking.migrate import VERSION_TABLE
from console.app import prepare_database
from supportbot.runner import free_port, wait_until_up
from supportbot.settings import PROJECT_ROOT
from tests.conftest import stop_process
from tests.console.conftest import _pg_database, csrf_of
from tracking.db import make_engine

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "the admin's long passphrase"
PASSWORD = "a lead's long passphrase"
NEW_PASSWORD = "another long passphrase"


def cli(db_url: str, *args: str, password: Optional[str] = None) -> subprocess.CompletedProcess:
    """``python -m console ARGS`` on ``db_url``, the password (if any) on standard input."""
    env = dict(os.environ, TRACKER_DB_URL=db_url, PYTHONPATH=str(PROJECT_ROOT), SQLALCHEMY_SILENCE_UBER_WARNING="1")
    return subprocess.run([sys.executable, "-m", "console", *args], input=(password or "") + "\n",
                          capture_output=True, text=True, cwd=PROJECT_ROOT, env=env, timeout=60)


@dataclass
class Served:
    url: str
    db_url: str

    def sign_in(self, email: str, password: str) -> Tuple[requests.Session, requests.Response]:
        """A session after submitting the sign-in form, and the form's answer."""
        session = requests.Session()
        form = session.get(f"{self.url}/login", timeout=10)
        reply = session.post(f"{self.url}/login", data={
            "csrf_token": csrf_of(form.text), "email": email, "password": password, "next": "/conversations",
        }, timeout=10)
        return session, reply

    def signed_in(self, email: str, password: str) -> requests.Session:
        session, reply = self.sign_in(email, password)
        assert reply.status_code == 200 and "Sign out" in reply.text, reply.text[:300]
        return session

    def audit(self) -> List[Tuple[str, str, str]]:
        """(actor, action, target) of every audit row, oldest first."""
        engine = make_engine(self.db_url)
        try:
            with engine.connect() as conn:
                return [tuple(r) for r in conn.execute(sa.text(
                    "SELECT actor, action, target_email FROM console_admin_audit ORDER BY id"))]
        finally:
            engine.dispose()


def _database(backend: str, directory: Path) -> Iterator[str]:
    if backend == "postgresql":
        pg = _pg_database()
        yield next(pg)
        next(pg, None)
    else:
        yield f"sqlite:///{directory / 'tracker.db'}"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def db_url(request, tmp_path_factory) -> Iterator[str]:
    yield from _database(request.param, tmp_path_factory.mktemp("roles"))


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_db_url(request, tmp_path) -> Iterator[str]:
    yield from _database(request.param, tmp_path)


@pytest.fixture(scope="module")
def served(db_url: str) -> Iterator[Served]:
    created = cli(db_url, "create-lead", ADMIN_EMAIL, "--admin", password=ADMIN_PASSWORD)
    assert created.returncode == 0, created.stderr
    port = free_port()
    env = dict(os.environ, TRACKER_DB_URL=db_url, CONSOLE_PORT=str(port), PYTHONPATH=str(PROJECT_ROOT),
               SQLALCHEMY_SILENCE_UBER_WARNING="1")
    process = subprocess.Popen([sys.executable, "-m", "console", "serve"], cwd=PROJECT_ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        assert wait_until_up([f"{url}/healthz"], timeout=60, processes=[process]), "the console did not start"
        yield Served(url, db_url)
    finally:
        stop_process(process)


def post(session: requests.Session, url: str, page: str, **data: str) -> requests.Response:
    """Submit a form of ``page`` (a GET path) with its CSRF token."""
    token = csrf_of(session.get(url + page, timeout=10).text)
    return session.post(url + data.pop("path"), data={"csrf_token": token, **data}, timeout=10)


def fresh_email() -> str:
    return f"lead-{uuid.uuid4().hex[:8]}@example.com"


def test_an_admin_creates_disables_and_resets_a_lead_and_each_step_is_audited(served: Served):
    admin = served.signed_in(ADMIN_EMAIL, ADMIN_PASSWORD)
    email = fresh_email()
    created = post(admin, served.url, "/admin/leads", path="/admin/leads/create", email=email.upper(),
                   password=PASSWORD)
    assert created.status_code == 200 and "Lead created." in created.text
    assert f'<tr data-lead="{email}"><td>{email}</td><td>lead</td><td>active</td>' in created.text

    lead = served.signed_in(email, PASSWORD)
    assert lead.get(f"{served.url}/conversations", timeout=10).status_code == 200

    disabled = post(admin, served.url, "/admin/leads", path="/admin/leads/disable", email=email)
    assert "Lead disabled" in disabled.text and f"<td>{email}</td><td>lead</td><td>disabled</td>" in disabled.text
    after = lead.get(f"{served.url}/conversations", allow_redirects=False, timeout=10)
    assert after.status_code == 302 and after.headers["Location"].startswith("/login")
    _, refused = served.sign_in(email, PASSWORD)
    assert refused.status_code == 401 and "Wrong e-mail or password." in refused.text

    reset = post(admin, served.url, "/admin/leads", path="/admin/leads/reset-password", email=email,
                 password=NEW_PASSWORD)
    assert "Password changed" in reset.text
    _, still_disabled = served.sign_in(email, NEW_PASSWORD)
    assert still_disabled.status_code == 401  # a new password does not re-enable
    post(admin, served.url, "/admin/leads", path="/admin/leads/enable", email=email)
    _, old_password = served.sign_in(email, PASSWORD)
    assert old_password.status_code == 401
    served.signed_in(email, NEW_PASSWORD)

    mine = [row for row in served.audit() if row[2] == email]
    assert mine == [(ADMIN_EMAIL, "create_lead", email), (ADMIN_EMAIL, "disable_lead", email),
                    (ADMIN_EMAIL, "reset_password", email), (ADMIN_EMAIL, "enable_lead", email)]
    page = admin.get(f"{served.url}/admin/leads", timeout=10).text
    assert f"<td>{ADMIN_EMAIL}</td><td>reset the password of</td><td>{email}</td>" in page
    assert PASSWORD not in page and NEW_PASSWORD not in page


def test_a_lead_gets_403_on_every_admin_route_and_changes_nothing(served: Served):
    victim = fresh_email()
    assert cli(served.db_url, "create-lead", victim, password=PASSWORD).returncode == 0
    email = fresh_email()
    assert cli(served.db_url, "create-lead", email, password=PASSWORD).returncode == 0
    lead = served.signed_in(email, PASSWORD)
    token = csrf_of(lead.get(f"{served.url}/conversations", timeout=10).text)
    assert lead.get(f"{served.url}/admin/leads", timeout=10).status_code == 403
    for action, extra in (("create", {"email": fresh_email(), "password": PASSWORD}), ("disable", {}),
                          ("enable", {}), ("reset-password", {"password": NEW_PASSWORD})):
        reply = lead.post(f"{served.url}/admin/leads/{action}", timeout=10,
                          data={"csrf_token": token, "email": victim, **extra})
        assert reply.status_code == 403, action
    served.signed_in(victim, PASSWORD)  # neither disabled nor given another password
    assert not [row for row in served.audit() if row[0] == email]


def test_admins_are_not_managed_from_the_web_and_bad_input_is_refused(served: Served):
    admin = served.signed_in(ADMIN_EMAIL, ADMIN_PASSWORD)
    refused = post(admin, served.url, "/admin/leads", path="/admin/leads/disable", email=ADMIN_EMAIL)
    assert refused.status_code == 400 and "admins are managed from the command line" in refused.text
    short = post(admin, served.url, "/admin/leads", path="/admin/leads/create", email=fresh_email(),
                 password="short")
    assert short.status_code == 400 and "at least 12 characters" in short.text
    unknown = post(admin, served.url, "/admin/leads", path="/admin/leads/disable", email="nobody@example.com")
    assert unknown.status_code == 400 and "There is no lead nobody@example.com." in unknown.text
    forged = admin.post(f"{served.url}/admin/leads/create", timeout=10,
                        data={"csrf_token": "forged", "email": fresh_email(), "password": PASSWORD})
    assert forged.status_code == 403
    served.signed_in(ADMIN_EMAIL, ADMIN_PASSWORD)


def test_the_command_line_creates_disables_enables_and_resets_with_an_audit_trail(served: Served):
    email = fresh_email()
    assert cli(served.db_url, "create-lead", email, password=PASSWORD).returncode == 0
    lead = served.signed_in(email, PASSWORD)

    disabled = cli(served.db_url, "disable-lead", email)
    assert disabled.returncode == 0 and disabled.stdout.strip() == f"Disabled: {email}."
    assert lead.get(f"{served.url}/conversations", allow_redirects=False, timeout=10).status_code == 302
    assert served.sign_in(email, PASSWORD)[1].status_code == 401

    reset = cli(served.db_url, "reset-password", email, password=NEW_PASSWORD)
    assert reset.returncode == 0 and NEW_PASSWORD not in reset.stdout + reset.stderr
    assert cli(served.db_url, "enable-lead", email).returncode == 0
    served.signed_in(email, NEW_PASSWORD)

    missing = cli(served.db_url, "disable-lead", "nobody@example.com")
    assert missing.returncode == 1 and "There is no lead nobody@example.com." in missing.stderr
    rows = [row for row in served.audit() if row[2] == email]
    assert [action for _, action, _ in rows] == ["create_lead", "disable_lead", "reset_password", "enable_lead"]
    assert all(actor.startswith("command line (") for actor, _, _ in rows)


def test_an_existing_console_database_gets_the_role_column(fresh_db_url: str):
    engine = make_engine(fresh_db_url)
    try:
        prepare_database(engine)
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS console_admin_audit")
            conn.exec_driver_sql("ALTER TABLE console_lead DROP COLUMN role")  # as the console made it before
            conn.exec_driver_sql(f"UPDATE {VERSION_TABLE} SET version_num = '0002_verified_by'")
            conn.exec_driver_sql("INSERT INTO console_lead (email, password_hash, created_at, disabled) "
                                 "VALUES ('old@example.com', 'scrypt$x', 0, false)")
        prepare_database(engine)
        with engine.connect() as conn:
            role = conn.exec_driver_sql("SELECT role FROM console_lead WHERE email = 'old@example.com'").scalar()
            audit = conn.exec_driver_sql("SELECT count(*) FROM console_admin_audit").scalar()
        assert role == "lead" and audit == 0
    finally:
        engine.dispose()
