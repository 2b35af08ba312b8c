"""Webhook retries de-duplicated across Rasa instances through Redis, and refused while Redis is down.

Two instances of the Slack (and of the Telegram) channel, each served by its
own Sanic server on 127.0.0.1 as two Rasa instances behind a load balancer
would serve them, share the local Redis (db ``DEDUP_TEST_REDIS_DB``, 7 by
default; never emptied: every event id is new, so runs cannot meet). A retry that reaches the second instance is
not run again. With Redis unreachable the webhook answers 503, so Slack and
Telegram deliver the event again later, and no turn runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import threading
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest
import redis
import requests
from rasa.core.channels.channel import InputChannel, UserMessage
from sanic import Sanic

from supportbot.runner import free_port
from channels.dedup import KEY_PREFIX, RecentIds, RedisRecentIds, recent_ids
from channels.slack import PortalSlackInput
from channels.telegram import PortalTelegramInput
from tests.channels.conftest import (
    SLACK_SIGNING_SECRET,
    TELEGRAM_BOT_TOKEN,
    TELEGRAM_WEBHOOK_SECRET,
    slack_signature_headers,
    unique,
)
from tests.channels.test_slack import message_event
from tests.channels.test_telegram import new_chat_id, text_update

REDIS_DB = int(os.environ.get("DEDUP_TEST_REDIS_DB", "7"))
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"


def closed_port_url() -> str:
    """A Redis URL nobody listens on: Redis is down."""
    return f"redis://127.0.0.1:{free_port()}/{REDIS_DB}"


@pytest.fixture
def shared_redis() -> Iterator[redis.Redis]:
    """The test Redis database, shared with other runs (unreachable: the test fails)."""
    client = redis.Redis.from_url(REDIS_URL)
    client.ping()
    yield client
    client.close()


@dataclass
class Instance:
    """One channel instance served over HTTP, and the turns it started."""

    url: str
    turns: List[Tuple[str, str]] = field(default_factory=list)


class Servers:
    """Sanic servers in one background event loop, one per channel instance."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.servers: List[Any] = []
        self._test_mode = Sanic.test_mode
        Sanic.test_mode = True  # several apps in one process (Sanic 21.12 "touches up" classes once)

    def serve(self, channel: InputChannel) -> Instance:
        """Serve ``channel``'s blueprint as Rasa does, recording each turn instead of running it."""
        port = free_port()
        instance = Instance(f"http://127.0.0.1:{port}/webhooks/{channel.name()}/webhook")

        async def on_new_message(message: UserMessage) -> None:
            instance.turns.append((message.sender_id, message.text))

        async def start() -> Any:
            app = Sanic(unique("dedup_test_"))
            app.blueprint(channel.blueprint(on_new_message), url_prefix=f"/webhooks/{channel.name()}")
            server = await app.create_server(host="127.0.0.1", port=port, return_asyncio_server=True,
                                             access_log=False)
            await server.startup()
            await server.after_start()
            return server

        self.servers.append(asyncio.run_coroutine_threadsafe(start(), self.loop).result(timeout=30))
        return instance

    def stop(self) -> None:
        async def stop(server: Any) -> None:
            await server.before_stop()  # the channels close their Redis clients here
            server.close()
            await server.wait_closed()
            await server.after_stop()

        for server in self.servers:
            asyncio.run_coroutine_threadsafe(stop(server), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()
        Sanic.test_mode = self._test_mode


@pytest.fixture
def servers() -> Iterator[Servers]:
    running = Servers()
    yield running
    running.stop()


def slack_channel(redis_url: str) -> PortalSlackInput:
    return PortalSlackInput("xoxb-test-bot-token", SLACK_SIGNING_SECRET,
                            api_base_url="http://127.0.0.1:9/api/",
                            seen=RedisRecentIds(redis_url, "slack", timeout_seconds=1))


def telegram_channel(redis_url: str) -> PortalTelegramInput:
    return PortalTelegramInput(TELEGRAM_BOT_TOKEN, TELEGRAM_WEBHOOK_SECRET,
                               api_base_url="http://127.0.0.1:9",
                               seen=RedisRecentIds(redis_url, "telegram", timeout_seconds=1))


def post_slack(instance: Instance, event: Dict[str, Any], retry: int = 0) -> requests.Response:
    body = json.dumps(event).encode()
    headers = dict(slack_signature_headers(body, SLACK_SIGNING_SECRET), **{"Content-Type": "application/json"})
    if retry:
        headers.update({"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"})
    return requests.post(instance.url, data=body, headers=headers, timeout=10)


def post_telegram(instance: Instance, update: Dict[str, Any]) -> requests.Response:
    return requests.post(instance.url, json=update, timeout=10,
                         headers={"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_WEBHOOK_SECRET})


def wait_for_turns(*instances: Instance, count: int) -> List[Tuple[str, str]]:
    """The turns of all instances once ``count`` arrived (Slack runs them in the background)."""
    for _ in range(100):
        turns = [turn for instance in instances for turn in instance.turns]
        if len(turns) >= count:
            return turns
        threading.Event().wait(0.05)
    return [turn for instance in instances for turn in instance.turns]


def test_a_slack_retry_reaching_another_instance_is_not_run_again(servers, shared_redis):
    first, second = servers.serve(slack_channel(REDIS_URL)), servers.serve(slack_channel(REDIS_URL))
    user, dm = unique("U"), unique("D")
    event = message_event("close my account", user, dm)

    assert post_slack(first, event).status_code == 200
    retry = post_slack(second, event, retry=1)

    assert retry.status_code == 200 and retry.text == "already handled"
    assert retry.headers.get("X-Slack-No-Retry") == "1"
    other = post_slack(second, message_event("and my currency?", user, dm))
    assert other.status_code == 200
    assert wait_for_turns(first, second, count=2) == [(user, "close my account"), (user, "and my currency?")]
    assert (first.turns, second.turns) == ([(user, "close my account")], [(user, "and my currency?")])
    key = f"{KEY_PREFIX}slack:event:{event['event_id']}".encode()
    assert 3590 <= shared_redis.ttl(key) <= 3600


def test_a_telegram_update_resent_to_another_instance_is_handled_once(servers, shared_redis):
    first, second = servers.serve(telegram_channel(REDIS_URL)), servers.serve(telegram_channel(REDIS_URL))
    chat = new_chat_id()
    update = text_update(chat, "close my account")

    assert post_telegram(first, update).text == "ok"
    assert post_telegram(second, update).text == "already handled"
    assert post_telegram(first, update).text == "already handled"

    assert (first.turns, second.turns) == ([(str(chat), "close my account")], [])
    assert shared_redis.exists(f"{KEY_PREFIX}telegram:{update['update_id']}")


def test_while_redis_is_down_deliveries_get_503_and_run_no_turn(servers):
    slack = servers.serve(slack_channel(closed_port_url()))
    telegram = servers.serve(telegram_channel(closed_port_url()))

    refused_event = post_slack(slack, message_event("close my account", unique("U"), unique("D")))
    refused_update = post_telegram(telegram, text_update(new_chat_id(), "close my account"))

    for refused in (refused_event, refused_update):
        assert refused.status_code == 503  # Slack and Telegram deliver it again later
        assert refused.headers.get("X-Slack-No-Retry") is None
    threading.Event().wait(0.3)
    assert slack.turns == [] and telegram.turns == []


class PrivateRedis:
    """A redis-server of the test's own on a free port, to stop and start again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: Optional[subprocess.Popen] = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port)
        for _ in range(100):
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                threading.Event().wait(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    yield server
    server.stop()


def test_redis_going_down_and_back_refuses_then_runs_the_redelivery_once(servers, private_redis):
    instance = servers.serve(slack_channel(private_redis.url))
    user, dm = unique("U"), unique("D")
    assert post_slack(instance, message_event("hello", user, dm)).status_code == 200
    event = message_event("close my account", user, dm)

    private_redis.stop()
    assert post_slack(instance, event).status_code == 503
    private_redis.start()  # empty again: what was claimed before is forgotten, the refused event was never claimed
    assert post_slack(instance, event, retry=1).status_code == 200
    assert post_slack(instance, event, retry=2).text == "already handled"

    assert wait_for_turns(instance, count=2) == [(user, "hello"), (user, "close my account")]


def test_channels_share_redis_only_when_redis_url_is_set(shared_redis):
    assert isinstance(recent_ids("slack", {}), RecentIds)
    assert isinstance(recent_ids("slack", {"REDIS_URL": "  "}), RecentIds)
    shared = recent_ids("telegram", {"REDIS_URL": REDIS_URL})
    assert isinstance(shared, RedisRecentIds) and shared.prefix == "supportbot:dedup:telegram:"

    async def claims() -> List[bool]:
        slack = RedisRecentIds(REDIS_URL, "slack")
        try:
            update_id = unique("update-")  # a fresh id: the database is shared with earlier runs
            return [await shared.claim(update_id), await shared.claim(update_id), await slack.claim(update_id)]
        finally:
            await shared.close()
            await slack.close()

    assert asyncio.run(claims()) == [True, False, True]  # one key space per channel
