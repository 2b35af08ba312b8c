"""The conversation lock store of endpoints.yml: Redis with REDIS_URL, in memory without."""

from __future__ import annotations

import asyncio
import multiprocessing
import statistics
import threading
import time
import uuid
from typing import Awaitable, Callable, Iterator, List, Tuple, TypeVar

import pytest
import redis
from rasa.core.lock_store import InMemoryLockStore, LockStore, RedisLockStore
from rasa.core.utils import number_of_sanic_workers
from rasa.utils.endpoints import read_endpoint_config

from supportbot.lock_store import ConfiguredLockStore, lock_lifetime
from supportbot.settings import PROJECT_ROOT
from tests.conftest import REPORT_LINES
from tests.scale_out.conftest import REDIS_TEST_URL

ENDPOINTS = str(PROJECT_ROOT / "endpoints.yml")


@pytest.fixture(autouse=True)
def endpoint_env(monkeypatch):
    """endpoints.yml needs ACTION_ENDPOINT_URL to be read at all."""
    monkeypatch.setenv("ACTION_ENDPOINT_URL", "http://127.0.0.1:9/webhook")


T = TypeVar("T")


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


@pytest.fixture
def stores(redis_env) -> Callable[..., ConfiguredLockStore]:
    """Lock stores on the test Redis under a key prefix of this test's own (other runs never meet it)."""
    prefix = f"test-{uuid.uuid4().hex}:lock:"

    def make(lifetime: float = 10) -> ConfiguredLockStore:
        return ConfiguredLockStore(lifetime=lifetime, key_prefix=prefix)
    return make


class OtherInstance:
    """Another Rasa instance: its own event loop in its own thread, with its own lock store."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def start(self, coroutine: Awaitable[T]) -> "asyncio.Future[T]":
        """Run ``coroutine`` there; an awaitable of its result for the caller's loop."""
        return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, self.loop))

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture
def other_instance() -> Iterator[OtherInstance]:
    instance = OtherInstance()
    yield instance
    instance.stop()


def test_a_lock_held_by_a_dead_instance_frees_the_conversation_after_its_lifetime(stores):
    """An instance killed mid-turn never returns its ticket; the next message waits one lifetime only."""
    conversation = f"dead-{uuid.uuid4().hex}"
    dead, alive = stores(lifetime=1.0), stores(lifetime=0.3)

    async def take() -> float:
        started = time.monotonic()  # before the dead ticket is drawn: it expires 1 s after this, or later
        await dead.draw_ticket(conversation)  # ...and the process dies
        # the waiter waits longer than its own lifetime: its ticket is renewed at every look
        async with alive.lock(conversation):
            waited = time.monotonic() - started
        assert await alive.waiting(conversation) == 0  # returned after use: the key is gone
        return waited

    waited = asyncio.run(take())
    assert 1.0 <= waited < 10, waited  # not before the dead ticket expired, and not for ever


def test_tickets_drawn_at_once_by_two_instances_are_distinct(stores, other_instance):
    conversation = f"race-{uuid.uuid4().hex}"
    here, there = stores(), stores()

    async def both() -> List[int]:
        theirs = [other_instance.start(there.draw_ticket(conversation)) for _ in range(10)]
        ours = [here.draw_ticket(conversation) for _ in range(10)]
        return list(await asyncio.gather(*ours, *theirs))

    tickets = asyncio.run(both())
    assert sorted(tickets) == list(range(1, 21))


def test_messages_of_one_conversation_on_two_instances_take_turns_in_ticket_order(stores, other_instance):
    conversation = f"turns-{uuid.uuid4().hex}"
    here, there = stores(), stores()
    inside: List[str] = []
    overlaps: List[str] = []

    async def message(store: ConfiguredLockStore, name: str) -> None:
        async with store.lock(conversation):
            if inside:
                overlaps.append(name)
            inside.append(name)
            await asyncio.sleep(0.01)
            inside.remove(name)

    async def run() -> None:
        theirs = [other_instance.start(message(there, f"there-{i}")) for i in range(10)]
        await asyncio.gather(*(message(here, f"here-{i}") for i in range(10)), *theirs)

    asyncio.run(run())
    assert overlaps == []


def test_a_turn_longer_than_the_lifetime_keeps_the_lock(stores):
    """The holder's ticket is renewed while its turn runs: a slow turn does not let the next one in."""
    conversation = f"slow-{uuid.uuid4().hex}"
    store = stores(lifetime=0.3)
    order: List[str] = []

    async def slow() -> None:
        async with store.lock(conversation):
            order.append("slow starts")
            await asyncio.sleep(1.0)  # more than three lifetimes
            order.append("slow ends")

    async def next_message() -> None:
        while not order:  # drawn after the slow turn began
            await asyncio.sleep(0.01)
        async with store.lock(conversation):
            order.append("next")

    async def run() -> None:
        await asyncio.gather(slow(), next_message())

    asyncio.run(run())
    assert order == ["slow starts", "slow ends", "next"]


# ---------------------------------------------------------------------------- contention

CONVERSATIONS = 50
TURNS_EACH = 4
HAMMERING_MESSAGES = 20
TURN_SECONDS = 0.2  # a turn's own work (tracker store, actions): I/O the loop can wait on
HAMMERED_TURN_SECONDS = 0.25  # the hammered conversation's turns: 5 s of queue in all
THINK_SECONDS = 0.3  # between two messages of one customer
#: How long the other instance (a process of its own) may take to start and draw its tickets.
OTHER_INSTANCE_START_SECONDS = 120
#: Rounds measured at most (the best counts: the machine is shared).
ROUNDS = 3


def p95(values: List[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


def hammer_from_another_instance(key_prefix: str, conversation: str, orders: "multiprocessing.Queue") -> None:
    """Another Rasa instance (a process of its own): for each order, that many messages of one conversation at once."""
    async def hammer(messages: int) -> None:
        store = ConfiguredLockStore(url=REDIS_TEST_URL, key_prefix=key_prefix)

        async def turn() -> None:
            async with store.lock(conversation):
                await asyncio.sleep(HAMMERED_TURN_SECONDS)
        await asyncio.gather(*(turn() for _ in range(messages)))
        await store.close()
    for messages in iter(orders.get, None):
        asyncio.run(hammer(messages))


def test_a_hammered_conversation_does_not_slow_the_others(stores):
    """49 quiet conversations and one that gets 20 messages at once, half of them on another instance.

    What each quiet conversation's customer waits per message (lock and turn)
    is measured twice in one round: without and with the hammering. Their p95
    may not double: a waiting message must not hold up the event loop. The
    other instance is a process of its own, as in production (a thread would
    share this one's interpreter lock). The machine is shared and loaded, so
    up to :data:`ROUNDS` rounds are measured and the best one counts: a store
    that blocks the loop fails every round (the one this replaced stalled the loop
    for up to 0.7 s whenever two instances contended for a conversation).
    """
    here = stores()
    hammered = f"hammered-{uuid.uuid4().hex}"
    spawn = multiprocessing.get_context("spawn")
    orders = spawn.Queue()
    other = spawn.Process(target=hammer_from_another_instance, args=(here.key_prefix, hammered, orders))
    served: List[str] = []

    async def turn(conversation: str, seconds: float = TURN_SECONDS) -> None:
        async with here.lock(conversation):
            await asyncio.sleep(seconds)
            served.append(conversation)

    async def quiet_conversations() -> List[float]:
        waits: List[float] = []

        async def talk(index: int) -> None:
            conversation = f"quiet-{uuid.uuid4().hex}"
            await asyncio.sleep(index * THINK_SECONDS / CONVERSATIONS)  # customers do not type in step
            for _ in range(TURNS_EACH):
                started = time.monotonic()
                await turn(conversation)
                waits.append(time.monotonic() - started)
                await asyncio.sleep(THINK_SECONDS)

        await asyncio.gather(*(talk(index) for index in range(CONVERSATIONS - 1)))
        return waits

    async def tickets_of_hammered_at_least(count: int) -> bool:
        deadline = time.monotonic() + OTHER_INSTANCE_START_SECONDS
        while await here.waiting(hammered) < count:
            if time.monotonic() > deadline or not other.is_alive():
                return False
            await asyncio.sleep(0.01)
        return True

    async def one_round() -> Tuple[List[float], List[float], int]:
        await quiet_conversations()  # warm-up: connections opened, scripts loaded
        uncontended = await quiet_conversations()
        orders.put(HAMMERING_MESSAGES // 2)
        assert await tickets_of_hammered_at_least(HAMMERING_MESSAGES // 2), "the other instance did not start"
        hammering = [asyncio.ensure_future(turn(hammered, HAMMERED_TURN_SECONDS))
                     for _ in range(HAMMERING_MESSAGES // 2)]
        assert await tickets_of_hammered_at_least(HAMMERING_MESSAGES // 2 + 1)
        contended = await quiet_conversations()
        still_hammering = await here.waiting(hammered)
        await asyncio.gather(*hammering)
        while await here.waiting(hammered):  # the other instance's messages are through too
            await asyncio.sleep(0.05)
        await here.close()
        return uncontended, contended, still_hammering

    rounds: List[Tuple[List[float], List[float], int]] = []
    other.start()
    try:
        for _ in range(ROUNDS):
            rounds.append(asyncio.run(one_round()))
            uncontended, contended, _still = rounds[-1]
            if p95(contended) <= 2 * p95(uncontended):
                break
    finally:
        orders.put(None)
        other.join(timeout=OTHER_INSTANCE_START_SECONDS)
        if other.is_alive():
            other.kill()
    figures = ", ".join(f"{p95(u) * 1000:.0f} -> {p95(c) * 1000:.0f} ms" for u, c, _ in rounds)
    REPORT_LINES.append(
        f"lock store: p95 wait of {CONVERSATIONS - 1} quiet conversations alone -> while one conversation "
        f"takes {HAMMERING_MESSAGES} messages at once on two instances: {figures}")
    uncontended, contended, still_hammering = rounds[-1]
    assert p95(contended) <= 2 * p95(uncontended), figures
    assert still_hammering > 0, "the hammering was over before the quiet conversations were measured"
    assert other.exitcode == 0 and served.count(hammered) == len(rounds) * HAMMERING_MESSAGES // 2
