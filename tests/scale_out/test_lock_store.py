"""The conversation lock store of endpoints.yml: Redis with REDIS_URL, in memory without."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
import redis
from rasa.core.lock_store import InMemoryLockStore, LockStore, RedisLockStore
from rasa.core.utils import number_of_sanic_workers
from rasa.utils.endpoints import read_endpoint_config

from supportbot.lock_store import ConfiguredLockStore, lock_lifetime
from supportbot.settings import PROJECT_ROOT
from tests.scale_out.conftest import REDIS_TEST_URL

ENDPOINTS = str(PROJECT_ROOT / "endpoints.yml")


@pytest.fixture(autouse=True)
def endpoint_env(monkeypatch):
    """endpoints.yml needs ACTION_ENDPOINT_URL to be read at all."""
    monkeypatch.setenv("ACTION_ENDPOINT_URL", "http://127.0.0.1:9/webhook")


@pytest.fixture
def redis_env(monkeypatch):
    try:
        redis.StrictRedis.from_url(REDIS_TEST_URL, socket_timeout=5).ping()
    except redis.RedisError as error:
        pytest.fail(f"Redis is not reachable at {REDIS_TEST_URL} ({error})", pytrace=False)
    monkeypatch.setenv("REDIS_URL", REDIS_TEST_URL)


def test_without_redis_url_the_endpoints_lock_store_is_in_memory(monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("SANIC_WORKERS", raising=False)
    store = LockStore.create(read_endpoint_config(ENDPOINTS, "lock_store"))
    assert isinstance(store, InMemoryLockStore)


def test_several_sanic_workers_without_redis_refuse_to_start(monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("SANIC_WORKERS", "2")
    with pytest.raises(Exception, match="REDIS_URL"):
        LockStore.create(read_endpoint_config(ENDPOINTS, "lock_store"))


def test_with_redis_url_it_is_rasas_redis_lock_store_and_allows_sanic_workers(redis_env, monkeypatch):
    config = read_endpoint_config(ENDPOINTS, "lock_store")
    store = LockStore.create(config)
    assert isinstance(store, RedisLockStore)
    monkeypatch.setenv("SANIC_WORKERS", "3")
    assert number_of_sanic_workers(config) == 3


def test_lock_lifetime_defaults_to_ten_seconds_and_follows_the_environment():
    assert lock_lifetime({}) == 10
    assert lock_lifetime({"TICKET_LOCK_LIFETIME": "25"}) == 25


def test_a_lock_held_by_a_dead_instance_frees_the_conversation_after_its_lifetime(redis_env):
    """An instance killed mid-turn never returns its ticket; the next one waits only the lifetime."""
    conversation = f"dead-{uuid.uuid4().hex}"
    dead = ConfiguredLockStore(lifetime=1)
    dead.issue_ticket(conversation)  # ...and the process dies
    alive = ConfiguredLockStore(lifetime=1)
    # waiting longer than its own lifetime: its ticket is renewed while it waits

    async def take() -> float:
        started = time.monotonic()
        async with alive.lock(conversation):
            return time.monotonic() - started

    waited = asyncio.run(take())
    assert 0.8 <= waited < 2.5
    assert alive.get_lock(conversation) is None  # returned after use


def test_tickets_drawn_at_once_by_two_instances_are_distinct(redis_env):
    conversation = f"race-{uuid.uuid4().hex}"
    stores = [ConfiguredLockStore() for _ in range(2)]

    async def draw(store: ConfiguredLockStore) -> int:
        await asyncio.sleep(0)
        return await asyncio.to_thread(store.issue_ticket, conversation)

    async def both() -> list:
        return await asyncio.gather(*(draw(s) for store in stores for s in [store] * 10))

    tickets = asyncio.run(both())
    assert len(set(tickets)) == len(tickets) == 20
