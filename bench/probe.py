"""Quick performance probe of one Rasa process, deployed as ``make run`` deploys it.

Starts Rasa and our action server with :func:`bench.deployment.start_deployment`
(the runner's command lines: ``python -m supportbot.log_redaction rasa run``,
``endpoints.yml``, our SQL tracker store on a fresh SQLite file; log level from
``BENCH_LOG_LEVEL``, default WARNING), then measures over the REST channel, one
message at a time:

* FAQ turns (held-out FAQ messages, 8 turns per fresh sender): p50 / p95;
* action turns (anonymous operation requests: a custom action runs): p50 / p95;
* one long conversation: median latency of turns 1-10 against turns 291-300;
* time from start to the first answered message, and resident memory.

``--profile OUT.svg`` (or ``OUT.txt``: collapsed stacks) records the Rasa process with py-spy during the measuring
(py-spy must be installed in the venv; it is a dev tool, not a requirement).
This is the engineer's probe; ``make bench`` (bench/) is the full benchmark.

    .venv/bin/python -m bench.probe [--turns 300] [--profile /tmp/rasa.svg]
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import requests

from bench.nlu_eval import read_nlu_examples
from bench.deployment import start_deployment
from bench.serving import median, percentile, resident_mb
from supportbot.settings import PROJECT_ROOT

HOLDOUT = PROJECT_ROOT / "tests" / "nlu_holdout.yml"
#: Intents answered by a response alone (rules in data/rules/faq.yml, conversation.yml).
FAQ_INTENTS = ("account_types", "create_account", "what_is_tfa", "greet", "thank", "bot_challenge")
#: Intents whose rule runs a custom action first (anonymous: the check action answers).
ACTION_INTENTS = ("close_account", "change_currency", "add_user", "remove_user", "change_account_type")


def _send(session: requests.Session, url: str, sender: str, text: str) -> float:
    started = time.perf_counter()
    reply = session.post(url, json={"sender": sender, "message": text}, timeout=60)
    elapsed = (time.perf_counter() - started) * 1000
    reply.raise_for_status()
    return elapsed


def _conversations(url: str, messages: Sequence[str], per_conversation: int = 8) -> List[float]:
    latencies = []
    with requests.Session() as session:
        sender = ""
        for index, text in enumerate(messages):
            if index % per_conversation == 0:
                sender = f"probe-{uuid.uuid4().hex}"
            latencies.append(_send(session, url, sender, text))
    return latencies


def _long_conversation(url: str, messages: Sequence[str], turns: int) -> List[float]:
    sender = f"probe-long-{uuid.uuid4().hex}"
    with requests.Session() as session:
        return [_send(session, url, sender, messages[i % len(messages)]) for i in range(turns)]


def _summary(values: Sequence[float]) -> Dict[str, float]:
    return {"n": len(values), "p50": round(median(values), 2), "p95": round(percentile(values, 95), 2)}


def run(turns: int, rounds: int, profile: Optional[Path], log_dir: Optional[Path] = None) -> Dict[str, object]:
    """Start the deployment (bench.deployment, as ``make run``), measure it, stop it; the figures."""
    deployment = start_deployment(PROJECT_ROOT / "models" / "assistant.tar.gz", log_dir=log_dir)
    try:
        rasa = deployment.processes["rasa"]
        url = f"{deployment.url}/webhooks/rest/webhook"
        examples = read_nlu_examples(HOLDOUT)
        faq = [text for text, intent in examples if intent in FAQ_INTENTS]
        action = [text for text, intent in examples if intent in ACTION_INTENTS]
        _conversations(url, faq[:40])  # warm-up
        spy = None
        if profile:
            spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "-o", str(profile),
                                    "--pid", str(rasa.pid), "--rate", "250", "--nonblocking"]
                                   + (["--format", "raw"] if profile.suffix == ".txt" else []),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)
        faq_lat = _conversations(url, faq * rounds)
        action_lat = _conversations(url, action[:60] * rounds, per_conversation=4)
        long_lat = _long_conversation(url, faq, turns)
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)
        return {
            "ready_s": round(deployment.ready_seconds, 2),
            "rss_mb": round(resident_mb(rasa.pid)),
            "faq": _summary(faq_lat),
            "action": _summary(action_lat),
            "long_first10_ms": round(median(long_lat[:10]), 2),
            "long_last10_ms": round(median(long_lat[-10:]), 2),
            "long_ratio": round(median(long_lat[-10:]) / median(long_lat[:10]), 2),
            "turns": turns,
        }
    finally:
        deployment.stop()


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Command line: print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--profile", type=Path)
    parser.add_argument("--log-dir", type=Path, help="keep the servers' logs here")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.turns, args.rounds, args.profile, args.log_dir)))


if __name__ == "__main__":
    main()
