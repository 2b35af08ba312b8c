"""The load client against a fake REST channel on 127.0.0.1: what it sends and how it counts replies.

No timing is asserted: the fake answers at once, and the checks are about
conversations, senders, tokens and failed replies.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from typing import Dict, List, Tuple

from aiohttp import web

from bench.load import ACTION_CONVERSATION, WEBHOOK, run_closed_loop, run_long


class FakeRest:
    """Answers like the REST channel; records (sender, message, Authorization) of every request."""

    def __init__(self, fail_every: int = 0, action_reply: str = "Which currency? Which user? haven't changed anything"):
        self.requests: List[Tuple[str, str, str]] = []
        self.fail_every = fail_every
        self.action_reply = action_reply

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        await asyncio.sleep(0.002)  # keeps the number of conversations small; not measured
        self.requests.append((body["sender"], body["message"], request.headers.get("Authorization", "")))
        if self.fail_every and len(self.requests) % self.fail_every == 0:
            return web.Response(status=500)
        text = self.action_reply if request.headers.get("Authorization") else "An FAQ answer."
        return web.json_response([{"recipient_id": body["sender"], "text": text}])


async def _against(fake: FakeRest, client) -> Dict:
    app = web.Application()
    app.router.add_post(WEBHOOK, fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        return await client(f"http://127.0.0.1:{port}")
    finally:
        await runner.cleanup()


def _by_sender(fake: FakeRest) -> Dict[str, List[Tuple[str, str]]]:
    conversations = defaultdict(list)
    for sender, message, authorization in fake.requests:
        conversations[sender].append((message, authorization))
    return conversations


def test_faq_conversations_have_a_fresh_sender_each_and_at_most_the_asked_turns():
    fake = FakeRest()
    result = asyncio.run(_against(fake, lambda url: run_closed_loop(url, "faq", 3, 0.1, 0.4, 8, [])))
    conversations = _by_sender(fake)
    assert len(conversations) == result["conversations"] >= 3
    assert all(1 <= len(turns) <= 8 and not any(auth for _, auth in turns) for turns in conversations.values())
    assert sum(len(turns) != 8 for turns in conversations.values()) <= 3  # only those cut by the window's end
    assert result["errors"] == {"faq": 0} and result["latencies_ms"]["faq"]


def test_action_conversations_run_as_one_verified_customer_each():
    fake = FakeRest()
    tokens = [f"token-{i}" for i in range(5000)]
    result = asyncio.run(_against(fake, lambda url: run_closed_loop(url, "action", 2, 0.1, 0.4, 8, tokens)))
    conversations = _by_sender(fake)
    authorizations = [{auth for _, auth in turns} for turns in conversations.values()]
    assert all(len(auth) == 1 for auth in authorizations)  # one customer per conversation
    assert len({next(iter(a)) for a in authorizations}) == len(conversations)  # never the same customer twice
    assert all([m for m, _ in turns] == [m for _, m, _ in ACTION_CONVERSATION][:len(turns)]
               for turns in conversations.values())
    assert not result["customers_reused"]
    assert set(result["latencies_ms"]) == {"action", "cancel"}


def test_wrong_replies_and_server_errors_are_counted_not_timed():
    fake = FakeRest(fail_every=5, action_reply="Sorry, something went wrong.")
    result = asyncio.run(_against(fake, lambda url: run_closed_loop(url, "action", 2, 0.0, 0.3, 8, ["t1"])))
    assert result["latencies_ms"]["action"] == [] and result["errors"]["action"] > 0  # the expected question never came
    assert result["customers_reused"]  # one token for several conversations is reported

    long_fake = FakeRest(fail_every=4)
    long = asyncio.run(_against(long_fake, lambda url: run_long(url, 20)))
    assert len(_by_sender(long_fake)) == 1  # one conversation
    assert len(long["latencies_ms"]["faq"]) == 20 and long["errors"]["faq"] == 5
