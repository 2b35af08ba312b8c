"""Message rate limits: a clear chat reply when exceeded, per connection, sender and address."""

from __future__ import annotations

import asyncio
import os
import queue
import uuid
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest
import socketio

from channels.rate_limit import SLOW_DOWN, RateLimiter, RedisRateLimiter
from supportbot.runner import free_port, wait_until_up
from supportbot.settings import PROJECT_ROOT
from tests.channels.conftest import post_rest_from
from tests.conftest import stop_process

PER_MINUTE, PER_ADDRESS = 3, 5
ORIGIN = "http://127.0.0.1:8080"
REDIS_URL = "redis://127.0.0.1:6379/0"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_rate_and_refills_with_time():
    clock = Clock()
    limiter = RateLimiter(per_minute=6, clock=clock)
    assert [limiter.allow("a") for _ in range(7)] == [True] * 6 + [False]
    assert limiter.allow("b")  # every key has its own bucket
    clock.now += 9.9
    assert not limiter.allow("a")  # 6 a minute: one message back every 10 seconds
    clock.now += 0.2
    assert limiter.allow("a") and not limiter.allow("a")
    clock.now += 3600
    assert [limiter.allow("a") for _ in range(7)] == [True] * 6 + [False]  # never more than 6
    assert all(RateLimiter(per_minute=0, clock=clock).allow("a") for _ in range(1000))


def test_the_least_recently_used_buckets_go_first_when_full():
    clock = Clock()
    limiter = RateLimiter(per_minute=1, clock=clock, max_keys=2)
    assert limiter.allow("a") and limiter.allow("b") and limiter.allow("c")
    assert limiter.allow("a")  # forgotten, so full again
    assert not limiter.allow("c")


def test_instances_sharing_redis_share_the_count_per_minute():
    """Two limiters on one Redis act as two Rasa instances (real Redis, injected clock)."""
    clock = Clock()
    name = f"test-{uuid.uuid4().hex}"  # keys of this test only; they expire by themselves

    async def scenario() -> List[bool]:
        first, second = (RedisRateLimiter(REDIS_URL, name, per_minute=3, clock=clock)
                         for _ in range(2))
        try:
            taken = [await first.take("a"), await second.take("a"), await first.take("a"),
                     await second.take("a"), await second.take("b")]
            clock.now += 60  # the next minute
            taken.append(await first.take("a"))
            return taken
        finally:
            await first.close()
            await second.close()

    assert asyncio.run(scenario()) == [True, True, True, False, True, True]


def test_an_unreachable_redis_lets_messages_through():
    limiter = RedisRateLimiter(f"redis://127.0.0.1:{free_port()}/0", "down", per_minute=1,
                               timeout_seconds=0.5)

    async def scenario() -> List[bool]:
        try:
            return [await limiter.take("a") for _ in range(3)]
        finally:
            await limiter.close()

    assert asyncio.run(scenario()) == [True, True, True]


@pytest.fixture(scope="module")
def echo_server(tmp_path_factory) -> Iterator[str]:
    """The real REST and Socket.IO channels, low limits, in front of an echo."""
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT), CHAT_MESSAGES_PER_MINUTE=str(PER_MINUTE),
               CHAT_ADDRESS_MESSAGES_PER_MINUTE=str(PER_ADDRESS), WIDGET_ALLOWED_ORIGINS=ORIGIN)
    env.pop("PORTAL_TOKEN_SECRET", None)
    env.pop("REDIS_URL", None)
    log = open(Path(tmp_path_factory.mktemp("echo")) / "server.log", "wb")
    process = subprocess.Popen([sys.executable, "-m", "tests.channels.scripted_channels_server",
                                str(port)], cwd=PROJECT_ROOT, env=env, stdout=log,
                               stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_until_up([f"{url}/webhooks/rest/"], timeout=60, processes=[process])
        yield url
    finally:
        stop_process(process)
        log.close()


def rest_texts(url: str, address: str, sender: str, text: str) -> List[str]:
    return [reply.get("text") for reply in post_rest_from(url, address, sender, text)]


@pytest.mark.slow
def test_a_rest_sender_over_its_rate_is_asked_to_slow_down_in_the_chat(echo_server: str):
    answers = [rest_texts(echo_server, "127.0.0.3", "fast", f"hi {n}") for n in range(PER_MINUTE + 1)]
    assert answers == [[f"echo: hi {n}"] for n in range(PER_MINUTE)] + [[SLOW_DOWN]]
    # another sender at that address is not slowed down by it (its address has room left)
    assert rest_texts(echo_server, "127.0.0.3", "calm", "hello") == ["echo: hello"]


@pytest.mark.slow
def test_an_address_over_its_rate_is_asked_to_slow_down_whatever_sender_it_names(echo_server: str):
    answers = [rest_texts(echo_server, "127.0.0.4", f"sender-{n}", "hi")[0]
               for n in range(PER_ADDRESS + 1)]
    assert answers == ["echo: hi"] * PER_ADDRESS + [SLOW_DOWN]
    assert rest_texts(echo_server, "127.0.0.5", "sender-0", "hi") == ["echo: hi"]  # other address


@pytest.mark.slow
def test_a_widget_connection_over_its_rate_is_asked_to_slow_down(echo_server: str):
    def connect() -> Tuple[socketio.Client, "queue.Queue[Dict[str, Any]]"]:
        client, replies = socketio.Client(reconnection=False), queue.Queue()
        client.on("bot_uttered", replies.put)
        confirmed: "queue.Queue" = queue.Queue()
        client.on("session_confirm", confirmed.put)
        client.connect(echo_server, headers={"Origin": ORIGIN}, transports=["polling"],
                       wait_timeout=10)
        client.emit("session_request", {"session_id": None})
        confirmed.get(timeout=20)
        return client, replies

    fast, replies = connect()
    try:
        for n in range(PER_MINUTE + 1):
            fast.emit("user_uttered", {"message": f"hi {n}"})
        texts = sorted(replies.get(timeout=20)["text"] for _ in range(PER_MINUTE + 1))
        assert texts == sorted([f"echo: hi {n}" for n in range(PER_MINUTE)] + [SLOW_DOWN])
    finally:
        fast.eio.disconnect(abort=True)
    other, other_replies = connect()  # a new connection has its own allowance
    try:
        other.emit("user_uttered", {"message": "hello"})
        assert other_replies.get(timeout=20)["text"] == "echo: hello"
    finally:
        other.eio.disconnect(abort=True)
