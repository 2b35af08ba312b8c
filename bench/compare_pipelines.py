"""Compare the project's pipeline with Rasa's default one, side by side in one run.

For each configuration: training time, held-out NLU accuracy, time from start
to ready, per-message latency over the REST channel for one user (FAQ turns),
and resident memory of the Rasa process. Prints a markdown table and writes it
to docs/pipeline.md. Run with ``make bench``; the reference takes minutes to
train (DIET, TED and UnexpecTED at 100 epochs).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List

from bench.nlu_eval import TOPIC_LABELS, evaluate_model, read_nlu_examples
from bench.serving import median, percentile, resident_mb, sequential_latencies_ms, start_rasa_server
from supportbot.settings import PROJECT_ROOT

HOLDOUT = PROJECT_ROOT / "tests" / "nlu_holdout.yml"
REPORT = PROJECT_ROOT / "docs" / "pipeline.md"
CONFIGS: Dict[str, Path] = {
    "Rasa default (DIET, TED, UnexpecTED)": PROJECT_ROOT / "bench" / "configs" / "rasa_default.yml",
    "ours (TF-IDF + LogReg, Memoization + Rule)": PROJECT_ROOT / "config.yml",
}


@dataclass
class PipelineFigures:
    """Everything measured for one configuration."""

    name: str
    train_seconds: float
    accuracy: float
    min_topic_f1: float
    out_of_scope_accepted: float
    ready_seconds: float
    p50_ms: float
    p95_ms: float
    rss_mb: float


def train(config: Path, out_dir: Path, name: str) -> tuple:
    """Train a full model with ``config``; return (model path, seconds)."""
    env = dict(os.environ, RASA_TELEMETRY_ENABLED="false", PYTHONPATH=str(PROJECT_ROOT))
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "rasa", "train", "--config", str(config), "--domain", "domain.yml",
         "--data", "data", "--out", str(out_dir), "--fixed-model-name", name, "--force"],
        cwd=PROJECT_ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    return out_dir / f"{name}.tar.gz", time.monotonic() - started


def measure(name: str, config: Path, work: Path, rounds: int) -> PipelineFigures:
    """Train, score and serve one configuration."""
    model, train_seconds = train(config, work, f"model-{abs(hash(name))}")
    holdout = read_nlu_examples(HOLDOUT)
    report = evaluate_model(model, holdout)
    faq_messages = [text for text, label in holdout if label in TOPIC_LABELS]
    server = start_rasa_server(model, log_path=work / f"{model.stem}.log")
    try:
        sequential_latencies_ms(server.url, faq_messages[:40])  # warm-up
        latencies = sequential_latencies_ms(server.url, faq_messages, rounds=rounds)
        rss = resident_mb(server.process.pid)
    finally:
        server.stop()
    return PipelineFigures(
        name=name, train_seconds=train_seconds, accuracy=report.accuracy,
        min_topic_f1=min(report.f1[t] for t in TOPIC_LABELS),
        out_of_scope_accepted=report.out_of_scope_accepted,
        ready_seconds=server.ready_seconds, p50_ms=median(latencies),
        p95_ms=percentile(latencies, 95), rss_mb=rss,
    )


def render(figures: List[PipelineFigures], rounds: int, messages: int) -> str:
    """The markdown report."""
    lines = [
        "| pipeline | training | held-out accuracy | lowest topic F1 | out-of-scope taken for a topic "
        "| start to ready | 1 user p50 | 1 user p95 | Rasa RSS |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for f in figures:
        lines.append(
            f"| {f.name} | {f.train_seconds:.0f} s | {f.accuracy:.1%} | {f.min_topic_f1:.3f} "
            f"| {f.out_of_scope_accepted:.1%} | {f.ready_seconds:.1f} s | {f.p50_ms:.1f} ms "
            f"| {f.p95_ms:.1f} ms | {f.rss_mb:.0f} MB |"
        )
    reference, ours = figures[0], figures[-1]
    lines += [
        "",
        f"Ratios (reference / ours): training {reference.train_seconds / ours.train_seconds:.1f}x, "
        f"p50 latency {reference.p50_ms / ours.p50_ms:.1f}x, "
        f"memory {reference.rss_mb / ours.rss_mb:.1f}x.",
        "",
        f"Measured {datetime.date.today().isoformat()} on {os.cpu_count()} cores, "
        f"{platform.python_implementation()} {platform.python_version()}, one run: both "
        f"pipelines trained on the same data/ and measured one after the other. Latency: "
        f"{messages} held-out FAQ messages x {rounds} round(s), one at a time over the REST "
        f"channel (in-memory tracker store), 8 turns per conversation with fresh sender ids, "
        f"after a 40-message warm-up. RSS read after the latency run.",
    ]
    return "\n".join(lines)


def main() -> None:
    """Run the comparison and write docs/pipeline.md."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="passes over the FAQ messages")
    args = parser.parse_args()
    messages = sum(1 for _, label in read_nlu_examples(HOLDOUT) if label in TOPIC_LABELS)
    with tempfile.TemporaryDirectory() as tmp:
        figures = [measure(name, config, Path(tmp), args.rounds) for name, config in CONFIGS.items()]
    table = render(figures, args.rounds, messages)
    print(table)
    REPORT.parent.mkdir(exist_ok=True)
    previous = REPORT.read_text() if REPORT.exists() else ""
    marker = "<!-- measured -->"
    head = previous.split(marker)[0] if marker in previous else "# Pipeline comparison\n\n"
    REPORT.write_text(f"{head}{marker}\n{table}\n")


if __name__ == "__main__":
    main()
