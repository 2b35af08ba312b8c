"""Conversation tests over REST: one assistant per test module, customers made per test.

Reuses the account-store helpers of tests/operations/conftest.py (``Store``,
``Customer``); the assistant runs on SQLite here (the operation tests cover
PostgreSQL) and is module-scoped, because starting Rasa costs seconds.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Iterator, List

import pytest
import sqlalchemy as sa

from accounts.models import Account, OutboxNotification, SupportRequest
from tests.conftest import RunningAssistant, assistant_env, start_assistant, stop_process
from tests.operations.conftest import Customer, Store


@pytest.fixture(scope="module")
def assistant(model_path: Path, tmp_path_factory) -> Iterator[RunningAssistant]:
    """The whole assistant with its own SQLite account store (demo accounts loaded)."""
    tmp_dir = tmp_path_factory.mktemp("conversations")
    env = assistant_env(tmp_dir)
    process, running = start_assistant(tmp_dir, env)
    running.accounts_db_url = env["ACCOUNTS_DB_URL"]
    yield running
    stop_process(process)


@pytest.fixture(scope="module")
def store(assistant: RunningAssistant) -> Store:
    return Store(assistant.accounts_db_url, mail_dir=Path(assistant.log_path).parent / "mail")


@pytest.fixture
def new_customer(assistant: RunningAssistant, store: Store):
    """Factory: a fresh account (options of ``Store.create_customer``) and a verified chat with its owner."""

    def make(**options) -> Customer:
        account_id, email = store.create_customer(**options)
        return Customer(assistant, account_id, email, f"conv-{uuid.uuid4().hex}")

    return make


def said(customer: Customer, message: str) -> List[str]:
    """Send ``message`` as ``customer``; the assistant's reply texts, in order."""
    return [reply["text"] for reply in customer.say(message) if reply.get("text")]


@pytest.fixture
def demo_customer(assistant: RunningAssistant, store: Store):
    """Factory: a verified chat with one of the demo accounts (README), by its primary email."""

    def make(email: str) -> Customer:
        with store.factory() as session:
            account_id = session.execute(sa.select(Account.id).where(Account.primary_email == email)).scalar_one()
        return Customer(assistant, account_id, email, f"conv-{uuid.uuid4().hex}")

    return make


def codes_sent(store: Store, email: str) -> int:
    """How many one-time codes were e-mailed to ``email`` (outbox rows)."""
    with store.factory() as session:
        return session.execute(sa.select(sa.func.count()).select_from(OutboxNotification).where(
            OutboxNotification.recipient_email == email,
            OutboxNotification.kind == "verification_code")).scalar_one()


def support_requests(store: Store, account_id: int) -> List[str]:
    """The reasons of the account's support requests, oldest first."""
    with store.factory() as session:
        return list(session.execute(sa.select(SupportRequest.reason).where(
            SupportRequest.account_id == account_id).order_by(SupportRequest.id)).scalars())
