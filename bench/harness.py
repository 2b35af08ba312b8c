"""``make bench``: our pipeline against Rasa's default one, deployed as ``make run`` deploys them.

``python -m bench`` (``make bench`` first trains what is missing; this module) measures, in
one run, for our model (``models/assistant.tar.gz``) and the reference
(``models/rasa_default.tar.gz``: DIET, TED and UnexpecTED on the same data and
domain, ``bench/configs/rasa_default.yml``):

* latency per message over the REST channel, FAQ turns and custom-action turns
  (a verified customer starts a currency change / asks to remove a user, then
  stops), with 1, 20 and 50 concurrent conversations (:mod:`bench.load`, a
  separate asyncio process);
* saturated throughput: concurrency is ramped until the p95 reaches 250 ms;
* the first turns against the last of one long conversation;
* start to ready, resident memory of the Rasa and action server processes,
  training time, held-out NLU accuracy (:mod:`bench.nlu_eval`);
* throughput of the scale-out deployment (``supportbot.cluster``) with one
  and two Rasa instances, when that module is there.

Every deployment figure is measured on ``--repetitions`` freshly started
deployments (pipelines interleaved) and reported as the median. Prints the
report and writes it into ``docs/benchmarks.md`` between the markers. Raw
figures go to ``results/bench-<time>.json``. ``BENCH_QUICK=1`` (or ``--quick``):
one repetition of shorter runs, for developing the harness, not for quoting.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import dataclasses
import datetime as dt
import inspect
import json
import multiprocessing
import os
import platform
import secrets
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence

from bench.deployment import Deployment, start_deployment
from bench.report import (
    CONCURRENCY_LEVELS, SATURATION_P95_MS, PipelineResult, RampStep, RunFigures, evaluate_targets,
    load_figures, long_conversation_ratio, render, replace_measured, results_from_raw,
)
from bench.training import read_record, train
from channels.rate_limit import RATE_LIMITS_OFF
from supportbot.settings import PROJECT_ROOT

OUR_MODEL = PROJECT_ROOT / "models" / "assistant.tar.gz"
REFERENCE_MODEL = PROJECT_ROOT / "models" / "rasa_default.tar.gz"
REPORT = PROJECT_ROOT / "docs" / "benchmarks.md"
RESULTS_DIR = PROJECT_ROOT / "results"
OURS = "ours"
REFERENCE = "reference (Rasa default)"
#: Throughput ramp: concurrency doubles from 1 up to this until the p95 reaches the limit,
#: then one step halfway between the last level under the limit and the first over it.
RAMP_MAX_CONCURRENCY = 256
CUSTOMERS_PER_DEPLOYMENT = 3000
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
BENCH_REDIS_URL = "redis://127.0.0.1:6379/2"
DEFAULT_INTRO = "# Benchmarks\n\nWritten by `make bench` (`bench/__main__.py`).\n"


@dataclasses.dataclass(frozen=True)
class Plan:
    """How much to measure."""

    repetitions: int
    warmup: float
    duration: float
    ramp_duration: float
    long_turns: int
    quick: bool


FULL = Plan(repetitions=3, warmup=1.0, duration=6.0, ramp_duration=4.0, long_turns=300, quick=False)
QUICK = Plan(repetitions=1, warmup=0.5, duration=2.0, ramp_duration=2.0, long_turns=100, quick=True)


def run_client(url: str, scenario: str, plan: Plan, concurrency: int = 1, duration: Optional[float] = None,
               tokens: Optional[Path] = None, seed: int = 0) -> Dict:
    """Run :mod:`bench.load` in its own process against ``url``; its JSON result."""
    argv = [sys.executable, "-m", "bench.load", "--url", url, "--scenario", scenario,
            "--concurrency", str(concurrency), "--warmup", str(plan.warmup),
            "--duration", str(duration or plan.duration), "--seed", str(seed)]
    if scenario == "long":
        argv += ["--turns", str(plan.long_turns)]
    if tokens:
        argv += ["--tokens", str(tokens)]
    done = subprocess.run(argv, cwd=PROJECT_ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"load client failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def ramp(url: str, plan: Plan, log: List[str]) -> List[RampStep]:
    """FAQ conversations at rising concurrency until the p95 reaches the saturation limit."""
    steps: List[RampStep] = []

    def step(concurrency: int) -> bool:
        result = run_client(url, "faq", plan, concurrency, duration=plan.ramp_duration, seed=concurrency)
        figures = load_figures(result["latencies_ms"].get("faq", []), result["throughput_msg_s"],
                               result["errors"].get("faq", 0))
        steps.append(RampStep(concurrency, figures.throughput, figures.p95, figures.errors))
        log.append(f"  ramp c={concurrency}: {figures.throughput:.0f} msg/s, p95 {figures.p95:.0f} ms, "
                   f"{figures.errors} failed")
        print(log[-1], flush=True)
        return figures.p95 < SATURATION_P95_MS and not figures.errors  # NaN p95 (no reply) is not under

    concurrency = 1
    while (under := step(concurrency)) and concurrency < RAMP_MAX_CONCURRENCY:
        concurrency *= 2
    if not under and concurrency > 2:
        step((concurrency // 2 + concurrency) // 2)
    return steps


def measure_deployment(deployment: Deployment, plan: Plan, workdir: Path, log: List[str]) -> RunFigures:
    """Latency at each concurrency level, the ramp and the long conversation on one deployment."""
    run = RunFigures(ready_seconds=deployment.ready_seconds, rss_mb={})
    tokens = deployment.verified_customers(CUSTOMERS_PER_DEPLOYMENT)
    used = 0
    for scenario in ("faq", "action"):
        for concurrency in CONCURRENCY_LEVELS:
            token_file = None
            if scenario == "action":
                token_file = workdir / f"tokens-{uuid.uuid4().hex}.json"
                token_file.write_text(json.dumps(tokens[used:]))
            result = run_client(deployment.url, scenario, plan, concurrency, tokens=token_file)
            used += result["conversations"] if scenario == "action" else 0
            if result.get("customers_reused"):
                log.append(f"  WARNING: action conversations at c={concurrency} reused customers")
            for kind, latencies in result["latencies_ms"].items():
                run.load[RunFigures.key(kind, concurrency)] = load_figures(
                    latencies, result["throughput_msg_s"], result["errors"].get(kind, 0),
                    result["client_cpu_share"])
            headline = run.load[RunFigures.key(scenario, concurrency)]
            log.append(f"  {scenario} c={concurrency}: p50 {headline.p50:.1f} p95 {headline.p95:.1f} "
                       f"p99 {headline.p99:.1f} ms, {result['throughput_msg_s']:.0f} msg/s, "
                       f"{sum(result['errors'].values())} failed, client CPU {result['client_cpu_share']:.0%}")
            print(log[-1], flush=True)
    run.ramp = ramp(deployment.url, plan, log)
    long = run_client(deployment.url, "long", plan)
    run.long_first_ms, run.long_last_ms, ratio = long_conversation_ratio(long["latencies_ms"]["faq"])
    log.append(f"  long conversation: first {run.long_first_ms:.1f} ms, last {run.long_last_ms:.1f} ms "
               f"({ratio:.2f}x), {long['errors']['faq']} failed")
    print(log[-1], flush=True)
    run.rss_mb = deployment.resident_mb()
    return run


def start_with_retry(model: Path, workdir: Path, log: List[str]) -> Deployment:
    """Start a deployment; once more if the first start fails (a free port taken meanwhile, say)."""
    try:
        return start_deployment(model, log_dir=workdir)
    except RuntimeError as error:
        log.append(f"  start failed ({error}); starting again")
        print(log[-1], flush=True)
        return start_deployment(model, log_dir=workdir)


def _nlu_scores(model: Path) -> Dict[str, float]:
    import warnings

    from bench.nlu_eval import TOPIC_LABELS, evaluate_model, read_nlu_examples

    warnings.simplefilter("ignore")  # Rasa's and TensorFlow's deprecation noise would bury the progress lines

    from bench.nlu_eval import load_agent
    from tests.nlu_realworld import build as realworld

    agent = load_agent(model)
    report = evaluate_model(model, read_nlu_examples(PROJECT_ROOT / "tests" / "nlu_holdout.yml"), agent)
    scores = {"accuracy": report.accuracy, "min_topic_f1": min(report.f1[t] for t in TOPIC_LABELS),
              "out_of_scope_accepted": report.out_of_scope_accepted}
    if realworld.TEST_SET.exists():  # rebuilt by tests/test_nlu_realworld.py or tests/nlu_realworld/build.py
        real = evaluate_model(model, read_nlu_examples(realworld.TEST_SET), agent)
        scores.update(real_understood=real.in_scope_understood, real_out_of_scope_accepted=real.out_of_scope_accepted)
    return scores


def nlu_scores(model: Path) -> Dict[str, float]:
    """Held-out NLU scores of ``model``, computed in a child process (the model's memory goes with it)."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(_nlu_scores, model).result()


@contextlib.contextmanager
def bench_databases(count: int) -> Iterator[List[str]]:
    """``count`` fresh PostgreSQL databases named ``bench_*``; dropped afterwards."""
    import sqlalchemy as sa

    names = [f"bench_{uuid.uuid4().hex[:12]}" for _ in range(count)]
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", future=True)
    try:
        with admin.connect() as connection:
            for name in names:
                connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        yield [PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}" for name in names]
    finally:
        with admin.connect() as connection:
            for name in names:
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def measure_cluster(instances: int, plan: Plan, log: List[str]) -> PipelineResult:
    """Saturated throughput of the scale-out deployment with ``instances`` Rasa instances (our model)."""
    from supportbot.cluster import start_cluster

    result = PipelineResult(f"cluster, {instances} instance{'s' if instances > 1 else ''}")
    accepted = inspect.signature(start_cluster).parameters
    for repetition in range(plan.repetitions):
        with bench_databases(2) as (tracker_url, accounts_url):
            options = dict(tracker_db_url=tracker_url, accounts_db_url=accounts_url, redis_url=BENCH_REDIS_URL,
                           env={"RASA_MODEL": str(OUR_MODEL), "PORTAL_TOKEN_SECRET": secrets.token_urlsafe(48),
                                "LOG_LEVEL": "WARNING", **RATE_LIMITS_OFF})
            cluster = start_cluster(rasa_instances=instances, action_servers=instances,
                                    **{k: v for k, v in options.items() if k in accepted})
            try:
                log.append(f"{result.name}, repetition {repetition + 1}: {cluster.url}")
                print(log[-1], flush=True)
                run = RunFigures(ready_seconds=float("nan"), rss_mb={})
                run.ramp = ramp(cluster.url, plan, log)
                result.runs.append(run)
            finally:
                cluster.stop()
    return result


def cluster_results(plan: Plan, log: List[str], notes: List[str]) -> List[PipelineResult]:
    """The cluster rows, or a "not measured" note saying why."""
    try:
        import supportbot.cluster as cluster_module

        getattr(cluster_module, "start_cluster")
    except Exception as error:  # noqa: BLE001 - any reason it is not usable is reported
        notes.append(f"Cluster rows not measured: supportbot.cluster is not usable ({type(error).__name__}: {error}).")
        return []
    results = []
    for instances in (1, 2):
        try:
            results.append(measure_cluster(instances, plan, log))
        except Exception as error:  # noqa: BLE001 - the other figures stay valid
            notes.append(f"Cluster with {instances} instance(s) not measured: {type(error).__name__}: {error}")
    return results


def load_average() -> str:
    """The 1-minute load average, to judge how quiet the machine was."""
    return f"{os.getloadavg()[0]:.2f}"


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the benchmark, print the report and write docs/benchmarks.md."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", default=os.environ.get("BENCH_QUICK") == "1",
                        help="one short repetition (also BENCH_QUICK=1)")
    parser.add_argument("--repetitions", type=int, help="override the number of repetitions")
    parser.add_argument("--only", choices=("ours", "reference", "cluster"), action="append",
                        help="measure only these (repeatable); default: all")
    parser.add_argument("--no-write", action="store_true", help="print the report, leave docs/benchmarks.md alone")
    parser.add_argument("--render", type=Path, metavar="RAW_JSON",
                        help="measure nothing: report a raw results file (results/bench-*.json) again")
    args = parser.parse_args(argv)
    if args.render:
        return render_raw(args.render, write=not args.no_write)
    plan = QUICK if args.quick else FULL
    if args.repetitions:
        plan = dataclasses.replace(plan, repetitions=args.repetitions)
    wanted = set(args.only or ("ours", "reference", "cluster"))
    for needed, model in (("ours", OUR_MODEL), ("reference", REFERENCE_MODEL)):
        if needed in wanted and not model.exists():
            print(f"{model} is missing: run `make bench`, which trains it.", file=sys.stderr)
            return 1

    started = dt.datetime.now(dt.timezone.utc)
    log: List[str] = []
    notes: List[str] = []
    load_before = load_average()
    results: Dict[str, PipelineResult] = {}
    models = {OURS: OUR_MODEL, REFERENCE: REFERENCE_MODEL}
    names = [name for name, key in ((OURS, "ours"), (REFERENCE, "reference")) if key in wanted]
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        workdir = Path(tmp)
        for name in names:
            result = results[name] = PipelineResult(name)
            print(f"{name}: held-out NLU scores", flush=True)
            for field_name, value in nlu_scores(models[name]).items():
                setattr(result, field_name, value)
        if OURS in results:
            print(f"{OURS}: training time", flush=True)
            _, results[OURS].train_seconds = train(PROJECT_ROOT / "config.yml", workdir, "ours-timing")
        if REFERENCE in results:
            record = read_record(REFERENCE_MODEL)
            results[REFERENCE].train_seconds = record["seconds"] if record else None
            notes.append("Reference training time: " + (
                f"recorded when the cached model was trained ({record['trained_at']})" if record
                else "not measured (the cached model has no training record; delete it to retrain)") + ".")
        for repetition in range(plan.repetitions):
            for name in names:
                log.append(f"{name}, repetition {repetition + 1}/{plan.repetitions}")
                print(log[-1], flush=True)
                deployment = start_with_retry(models[name], workdir, log)
                try:
                    results[name].runs.append(measure_deployment(deployment, plan, workdir, log))
                finally:
                    deployment.stop()
        extra = cluster_results(plan, log, notes) if "cluster" in wanted else []
    load_after = load_average()

    ordered = [results[n] for n in names] + extra
    notes += [
        f"Run {started:%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores, {platform.python_implementation()} "
        f"{platform.python_version()}; load average {load_before} before, {load_after} after"
        + (" (quick mode: one short repetition, not for quoting)" if plan.quick else "") + ".",
        f"Deployment per repetition: Rasa (`rasa run`, our SQL tracker store on a fresh SQLite file, "
        f"in-memory lock store, `endpoints.yml`) and the action server as `supportbot/runner.py` starts them, "
        f"a fresh SQLite account store (`python -m accounts demo`) plus {CUSTOMERS_PER_DEPLOYMENT} verified "
        f"customers; load from a separate asyncio client process (`bench/load.py`).",
        f"Latency: closed loop, each conversation a fresh sender; {plan.warmup:g} s warm-up then "
        f"{plan.duration:g} s measured per row. FAQ: 8 held-out FAQ questions per conversation, anonymous. "
        "Custom action: a verified customer (portal token) starts a currency change and asks to remove a user "
        "(both read the account store), stopping each form; only those two turns are in the action rows. "
        "msg/s: replies completed in the measured window (action rows: with the stop turns). "
        "Client CPU is the load client's CPU time over the measured time (share of one core).",
        f"Throughput: FAQ conversations, concurrency 1, 2, 4, 8, ... ({plan.warmup:g} s warm-up, "
        f"{plan.ramp_duration:g} s measured each) until the p95 reaches {SATURATION_P95_MS:.0f} ms, then one "
        "step halfway back; the highest rate with the p95 below the limit and no failed reply counts.",
        f"Long conversation: {plan.long_turns} FAQ turns in one session, one at a time.",
        "RSS: read after the load of each repetition, with the process's peak so far (VmHWM). "
        "Held-out NLU: `tests/nlu_holdout.yml`, one evaluation "
        "(deterministic). Our training time: one `rasa train --force` of `config.yml` in this run.",
    ]
    if extra:
        notes.append("Cluster rows: `supportbot.cluster.start_cluster` with as many action servers as Rasa "
                     "instances, behind nginx, PostgreSQL tracker and account stores (fresh `bench_*` "
                     "databases), Redis lock store (db 2); our model.")
    RESULTS_DIR.mkdir(exist_ok=True)
    raw = RESULTS_DIR / f"bench-{started:%Y%m%d-%H%M%S}.json"
    raw.write_text(json.dumps({"plan": dataclasses.asdict(plan), "notes": notes, "log": log,
                               "results": [dataclasses.asdict(r) for r in ordered]}, indent=1, default=str))
    publish(ordered, plan, notes, write=not args.no_write)
    print(f"raw figures: {raw.relative_to(PROJECT_ROOT)}")
    return 0


def publish(results: List[PipelineResult], plan: Plan, notes: List[str], write: bool) -> None:
    """Evaluate the targets, print the report and (``write``) put it into docs/benchmarks.md."""
    by_name = {r.name: r for r in results}
    targets = (evaluate_targets(by_name[OURS], by_name.get(REFERENCE), plan.long_turns)
               if OURS in by_name else [])
    report = render(results, targets, repetitions=plan.repetitions, notes=notes, long_turns=plan.long_turns)
    print("\n" + report + "\n")
    if write:
        previous = REPORT.read_text() if REPORT.exists() else ""
        REPORT.write_text(replace_measured(previous, report, DEFAULT_INTRO))
        print(f"written: {REPORT.relative_to(PROJECT_ROOT)}")


def render_raw(path: Path, write: bool) -> int:
    """Print (and write) the report of a raw results file again, without measuring."""
    data = json.loads(path.read_text())
    publish(results_from_raw(data["results"]), Plan(**data["plan"]), data.get("notes", []), write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
