"""Review console at scale: 100,000 conversations / 1,000,000 events, then time its queries.

    python -m bench.console_bench [--conversations 100000] [--backend sqlite|postgresql|both] [--runs 15]

(``make bench-console``.) For each backend it creates a temporary database,
generates conversations shaped like the ones Rasa stores (session start, user
messages with NLU results and channels, bot actions with policies, fallbacks,
hand-offs with support requests, operations recorded in ``last_operation``,
failed actions, verified customers), writes them into ``events`` in bulk with
the rows the tracker store writes (:func:`tracking.writer.event_row`), builds
the review index with the real indexer (:func:`tracking.rebuild.rebuild_index`,
the same fold the store runs on every save), adds tags and review statuses,
and then times the console's own query functions - the ones its pages call -
as the median of repeated runs. It also times the store's incremental write
(:func:`tracking.writer.record_events`) against the full database.

Results go to stdout and ``docs/console_benchmark.md``. This is a measurement,
not a test: the figures depend on the machine and on what else runs on it.
PostgreSQL is reached through ``CONSOLE_TEST_PG_ADMIN_URL`` (default
``postgresql+psycopg2://postgres@127.0.0.1:5432/postgres``).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import sqlalchemy as sa
import yaml
from sqlalchemy.engine import Connection, Engine, make_url

from console import queries
from console.app import prepare_database
from console.models import lead, review, tag
from supportbot.settings import PROJECT_ROOT
from tracking.db import make_engine, write_transaction
from tracking.rebuild import rebuild_index
from tracking.schema import events
from tracking.writer import event_row, record_events

REPORT = PROJECT_ROOT / "docs" / "console_benchmark.md"
PG_ADMIN_DEFAULT = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
LIST_TARGET_MS = 500.0
TRANSCRIPT_TARGET_MS = 200.0
DAYS = 90
INSERT_CHUNK = 20_000
META = {"model_id": "5f3c0c8e6a1b4c4f9f1c2d3e4f5a6b7c", "assistant_id": "accounts-support-assistant"}
CHANNELS = (("rest", 0.55), ("socketio", 0.35), ("slack", 0.05), ("telegram", 0.05))
VAGUE = ["switch it", "users and money", "the phone and the colleague", "can my colleague do it",
         "it doesn't work", "what about the other thing", "hmm", "and then?", "help with the thing"]
OPERATIONS = {"close_account": "close_account", "change_currency": "change_currency",
              "add_user": "invite_member", "remove_user": "disable_member",
              "change_account_type": "switch_to_business"}
REFUSAL = {"close_account": "unpaid_invoices", "change_currency": "payments_exist",
           "invite_member": "already_member", "disable_member": "last_owner",
           "switch_to_business": "unpaid_invoices"}


# --------------------------------------------------------------------------- generating conversations


def _nlu_examples() -> Dict[str, List[str]]:
    examples: Dict[str, List[str]] = {}
    for path in sorted((PROJECT_ROOT / "data" / "nlu").glob("*.yml")):
        for block in (yaml.safe_load(path.read_text()) or {}).get("nlu") or []:
            if "intent" in block:
                lines = [line[2:].strip() for line in str(block.get("examples", "")).splitlines()
                         if line.strip().startswith("- ")]
                examples.setdefault(block["intent"], []).extend(lines)
    return {intent: texts for intent, texts in examples.items() if texts}


def _responses() -> Dict[str, str]:
    domain = yaml.safe_load((PROJECT_ROOT / "domain.yml").read_text()) or {}
    return {name: (variants[0].get("text") or name) for name, variants in (domain.get("responses") or {}).items()
            if variants and isinstance(variants[0], dict)}


class Generator:
    """Conversations shaped like the ones the assistant stores, from a fixed seed."""

    def __init__(self, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.examples = _nlu_examples()
        self.intents = sorted(self.examples)
        self.responses = _responses()
        self.end = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()

    def _event(self, kind: str, at: float, **fields: Any) -> Dict[str, Any]:
        return {"event": kind, "timestamp": at, "metadata": dict(META), **fields}

    def _action(self, at: float, name: str, policy: Optional[str] = "RulePolicy") -> Dict[str, Any]:
        return self._event("action", at, name=name, policy=policy, confidence=1.0 if policy else None,
                           action_text=None, hide_rule_turn=False)

    def _user(self, at: float, text: str, intent: str, confidence: float, channel: str,
              identity: Optional[Dict[str, Any]]) -> Dict[str, Any]:
        others = self.rng.sample(self.intents, 3)
        ranking = [{"name": intent, "confidence": confidence}] + [
            {"name": o, "confidence": round(self.rng.uniform(0, 1 - confidence) / 3, 4)} for o in others if o != intent]
        if intent == "nlu_fallback":
            top = self.rng.choice(self.intents)
            real = round(self.rng.uniform(0.08, 0.39), 4)
            ranking = [{"name": "nlu_fallback", "confidence": 0.4}, {"name": top, "confidence": real}] + ranking[1:]
            confidence = 0.4
        message_id = uuid.UUID(int=self.rng.getrandbits(128)).hex
        event = self._event("user", at, text=text, parse_data={
            "intent": {"name": intent, "confidence": confidence}, "entities": [], "text": text,
            "message_id": message_id, "metadata": {}, "intent_ranking": ranking[:4],
        }, input_channel=channel, message_id=message_id)
        if identity:
            event["metadata"]["verified_identity"] = identity
        return event

    def _bot(self, at: float, text: str, utter: Optional[str] = None) -> Dict[str, Any]:
        event = self._event("bot", at, text=text, data={
            "elements": None, "quick_replies": None, "buttons": None, "attachment": None, "image": None,
            "custom": None})
        if utter:
            event["metadata"]["utter_action"] = utter
        return event

    def _slot(self, at: float, name: str, value: Any) -> Dict[str, Any]:
        return self._event("slot", at, name=name, value=value)

    def conversation(self, index: int) -> Tuple[str, List[Dict[str, Any]]]:
        rng = self.rng
        channel = rng.choices([c for c, _ in CHANNELS], [w for _, w in CHANNELS])[0]
        sender = f"{channel}-{uuid.UUID(int=rng.getrandbits(128)).hex}"
        at = self.end - rng.uniform(0, DAYS * 86400)
        identity = None
        if rng.random() < 0.25:
            account = rng.randint(1, 30_000)
            identity = {"account_id": str(account), "email": f"owner{account}@example.com",
                        "source": "portal_token", "channel": channel}
        out = [self._action(at, "action_session_start", None), self._event("session_started", at + 0.001),
               self._action(at + 0.002, "action_listen", None)]
        failing_turn = 0 if rng.random() < 0.01 else -1
        turns = rng.choices([1, 2, 3], [0.4, 0.45, 0.15])[0]
        for turn in range(turns):
            at += rng.uniform(5, 90)
            roll = rng.random()
            if roll < 0.08:
                intent, text = "nlu_fallback", rng.choice(VAGUE)
            elif roll < 0.12:
                intent = "human_handoff"
                text = rng.choice(self.examples.get(intent, ["I want a person"]))
            else:
                intent = rng.choice(self.intents)
                text = rng.choice(self.examples[intent])
            confidence = round(rng.uniform(0.85, 1.0) if rng.random() < 0.85 else rng.uniform(0.41, 0.85), 4)
            out.append(self._user(at, text, intent, confidence, channel, identity))
            if intent == "nlu_fallback":
                action = "action_clarify"
            elif intent == "human_handoff":
                action = "action_human_handoff"
            elif identity and intent in OPERATIONS and rng.random() < 0.5:
                action = f"action_{OPERATIONS[intent]}"
            else:
                action = f"utter_{intent}"
            out.append(self._action(at + 0.01, action))
            if turn == failing_turn and action.startswith("action_"):
                pass  # the action server failed: Rasa keeps the action and drops its events
            elif action == "action_human_handoff":
                out.append(self._bot(at + 0.02, "I've passed this to our support team (reference SR-%06d)." % index))
                out.append(self._slot(at + 0.03, "last_operation",
                                      {"operation": "support_request", "outcome": "performed"}))
            elif action.startswith("action_") and action != "action_clarify":
                operation = action[len("action_"):]
                refused = rng.random() < 0.4
                out.append(self._bot(at + 0.02, "I can't do that right now." if refused else "Done."))
                value = {"operation": operation, "outcome": "refused" if refused else "performed"}
                if refused:
                    value["reason"] = REFUSAL[operation]
                out.append(self._slot(at + 0.03, "last_operation", value))
            else:
                text = self.responses.get(action, "Sorry, I'm not sure I understood. Did you mean one of these?")
                out.append(self._bot(at + 0.02, text, action if action.startswith("utter_") else None))
            out.append(self._action(at + 0.04, "action_listen", "RulePolicy"))
        return sender, out


# --------------------------------------------------------------------------- loading


def load(engine: Engine, conversations: int) -> Dict[str, Any]:
    """Write ``conversations`` into ``events`` in bulk, then build the index with the real indexer."""
    generator = Generator()
    senders: List[str] = []
    event_count = 0
    started = time.perf_counter()
    buffer: List[Dict[str, Any]] = []
    with write_transaction(engine) as conn:
        for index in range(conversations):
            sender, records = generator.conversation(index)
            senders.append(sender)
            buffer.extend(event_row(sender, record) for record in records)
            if len(buffer) >= INSERT_CHUNK:
                conn.execute(events.insert(), buffer)
                event_count += len(buffer)
                buffer = []
        if buffer:
            conn.execute(events.insert(), buffer)
            event_count += len(buffer)
    load_seconds = time.perf_counter() - started
    started = time.perf_counter()
    report = rebuild_index(engine)
    index_seconds = time.perf_counter() - started
    add_reviews(engine, senders)
    return {"conversations": conversations, "events": event_count, "messages": report.messages,
            "load_s": load_seconds, "index_s": index_seconds, "senders": senders}


def add_reviews(engine: Engine, senders: Sequence[str]) -> None:
    """Tags on 2% of the conversations and a review status on 5%, by one lead."""
    rng = random.Random(11)
    now = time.time()
    with write_transaction(engine) as conn:
        lead_id = conn.execute(lead.insert().values(email="bench@example.com", password_hash="-", created_at=now,
                                                    disabled=False)).inserted_primary_key[0]
        tags = [{"sender_id": s, "tag": rng.choice(["billing", "unclear", "bug", "praise"]), "added_by": lead_id,
                 "added_at": now} for s in rng.sample(list(senders), len(senders) // 50)]
        reviews = [{"sender_id": s, "status": rng.choice(["reviewed", "follow_up"]), "updated_by": lead_id,
                    "updated_at": now} for s in rng.sample(list(senders), len(senders) // 20)]
        if tags:
            conn.execute(tag.insert(), tags)
        if reviews:
            conn.execute(review.insert(), reviews)


# --------------------------------------------------------------------------- timing


@dataclass
class Timing:
    """One timed query."""

    name: str
    kind: str  # list, transcript, other
    median_ms: float
    p90_ms: float
    matched: str


def timed(engine: Engine, fn: Callable[[Connection], Any], runs: int) -> Tuple[List[float], Any]:
    samples, result = [], None
    for run in range(runs + 2):
        with engine.connect() as conn:
            started = time.perf_counter()
            result = fn(conn)
            elapsed = (time.perf_counter() - started) * 1000
        if run >= 2:  # two warm-up runs
            samples.append(elapsed)
    return samples, result


def p90(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.9 * len(ordered))) - 1)]


def measure(engine: Engine, senders: Sequence[str], runs: int) -> List[Timing]:
    """Time the console's queries on the loaded database."""
    today = datetime.now(timezone.utc).date()
    F = queries.Filters
    with engine.connect() as conn:
        customer = conn.execute(sa.text("SELECT customer_id FROM conversation_summary "
                                        "WHERE customer_id IS NOT NULL ORDER BY sender_id LIMIT 1")).scalar()
    lists: List[Tuple[str, queries.Filters, str, int]] = [
        ("no filter, newest first, page 1", F(), "recent", 1),
        ("no filter, page 1000 (deep)", F(), "recent", 1000),
        ("last 7 days + channel socketio, page 2", F(date_from=today - timedelta(days=7), date_to=today,
                                                     channel="socketio"), "recent", 2),
        ("intent change_currency + confidence < 0.5", F(intent="change_currency", confidence_below=0.5), "recent", 1),
        ("fallback + hand-off, lowest confidence first", F(fallback=True, handoff=True), "confidence", 1),
        ("action failed, last 30 days", F(failed=True, date_from=today - timedelta(days=30)), "recent", 1),
        ("operation close_account refused", F(operation="close_account", outcome="refused"), "recent", 1),
        (f"verified customer {customer}", F(customer=customer), "recent", 1),
        ("tag billing + status follow-up", F(tag="billing", status="follow_up"), "recent", 1),
        ("search 'invoices' (rare)", F(q="invoices"), "recent", 1),
        ("search 'colleague' + last 30 days", F(q="colleague", date_from=today - timedelta(days=30)), "recent", 1),
        ("search 'account' (in most conversations)", F(q="account"), "recent", 1),
    ]
    results: List[Timing] = []
    for name, filters, sort, page in lists:
        samples, result = timed(engine, lambda c: queries.list_conversations(
            c, filters, sort=sort, page=page, per_page=queries.PER_PAGE_DEFAULT), runs)
        results.append(Timing(name, "list", statistics.median(samples), p90(samples), f"{result.total:,}"))

    rng = random.Random(3)
    picks = iter([rng.choice(senders) for _ in range(runs + 2)])
    samples, result = timed(engine, lambda c: queries.load_transcript(c, next(picks), low_confidence=0.6), runs)
    results.append(Timing("transcript of a random conversation", "transcript", statistics.median(samples),
                          p90(samples), f"{len(result.items)} lines"))
    samples, result = timed(engine, lambda c: queries.dashboard(c, today - timedelta(days=29), today), runs)
    results.append(Timing("dashboard, 30 days", "other", statistics.median(samples), p90(samples),
                          f"{result.conversations:,} conversations"))
    samples, result = timed(engine, lambda c: queries.inbox(c, threshold=0.6), runs)
    results.append(Timing("NLU inbox, pending, page 1", "other", statistics.median(samples), p90(samples),
                          f"{result.total:,} messages"))
    samples, result = timed(engine, lambda c: queries.export_batch(c, F(fallback=True), after=None,
                                                                    cutoff=time.time(), limit=500,
                                                                    with_messages=True), runs)
    results.append(Timing("export batch (500 conversations with messages)", "other", statistics.median(samples),
                          p90(samples), f"{len(result.rows)} conversations"))
    return results


def measure_writes(engine: Engine, senders: Sequence[str], runs: int) -> Timing:
    """Median cost of one save (a 4-event turn) through the store's write path."""
    rng = random.Random(5)
    generator = Generator(seed=99)
    samples = []
    for run in range(runs + 2):
        sender = rng.choice(senders)
        _, records = generator.conversation(run)
        turn = records[3:7]
        started = time.perf_counter()
        with write_transaction(engine) as conn:
            record_events(conn, sender, turn)
        if run >= 2:
            samples.append((time.perf_counter() - started) * 1000)
    return Timing("store write: one turn (4 events) + index update", "write", statistics.median(samples),
                  p90(samples), "")


# --------------------------------------------------------------------------- backends and report


def run_backend(name: str, url: str, conversations: int, runs: int) -> Dict[str, Any]:
    engine = make_engine(url)
    try:
        prepare_database(engine)
        print(f"[{name}] loading {conversations:,} conversations ...", flush=True)
        loaded = load(engine, conversations)
        print(f"[{name}] {loaded['events']:,} events written in {loaded['load_s']:.0f} s, "
              f"indexed in {loaded['index_s']:.0f} s; timing queries ...", flush=True)
        timings = measure(engine, loaded["senders"], runs)
        timings.append(measure_writes(engine, loaded["senders"], runs))
        version = engine.dialect.server_version_info
        return {"name": name, "loaded": loaded, "timings": timings,
                "version": ".".join(str(v) for v in version) if version else "?"}
    finally:
        engine.dispose()


def pg_database() -> Iterator[str]:
    admin_url = os.environ.get("CONSOLE_TEST_PG_ADMIN_URL") or PG_ADMIN_DEFAULT
    admin = sa.create_engine(admin_url, future=True, isolation_level="AUTOCOMMIT")
    name = f"console_bench_{os.getpid()}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def markdown(results: List[Dict[str, Any]], runs: int) -> str:
    lines = [
        "# Review console benchmark",
        "",
        f"Generated by `make bench-console` (`python -m bench.console_bench`) on {date.today().isoformat()}: "
        f"{os.cpu_count()} CPU cores, Python {platform.python_version()}, SQLAlchemy {sa.__version__}. "
        "Synthetic conversations shaped like the stored ones (see the module docstring), spread over "
        f"{DAYS} days; each figure is the median (and 90th percentile) of {runs} runs after two warm-up "
        "runs, measured around the console's own query functions (what a page request runs, without "
        "HTML rendering). Targets: a filtered, paginated list under "
        f"{LIST_TARGET_MS:.0f} ms, a transcript under {TRANSCRIPT_TARGET_MS:.0f} ms. "
        "The machine is shared with other work, so single figures can be noisy.",
        "",
    ]
    for result in results:
        loaded = result["loaded"]
        lines += [
            f"## {result['name']} {result['version']}",
            "",
            f"{loaded['conversations']:,} conversations, {loaded['events']:,} events, "
            f"{loaded['messages']:,} indexed messages. Bulk write of the events: {loaded['load_s']:.0f} s; "
            f"building the review index from them (`python -m tracking rebuild-index`): {loaded['index_s']:.0f} s.",
            "",
            "| query | median ms | p90 ms | result | target |",
            "|---|---:|---:|---|---|",
        ]
        for t in result["timings"]:
            target = {"list": LIST_TARGET_MS, "transcript": TRANSCRIPT_TARGET_MS}.get(t.kind)
            verdict = "" if target is None else ("met" if t.median_ms < target else "**missed**")
            lines.append(f"| {t.name} | {t.median_ms:.1f} | {t.p90_ms:.1f} | {t.matched} | {verdict} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--no-report", action="store_true", help="print only; leave docs/ alone")
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="console-bench-") as tmp:
        if args.backend in ("sqlite", "both"):
            results.append(run_backend("SQLite", f"sqlite:///{Path(tmp) / 'tracker.db'}", args.conversations,
                                       args.runs))
        if args.backend in ("postgresql", "both"):
            database = pg_database()
            url = next(database)
            try:
                results.append(run_backend("PostgreSQL", url, args.conversations, args.runs))
            finally:
                next(database, None)
    text = markdown(results, args.runs)
    print(text)
    if not args.no_report:
        REPORT.write_text(text)
        print(f"Written to {REPORT.relative_to(PROJECT_ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
