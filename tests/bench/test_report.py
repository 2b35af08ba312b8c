"""Percentiles, medians over repetitions, target verdicts and the report file of ``make bench``."""

from __future__ import annotations

import pytest

from bench.report import (
    BEGIN_MARKER, END_MARKER, PipelineResult, RampStep, RunFigures, Target, evaluate_targets,
    load_figures, long_conversation_ratio, render, replace_measured, saturated_throughput,
)
from bench.serving import percentile


@pytest.mark.parametrize("values, q, expected", [
    ([5, 1, 4, 2, 3], 50, 3),          # the median of an odd count, not the value below it
    (list(range(1, 101)), 95, 95),
    (list(range(1, 101)), 99, 99),
    (list(range(1, 101)), 100, 100),
    (list(range(1, 21)), 95, 19),      # nearest rank: ceil(0.95 * 20) = 19th value
    ([7.5], 99, 7.5),
])
def test_percentile_is_the_nearest_rank(values, q, expected):
    assert percentile(values, q) == expected


def test_load_figures_of_a_run_without_replies_are_not_numbers():
    figures = load_figures([], throughput=0.0, errors=3)
    assert figures.messages == 0 and figures.errors == 3
    assert figures.p95 != figures.p95  # NaN: rendered as "-", never as a fast 0 ms


def test_saturated_throughput_is_the_fastest_step_under_the_limit_without_errors():
    steps = [RampStep(1, 50, 20), RampStep(8, 180, 120), RampStep(16, 260, 240, errors=2),
             RampStep(32, 240, 249.9), RampStep(64, 300, 400)]
    best = saturated_throughput(steps)
    assert (best.concurrency, best.throughput) == (32, 240)
    assert saturated_throughput([RampStep(1, 30, 300)]) is None


def test_long_conversation_compares_the_first_and_last_windows():
    latencies = [10.0] * 10 + [99.0] * 280 + [15.0] * 9 + [1000.0]
    first, last, ratio = long_conversation_ratio(latencies, window=10)
    assert (first, last, ratio) == (10.0, 15.0, 1.5)
    with pytest.raises(ValueError):
        long_conversation_ratio([1.0] * 19, window=10)


@pytest.mark.parametrize("measured, op, limit, verdict", [
    (9.9, "<", 10, "pass"), (10.0, "<", 10, "FAIL"), (1.5, "<=", 1.5, "pass"),
    (1.51, "<=", 1.5, "FAIL"), (250, ">=", 250, "pass"), (249, ">=", 250, "FAIL"),
    (None, "<", 10, "not measured"),
])
def test_target_verdicts(measured, op, limit, verdict):
    assert Target("t", measured, op, limit).verdict == verdict


def _run(faq_p50: float, throughput: float, ready: float = 5.0, first: float = 10.0, last: float = 12.0) -> RunFigures:
    run = RunFigures(ready_seconds=ready, rss_mb={"rasa": 500.0, "actions": 60.0, "rasa_peak": 610.0, "actions_peak": 61.0},
                     long_first_ms=first, long_last_ms=last)
    for concurrency in (1, 20, 50):
        run.load[RunFigures.key("faq", concurrency)] = load_figures([faq_p50] * 10, 100.0)
        run.load[RunFigures.key("action", concurrency)] = load_figures([faq_p50 * 3] * 10, 50.0)
    run.ramp = [RampStep(1, throughput / 4, 20), RampStep(8, throughput, 200), RampStep(16, throughput, 300)]
    return run


def test_figures_are_medians_over_repetitions_and_targets_use_them():
    ours = PipelineResult("ours", runs=[_run(8, 300), _run(30, 200), _run(9, 280, ready=12)])
    reference = PipelineResult("reference", runs=[_run(20, 30), _run(21, 36), _run(19, 40)])
    targets = {t.label: t for t in evaluate_targets(ours, reference, long_turns=300)}

    p50 = targets["FAQ turn p50, 1 conversation"]
    assert (p50.measured, p50.reference, p50.verdict) == (9, 20, "pass")  # the slow repetition is not the median
    assert targets["saturated throughput (p95 < 250 ms)"].measured == 280
    assert targets["throughput, ours / reference"].measured == pytest.approx(280 / 36)
    assert targets["throughput, ours / reference"].verdict == "FAIL"  # 8x needed, 7.8x measured
    assert targets["start to ready"].measured == 5.0
    assert targets["action turn p95, 1 conversation"].measured == 27
    assert targets["action turn p95, 1 conversation"].verdict == "pass"
    assert targets["turn 291-300 / turn 1-10 (p50)"].measured == pytest.approx(1.2)
    memory = targets["Rasa process resident memory (peak)"]
    assert (memory.measured, memory.verdict) == (610, "FAIL")  # 500 MB after the load, but it peaked over 600


def test_without_a_reference_the_ratio_target_is_not_measured():
    ours = PipelineResult("ours", runs=[_run(8, 300)])
    targets = {t.label: t for t in evaluate_targets(ours, None, long_turns=300)}
    assert targets["throughput, ours / reference"].verdict == "not measured"
    assert targets["saturated throughput (p95 < 250 ms)"].verdict == "pass"


def test_cluster_rows_are_skipped_with_a_reason_while_the_module_is_missing(monkeypatch):
    import sys

    from bench import harness

    monkeypatch.setitem(sys.modules, "supportbot.cluster", None)  # import fails as if the file were absent
    notes = []
    assert harness.cluster_results(harness.QUICK, [], notes) == []
    assert notes == ["Cluster rows not measured: supportbot.cluster is not usable "
                     "(ModuleNotFoundError: import of supportbot.cluster halted; None in sys.modules)."]


def test_report_shows_every_row_the_verdicts_and_the_repetitions():
    ours = PipelineResult("ours", runs=[_run(8, 300)], train_seconds=16, accuracy=0.973,
                          min_topic_f1=0.944, out_of_scope_accepted=0.0)
    cluster = PipelineResult("cluster, 2 instances", runs=[RunFigures(float("nan"), {}, ramp=[RampStep(4, 420, 90)])])
    targets = evaluate_targets(ours, None, long_turns=300)
    text = render([ours, cluster], targets, repetitions=3, notes=["Cluster rows not measured: x"], long_turns=300)

    assert "median over 3 repetition(s)" in text
    assert "| FAQ turn p50, 1 conversation < 10 ms | 8.0 ms | - | pass |" in text
    assert "| throughput, ours / reference >= 8x | - | - | not measured |" in text
    for kind in ("FAQ", "custom action"):
        for concurrency in (1, 20, 50):
            assert f"| ours | {kind} | {concurrency} |" in text
    assert "| cluster, 2 instances | 420 | 4 | 90.0 ms |" in text
    assert "| ours | 5.0 s | 500 MB (peak 610 MB) | 60 MB (peak 61 MB) | 16 s |" in text and "97.3%" in text
    assert "- Cluster rows not measured: x" in text


def test_report_shows_the_real_user_test_set_beside_the_held_out_figures():
    ours = PipelineResult("ours", runs=[_run(8, 300)], train_seconds=16, accuracy=0.972, min_topic_f1=0.889,
                          out_of_scope_accepted=0.0, real_understood=0.794, real_out_of_scope_accepted=0.056)
    reference = PipelineResult("reference", runs=[_run(9, 300)], accuracy=0.95)
    text = render([ours, reference], evaluate_targets(ours, reference, long_turns=300), repetitions=1,
                  notes=[], long_turns=300)
    assert "real users: in-scope understood | real users: out-of-scope taken for a topic |" in text
    assert "| 97.2% | 0.889 | 0.0% | 79.4% | 5.6% |" in text
    assert "| 95.0% | - | - | - | - |" in text  # not measured: shown as such, not as zero


def test_the_measured_part_replaces_only_what_is_between_the_markers():
    document = f"# Benchmarks\n\nHand-written intro.\n\n{BEGIN_MARKER}\nold table\n{END_MARKER}\n\n## Notes\nkept\n"
    updated = replace_measured(document, "new table", "# default")
    assert updated == f"# Benchmarks\n\nHand-written intro.\n\n{BEGIN_MARKER}\nnew table\n{END_MARKER}\n\n## Notes\nkept\n"
    assert replace_measured(updated, "newer", "# default").count(BEGIN_MARKER) == 1

    fresh = replace_measured("", "table", "# Benchmarks\n\nIntro.")
    assert fresh.startswith("# Benchmarks\n\nIntro.\n\n" + BEGIN_MARKER) and "table" in fresh


def test_a_raw_results_file_renders_the_same_report_again():
    import dataclasses
    import json

    from bench.report import results_from_raw

    ours = PipelineResult("ours", runs=[_run(8, 300), _run(9, 280)], train_seconds=16, accuracy=0.97)
    cluster = PipelineResult("cluster, 1 instance", runs=[RunFigures(float("nan"), {}, ramp=[RampStep(4, 420, 90)])])
    raw = json.loads(json.dumps([dataclasses.asdict(r) for r in (ours, cluster)]))  # as written to results/
    again = results_from_raw(raw)

    def report(results):
        return render(results, evaluate_targets(results[0], None, 300), repetitions=2, notes=[], long_turns=300)

    assert report(again) == report([ours, cluster])
