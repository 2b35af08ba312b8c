"""Conversation tests over REST: one assistant per test module, customers made per test.

Reuses the account-store helpers of tests/operations/conftest.py (``Store``,
``Customer``); the assistant runs on SQLite here (the operation tests cover
PostgreSQL) and is module-scoped, because starting Rasa costs seconds.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Iterator

import pytest

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
    return Store(assistant.accounts_db_url)


@pytest.fixture
def new_customer(assistant: RunningAssistant, store: Store):
    """Factory: a fresh account (options of ``Store.create_customer``) and a verified chat with its owner."""

    def make(**options) -> Customer:
        account_id, email = store.create_customer(**options)
        return Customer(assistant, account_id, email, f"conv-{uuid.uuid4().hex}")

    return make
