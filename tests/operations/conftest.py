"""Fixtures for conversations that run account operations: customers and their tokens."""

from __future__ import annotations

import contextlib
import datetime as dt
import email as email_lib
import os
import re
import uuid
from email import policy as email_policy
from pathlib import Path
from dataclasses import dataclass
from decimal import Decimal
from typing import Dict, Iterator, List, Optional

import pytest
import sqlalchemy as sa

from accounts.db import make_session_factory, write_session
import pyotp

from accounts.models import (
    Account, AuditEvent, Invoice, Member, OutboxNotification, Payment, Service, TfaEnrolment,
)
from supportbot.portal_token import PortalTokenVerifier
from tests.conftest import (
    TEST_PORTAL_SECRET, RunningAssistant, assistant_env, start_assistant, stop_process,
)

NOW = dt.datetime.now(dt.timezone.utc)


@dataclass
class Customer:
    """A customer of the test account store, able to chat as a verified user."""

    assistant: RunningAssistant
    account_id: int
    email: str
    sender: str

    @property
    def token(self) -> str:
        return PortalTokenVerifier(TEST_PORTAL_SECRET).issue(str(self.account_id), self.email)

    def say(self, message: str) -> List[Dict]:
        return self.assistant.say(self.sender, message, token=self.token)

    def says(self, message: str) -> str:
        """Send a message; return all reply texts joined."""
        return "\n".join(reply.get("text", "") for reply in self.say(message))

    def steps_up(self, store: "Store") -> str:
        """Enter the code the assistant just e-mailed; return the reply."""
        return self.says(store.latest_code(self.email))


class Store:
    """Direct access to the assistant's account store, to set up and check state."""

    def __init__(self, url: str, mail_dir: Optional[Path] = None) -> None:
        self.factory = make_session_factory(url)
        self.mail_dir = mail_dir

    def account(self, account_id: int) -> Account:
        with self.factory() as session:
            return session.get(Account, account_id)

    def audit_actions(self, account_id: int) -> List[tuple]:
        with self.factory() as session:
            rows = session.execute(sa.select(AuditEvent.action, AuditEvent.outcome)
                                   .where(AuditEvent.account_id == account_id)
                                   .order_by(AuditEvent.id)).all()
            return [tuple(row) for row in rows]

    def notifications(self, account_id: int) -> List[str]:
        with self.factory() as session:
            return list(session.execute(sa.select(OutboxNotification.kind)
                                        .where(OutboxNotification.account_id == account_id)
                                        .order_by(OutboxNotification.id)).scalars())

    def latest_secret(self, email: str, kind: str, key: str, pattern: str) -> str:
        """The ``secret_*`` value ``key`` of the newest ``kind`` mail to ``email``.

        Read from the outbox row while it waits, or, once the assistant's
        dispatcher delivered it (and removed the secret from the row), from the
        ``.eml`` file it wrote, as a mailbox would (``pattern``: its regex there).
        """
        with self.factory() as session:
            ident, payload = session.execute(
                sa.select(OutboxNotification.id, OutboxNotification.payload)
                .where(OutboxNotification.recipient_email == email, OutboxNotification.kind == kind)
                .order_by(OutboxNotification.id.desc()).limit(1)).one()
        if key in payload:
            return payload[key]
        assert self.mail_dir is not None, "the mail was delivered: the store needs the mail folder"
        [path] = Path(self.mail_dir).glob(f"outbox-{ident}@*.eml")
        body = email_lib.message_from_bytes(path.read_bytes(), policy=email_policy.default).get_content()
        return re.search(pattern, body, re.MULTILINE).group(1)

    def latest_code(self, email: str) -> str:
        """The newest one-time code e-mailed to ``email``."""
        return self.latest_secret(email, "verification_code", "secret_code", r"^\s+(\d{6})$")

    def enable_tfa(self, account_id: int, email: str) -> str:
        """Turn TFA on for a member; return the authenticator secret."""
        secret = pyotp.random_base32()
        with write_session(self.factory) as session:
            member = session.execute(sa.select(Member).where(
                Member.account_id == account_id, Member.email == email)).scalar_one()
            session.add(TfaEnrolment(member_id=member.id, secret=secret, enabled=True, created_at=NOW))
        return secret

    def members(self, account_id: int) -> Dict[str, tuple]:
        with self.factory() as session:
            rows = session.execute(sa.select(Member).where(Member.account_id == account_id)).scalars()
            return {m.email: (m.role, m.status) for m in rows}

    def create_customer(self, *, currency: str = "EUR", balance: str = "0.00",
                        unpaid_invoice: bool = False, active_service: bool = False,
                        payment: bool = False, members: Optional[Dict[str, str]] = None) -> tuple:
        """A new account with an active owner; returns (account id, owner email)."""
        tag = uuid.uuid4().hex[:10]
        owner = f"owner-{tag}@test.example"
        with write_session(self.factory) as session:
            account = Account(kind="personal", currency=currency, status="active",
                              primary_email=owner, payment_method="card",
                              balance=Decimal(balance), created_at=NOW)
            session.add(account)
            session.flush()
            session.add(Member(account_id=account.id, email=owner, role="owner", status="active",
                               joined_at=NOW, created_at=NOW))
            for email, role in (members or {}).items():
                session.add(Member(account_id=account.id, email=email, role=role, status="active",
                                   joined_at=NOW, created_at=NOW))
            if unpaid_invoice:
                session.add(Invoice(account_id=account.id, number=f"INV-{tag}", amount=Decimal("49.00"),
                                    currency=currency, status="unpaid", issued_at=NOW,
                                    due_date=(NOW + dt.timedelta(days=10)).date()))
            if active_service:
                session.add(Service(account_id=account.id, name="Cloud Backup", status="active",
                                    created_at=NOW))
            if payment:
                session.add(Payment(account_id=account.id, amount=Decimal("10.00"), currency=currency,
                                    paid_at=NOW))
            account_id = account.id
        return account_id, owner


PG_ADMIN_URL = os.environ.get("ACCOUNTS_TEST_PG_ADMIN_URL",
                              "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for one assistant; its URL. Dropped afterwards."""
    name = f"ops_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", future=True)
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as error:
        admin.dispose()
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL} ({error.__class__.__name__}); "
                    "set ACCOUNTS_SKIP_PG=1 to skip the PostgreSQL variants")
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def assistant(request, model_path, tmp_path_factory) -> Iterator[RunningAssistant]:
    """The whole assistant with its account store on SQLite, then on PostgreSQL."""
    if request.param == "postgresql" and os.environ.get("ACCOUNTS_SKIP_PG") == "1":
        pytest.skip("ACCOUNTS_SKIP_PG=1")
    tmp_dir = tmp_path_factory.mktemp(f"assistant-{request.param}")
    with contextlib.ExitStack() as stack:
        env = assistant_env(tmp_dir)
        if request.param == "postgresql":
            env["ACCOUNTS_DB_URL"] = stack.enter_context(postgres_database())
        process, running = start_assistant(tmp_dir, env)
        running.accounts_db_url = env["ACCOUNTS_DB_URL"]
        stack.callback(stop_process, process)
        yield running


@pytest.fixture(scope="module")
def store(assistant: RunningAssistant) -> Store:
    return Store(assistant.accounts_db_url, mail_dir=Path(assistant.log_path).parent / "mail")


@pytest.fixture
def new_customer(assistant: RunningAssistant, store: Store):
    """Factory: a fresh account and a verified chat with its owner."""

    def make(**options) -> Customer:
        account_id, email = store.create_customer(**options)
        return Customer(assistant, account_id, email, f"op-{uuid.uuid4().hex}")

    return make
