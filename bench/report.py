"""The pure part of the benchmark: summaries, medians over repetitions, targets and the markdown report.

Nothing here starts a process or measures time; :mod:`bench.__main__` feeds it
the numbers. The figures of one repetition are a :class:`RunFigures`; a
pipeline's repetitions, training time and held-out scores a
:class:`PipelineResult`, whose figures are medians over the repetitions.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

from bench.serving import percentile

#: The latency of FAQ and action turns is measured with this many concurrent conversations.
CONCURRENCY_LEVELS = (1, 20, 50)
#: Saturated throughput is the highest rate at which the p95 latency stays below this.
SATURATION_P95_MS = 250.0
#: Window (in turns) at each end of the long conversation whose median is compared.
LONG_WINDOW = 10

BEGIN_MARKER = "<!-- bench:begin (written by make bench; edit above or below) -->"
END_MARKER = "<!-- bench:end -->"


@dataclass
class LoadFigures:
    """Latency percentiles (ms) and throughput of one kind of turn in one load run."""

    p50: float
    p95: float
    p99: float
    throughput: float
    messages: int
    errors: int = 0
    client_cpu: float = 0.0


def load_figures(latencies_ms: Sequence[float], throughput: float, errors: int = 0,
                 client_cpu: float = 0.0) -> LoadFigures:
    """Summarise the latencies of one load run (nearest-rank percentiles)."""
    if not latencies_ms:
        nan = float("nan")
        return LoadFigures(nan, nan, nan, throughput, 0, errors, client_cpu)
    return LoadFigures(
        p50=percentile(latencies_ms, 50), p95=percentile(latencies_ms, 95),
        p99=percentile(latencies_ms, 99), throughput=throughput, messages=len(latencies_ms),
        errors=errors, client_cpu=client_cpu,
    )


@dataclass
class RampStep:
    """One concurrency level of the throughput ramp."""

    concurrency: int
    throughput: float
    p95: float
    errors: int = 0


def saturated_throughput(steps: Sequence[RampStep], p95_limit: float = SATURATION_P95_MS) -> Optional[RampStep]:
    """The step with the highest throughput whose p95 is under the limit and had no errors."""
    good = [s for s in steps if s.p95 < p95_limit and s.errors == 0]
    return max(good, key=lambda s: s.throughput) if good else None


def long_conversation_ratio(latencies_ms: Sequence[float], window: int = LONG_WINDOW) -> tuple:
    """(p50 of the first ``window`` turns, p50 of the last ``window`` turns, last / first)."""
    if len(latencies_ms) < 2 * window:
        raise ValueError(f"need at least {2 * window} turns, got {len(latencies_ms)}")
    first = statistics.median(latencies_ms[:window])
    last = statistics.median(latencies_ms[-window:])
    return first, last, last / first


@dataclass
class RunFigures:
    """Everything measured on one deployment (one repetition)."""

    ready_seconds: float
    rss_mb: Dict[str, float]
    load: Dict[str, LoadFigures] = field(default_factory=dict)
    ramp: List[RampStep] = field(default_factory=list)
    long_first_ms: float = float("nan")
    long_last_ms: float = float("nan")

    @staticmethod
    def key(kind: str, concurrency: int) -> str:
        """Key of ``load`` for a kind of turn at a concurrency level."""
        return f"{kind}@{concurrency}"

    @property
    def saturated(self) -> Optional[RampStep]:
        """The saturated-throughput step of this run's ramp."""
        return saturated_throughput(self.ramp)


@dataclass
class PipelineResult:
    """One pipeline (or deployment) over all repetitions, plus its training time and NLU scores."""

    name: str
    runs: List[RunFigures] = field(default_factory=list)
    train_seconds: Optional[float] = None
    accuracy: Optional[float] = None
    min_topic_f1: Optional[float] = None
    out_of_scope_accepted: Optional[float] = None
    #: On the frozen real-user test set (tests/nlu_realworld), when it is built.
    real_understood: Optional[float] = None
    real_out_of_scope_accepted: Optional[float] = None

    def median(self, value: Callable[[RunFigures], Optional[float]]) -> Optional[float]:
        """Median over the repetitions of ``value(run)``; None when no run has it."""
        values = [v for v in (value(run) for run in self.runs) if v is not None and v == v]
        return statistics.median(values) if values else None

    def load(self, kind: str, concurrency: int, attribute: str) -> Optional[float]:
        """Median over repetitions of one attribute of the load figures of ``kind`` at ``concurrency``."""
        key = RunFigures.key(kind, concurrency)
        return self.median(lambda run: getattr(run.load[key], attribute) if key in run.load else None)

    def errors(self, kind: str, concurrency: int) -> int:
        """Failed or wrong replies of ``kind`` at ``concurrency``, summed over repetitions."""
        key = RunFigures.key(kind, concurrency)
        return sum(run.load[key].errors for run in self.runs if key in run.load)

    def saturated_throughput(self) -> Optional[float]:
        """Median saturated throughput (0 for a run where no ramp step stayed under the limit)."""
        return self.median(lambda run: run.saturated.throughput if run.saturated else (0.0 if run.ramp else None))

    def long_ratio(self) -> Optional[float]:
        """Median over repetitions of (late turns p50 / early turns p50)."""
        return self.median(lambda run: run.long_last_ms / run.long_first_ms)

    def rss(self, process: str) -> Optional[float]:
        """Median resident memory (MB) of one process ("rasa", "actions")."""
        return self.median(lambda run: run.rss_mb.get(process))


@dataclass
class Target:
    """A target for our pipeline: ``measured <op> limit``."""

    label: str
    measured: Optional[float]
    op: str
    limit: float
    unit: str = ""
    reference: Optional[float] = None

    @property
    def passed(self) -> Optional[bool]:
        """True/False, or None when the figure was not measured."""
        if self.measured is None:
            return None
        compare = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b}[self.op]
        return compare(self.measured, self.limit)

    @property
    def verdict(self) -> str:
        """"pass", "FAIL" or "not measured"."""
        return {True: "pass", False: "FAIL", None: "not measured"}[self.passed]


def evaluate_targets(ours: PipelineResult, reference: Optional[PipelineResult], long_turns: int) -> List[Target]:
    """The issue's targets, evaluated on the medians of our pipeline."""
    ref = reference or PipelineResult("none")
    ours_tp, ref_tp = ours.saturated_throughput(), ref.saturated_throughput()
    speedup = ours_tp / ref_tp if ours_tp is not None and ref_tp else None
    return [
        Target("FAQ turn p50, 1 conversation", ours.load("faq", 1, "p50"), "<", 10, " ms", ref.load("faq", 1, "p50")),
        Target("FAQ turn p95, 1 conversation", ours.load("faq", 1, "p95"), "<", 25, " ms", ref.load("faq", 1, "p95")),
        Target("action turn p95, 1 conversation", ours.load("action", 1, "p95"), "<", 50, " ms",
               ref.load("action", 1, "p95")),
        Target(f"saturated throughput (p95 < {SATURATION_P95_MS:.0f} ms)", ours_tp, ">=", 250, " msg/s", ref_tp),
        Target("throughput, ours / reference", speedup, ">=", 8, "x"),
        Target(f"turn {long_turns - LONG_WINDOW + 1}-{long_turns} / turn 1-{LONG_WINDOW} (p50)",
               ours.long_ratio(), "<=", 1.5, "x", ref.long_ratio()),
        Target("start to ready", ours.median(lambda r: r.ready_seconds), "<", 10, " s",
               ref.median(lambda r: r.ready_seconds)),
        Target("Rasa process resident memory (peak)", ours.rss("rasa_peak"), "<", 600, " MB", ref.rss("rasa_peak")),
    ]


def fmt(value: Optional[float], unit: str = "", digits: int = 1) -> str:
    """A figure with its unit, or "-" when it was not measured."""
    if value is None or value != value:
        return "-"
    return f"{value:.{digits}f}{unit}"


def _memory(result: PipelineResult, process: str) -> str:
    """Resident memory after the load, with the peak when it was read."""
    now, peak = result.rss(process), result.rss(f"{process}_peak")
    return fmt(now, " MB", 0) + (f" (peak {fmt(peak, ' MB', 0)})" if peak is not None else "")


def _pct(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.1%}"


def render(results: Sequence[PipelineResult], targets: Sequence[Target], *, repetitions: int,
           notes: Sequence[str], long_turns: int) -> str:
    """The measured part of docs/benchmarks.md (markdown)."""
    lines = [f"Each figure is the median over {repetitions} repetition(s), each on a freshly started deployment."]
    if targets:
        lines += ["", f"### Targets ({results[0].name})", "", "| target | ours | reference | result |", "|---|---|---|---|"]
    for t in targets:
        digits = 2 if t.unit == "x" else 1
        lines.append(f"| {t.label} {t.op} {t.limit:g}{t.unit} | {fmt(t.measured, t.unit, digits)} "
                     f"| {fmt(t.reference, t.unit, digits)} | {t.verdict} |")
    lines += [
        "",
        "### Latency per message (REST channel, ms)",
        "",
        "| pipeline | turns | conversations | p50 | p95 | p99 | msg/s | failed replies | client CPU |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        for kind, label in (("faq", "FAQ"), ("action", "custom action")):
            for concurrency in CONCURRENCY_LEVELS:
                if result.load(kind, concurrency, "messages") is None:
                    continue
                lines.append(
                    f"| {result.name} | {label} | {concurrency} | {fmt(result.load(kind, concurrency, 'p50'))} "
                    f"| {fmt(result.load(kind, concurrency, 'p95'))} | {fmt(result.load(kind, concurrency, 'p99'))} "
                    f"| {fmt(result.load(kind, concurrency, 'throughput'), digits=0)} "
                    f"| {result.errors(kind, concurrency)} "
                    f"| {fmt(100 * (result.load(kind, concurrency, 'client_cpu') or 0), '%', 0)} |")
    lines += [
        "",
        f"### Saturated throughput (FAQ conversations, highest rate with p95 < {SATURATION_P95_MS:.0f} ms)",
        "",
        "| deployment | msg/s | at concurrency | p95 there |",
        "|---|---|---|---|",
    ]
    for result in results:
        if not any(run.ramp for run in result.runs):
            continue
        lines.append(
            f"| {result.name} | {fmt(result.saturated_throughput(), digits=0)} "
            f"| {fmt(result.median(lambda r: r.saturated.concurrency if r.saturated else None), digits=0)} "
            f"| {fmt(result.median(lambda r: r.saturated.p95 if r.saturated else None), ' ms')} |")
    lines += [
        "",
        "### Start-up, memory, training, long conversation, held-out NLU",
        "",
        f"| pipeline | start to ready | Rasa RSS after the load | action server RSS | training | turns 1-{LONG_WINDOW} p50 "
        f"| turns {long_turns - LONG_WINDOW + 1}-{long_turns} p50 | ratio | held-out accuracy "
        "| lowest topic F1 | out-of-scope taken for a topic | real users: in-scope understood "
        "| real users: out-of-scope taken for a topic |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        if result.accuracy is None and result.train_seconds is None and not any(r.rss_mb for r in result.runs):
            continue
        lines.append(
            f"| {result.name} | {fmt(result.median(lambda r: r.ready_seconds), ' s')} "
            f"| {_memory(result, 'rasa')} | {_memory(result, 'actions')} "
            f"| {fmt(result.train_seconds, ' s', 0)} | {fmt(result.median(lambda r: r.long_first_ms), ' ms')} "
            f"| {fmt(result.median(lambda r: r.long_last_ms), ' ms')} | {fmt(result.long_ratio(), 'x', 2)} "
            f"| {_pct(result.accuracy)} | {fmt(result.min_topic_f1, digits=3)} | {_pct(result.out_of_scope_accepted)} "
            f"| {_pct(result.real_understood)} | {_pct(result.real_out_of_scope_accepted)} |")
    if any(result.load(kind, c, "messages") == 0 for result in results for kind in ("faq", "action")
           for c in CONCURRENCY_LEVELS):
        notes = [*notes, "A latency of \"-\": no turn of that kind started in the measured window "
                         "and got a right reply (replies slower than the window, or only failures)."]
    if notes:
        lines += [""] + [f"- {note}" for note in notes]
    return "\n".join(lines)


def results_from_raw(raw: Sequence[Dict]) -> List[PipelineResult]:
    """Rebuild :class:`PipelineResult` objects from their ``dataclasses.asdict`` form (a raw results file)."""
    results = []
    for item in raw:
        runs = [
            RunFigures(ready_seconds=run["ready_seconds"], rss_mb=run["rss_mb"],
                       load={key: LoadFigures(**figures) for key, figures in run["load"].items()},
                       ramp=[RampStep(**step) for step in run["ramp"]],
                       long_first_ms=run["long_first_ms"], long_last_ms=run["long_last_ms"])
            for run in item["runs"]
        ]
        results.append(PipelineResult(**{**item, "runs": runs}))
    return results


def replace_measured(document: str, measured: str, default_intro: str) -> str:
    """``document`` with the part between the markers replaced by ``measured``.

    The hand-written text before and after the markers is kept; a document
    without markers keeps its text and gets the measured part appended (an
    empty one gets ``default_intro`` first).
    """
    block = f"{BEGIN_MARKER}\n{measured.rstrip()}\n{END_MARKER}"
    if BEGIN_MARKER in document and END_MARKER in document:
        head, rest = document.split(BEGIN_MARKER, 1)
        tail = rest.split(END_MARKER, 1)[1]
        return f"{head}{block}{tail}"
    head = document.rstrip() or default_intro.rstrip()
    return f"{head}\n\n{block}\n"
