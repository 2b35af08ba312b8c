"""Load client: conversations over the REST channel, run in its own process.

``python -m bench.load --url URL --scenario faq --concurrency 20 --duration 6``
keeps ``concurrency`` conversations going at once (each worker starts a new
conversation, with a fresh sender id, when its previous one ends), discards
what happens during ``--warmup`` seconds, measures for ``--duration`` seconds
and prints one JSON object on stdout. It is asyncio + aiohttp with kept-alive
connections, so one client process drives dozens of conversations with little
CPU; the client's own CPU time is part of the output.

Scenarios:

* ``faq``: anonymous conversations of ``--turns`` held-out FAQ questions;
* ``action``: a verified customer (one portal token from ``--tokens`` per
  conversation) starts a currency change, stops it, asks to remove a user
  (the assistant lists the account's users from the account store) and stops
  that too. The starts are "action" turns, the stops "cancel" turns;
* ``long``: one anonymous conversation of ``--turns`` FAQ questions, one at a
  time; the output keeps the latencies in turn order.

Every reply is checked: a non-200 answer, an empty reply, or an action turn
whose reply is not the expected question counts as an error of its kind.
The URL may be any deployment's front (a single Rasa server or a load balancer).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from bench.nlu_eval import TOPIC_LABELS, read_nlu_examples
from supportbot.settings import PROJECT_ROOT

HOLDOUT = PROJECT_ROOT / "tests" / "nlu_holdout.yml"
WEBHOOK = "/webhooks/rest/webhook"
REQUEST_TIMEOUT_SECONDS = 60.0

#: (kind, message, text the reply must contain or None) of one action conversation.
ACTION_CONVERSATION: Tuple[Tuple[str, str, Optional[str]], ...] = (
    ("action", "I want to change my currency", "Which currency"),
    ("cancel", "no, forget it", "haven't changed anything"),
    ("action", "remove a user from my account", "Which user"),
    ("cancel", "no, forget it", "haven't changed anything"),
)


def faq_messages() -> List[str]:
    """The held-out FAQ questions (never trained on)."""
    return [text for text, label in read_nlu_examples(HOLDOUT) if label in TOPIC_LABELS]


@dataclass
class Sample:
    """One request: its kind, when it started and ended (perf_counter seconds), and if it went right."""

    kind: str
    started: float
    ended: float
    ok: bool


@dataclass
class Client:
    """Sends the turns of conversations and records one :class:`Sample` per turn."""

    url: str
    samples: List[Sample] = field(default_factory=list)

    async def send(self, session, sender: str, text: str, kind: str,
                   token: Optional[str] = None, expect: Optional[str] = None) -> None:
        """Post one message and record how long the reply took and whether it was right."""
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        body = json.dumps({"sender": sender, "message": text}).encode()
        started = time.perf_counter()
        ok = False
        try:
            async with session.post(self.url + WEBHOOK, data=body, headers=headers) as response:
                payload = await response.read()
                ended = time.perf_counter()
                if response.status == 200:
                    replies = json.loads(payload)
                    texts = " ".join(str(r.get("text", "")) for r in replies)
                    ok = bool(replies) and (expect is None or expect in texts)
        except Exception:  # noqa: BLE001 - a failed request is a measured error, not a crash
            ended = time.perf_counter()
        self.samples.append(Sample(kind, started, ended, ok))


def _faq_conversations(messages: Sequence[str], turns: int, seed: int) -> Iterator[List[Tuple[str, str, Optional[str]]]]:
    rng = random.Random(seed)
    while True:
        yield [("faq", rng.choice(messages), None) for _ in range(turns)]


async def run_closed_loop(url: str, scenario: str, concurrency: int, warmup: float, duration: float,
                          turns: int, tokens: Sequence[str], seed: int = 0) -> Dict:
    """Keep ``concurrency`` conversations going; measure the window after ``warmup``."""
    import aiohttp

    client = Client(url)
    faq = _faq_conversations(faq_messages(), turns, seed)
    token_iter = itertools.cycle(tokens) if tokens else None
    conversations = 0
    start = time.perf_counter()
    window_start, window_end = start + warmup, start + warmup + duration
    cpu_at_window: List[float] = []

    async def worker() -> None:
        nonlocal conversations
        while time.perf_counter() < window_end:
            token = None
            conversations += 1
            if scenario == "action":
                token = next(token_iter)
                conversation = ACTION_CONVERSATION
            else:
                conversation = next(faq)
            sender = f"bench-{uuid.uuid4().hex}"
            for kind, text, expect in conversation:
                if time.perf_counter() >= window_end:
                    return
                await client.send(session, sender, text, kind, token, expect)

    async def mark_window() -> None:
        await asyncio.sleep(max(0.0, window_start - time.perf_counter()))
        cpu_at_window.append(time.process_time())

    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        await asyncio.gather(mark_window(), *(worker() for _ in range(concurrency)))
    cpu_end = time.process_time()
    finished = time.perf_counter()
    in_window = [s for s in client.samples if s.started >= window_start]
    completed = [s for s in client.samples if window_start <= s.ended <= window_end]
    result: Dict = {
        "scenario": scenario, "concurrency": concurrency, "duration_s": duration,
        "latencies_ms": {}, "errors": {},
        "completed_in_window": len(completed),
        "throughput_msg_s": len(completed) / duration,
        "client_cpu_share": (cpu_end - cpu_at_window[0]) / max(1e-9, finished - window_start),
        "conversations": conversations,
        # An action conversation needs its own customer (the sender id derives from the token).
        "customers_reused": scenario == "action" and conversations > len(tokens),
    }
    kinds = {"faq"} if scenario == "faq" else {kind for kind, _, _ in ACTION_CONVERSATION}
    for kind in sorted(kinds):
        result["latencies_ms"][kind] = [(s.ended - s.started) * 1000 for s in in_window if s.kind == kind and s.ok]
        result["errors"][kind] = sum(1 for s in in_window if s.kind == kind and not s.ok)
    return result


async def run_long(url: str, turns: int, seed: int = 0) -> Dict:
    """One conversation of ``turns`` FAQ questions, one at a time; latencies in turn order."""
    import aiohttp

    client = Client(url)
    messages = next(_faq_conversations(faq_messages(), turns, seed))
    sender = f"bench-long-{uuid.uuid4().hex}"
    cpu = time.process_time()
    started = time.perf_counter()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)) as session:
        for kind, text, expect in messages:
            await client.send(session, sender, text, kind, None, expect)
    wall = time.perf_counter() - started
    return {
        "scenario": "long", "turns": turns,
        "latencies_ms": {"faq": [(s.ended - s.started) * 1000 for s in client.samples]},
        "errors": {"faq": sum(1 for s in client.samples if not s.ok)},
        "client_cpu_share": (time.process_time() - cpu) / wall,
    }


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Run one scenario against ``--url`` and print the result as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="base URL of the assistant (Rasa or a load balancer)")
    parser.add_argument("--scenario", choices=("faq", "action", "long"), required=True)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds not measured at the start")
    parser.add_argument("--duration", type=float, default=6.0, help="seconds measured")
    parser.add_argument("--turns", type=int, default=8, help="turns per FAQ conversation (long: in total)")
    parser.add_argument("--tokens", type=Path, help="JSON list of portal tokens, one per action conversation")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.scenario == "long":
        result = asyncio.run(run_long(args.url, args.turns, args.seed))
    else:
        tokens = json.loads(args.tokens.read_text()) if args.tokens else []
        if args.scenario == "action" and not tokens:
            parser.error("the action scenario needs --tokens")
        result = asyncio.run(run_closed_loop(args.url, args.scenario, args.concurrency, args.warmup,
                                             args.duration, args.turns, tokens, args.seed))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
