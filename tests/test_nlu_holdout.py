"""Quality gates on the held-out NLU set (tests/nlu_holdout.yml, never trained on)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from bench.nlu_eval import OUT_OF_SCOPE, TOPIC_LABELS, NluReport, evaluate_model, read_nlu_examples
from supportbot.settings import PROJECT_ROOT
from tests.conftest import REPORT_LINES

HOLDOUT = PROJECT_ROOT / "tests" / "nlu_holdout.yml"
TRAINING_DIR = PROJECT_ROOT / "data" / "nlu"
MIN_ACCURACY = 0.95
MIN_TOPIC_F1 = 0.90
MAX_OUT_OF_SCOPE_ACCEPTED = 0.10


def _normalise(text: str) -> str:
    return " ".join(text.lower().split())


def training_examples():
    pairs = []
    for path in sorted(TRAINING_DIR.glob("*.yml")):
        pairs.extend(read_nlu_examples(path))
    return pairs


@pytest.fixture(scope="module")
def holdout_report(model_path: Path) -> NluReport:
    report = evaluate_model(model_path, read_nlu_examples(HOLDOUT))
    REPORT_LINES.append(report.table())
    for text, gold, predicted in report.errors:
        REPORT_LINES.append(f"  miss: {text!r}: expected {gold}, got {predicted}")
    return report


def test_holdout_is_never_trained_on():
    trained = {_normalise(text) for text, _ in training_examples()}
    leaked = [text for text, _ in read_nlu_examples(HOLDOUT) if _normalise(text) in trained]
    assert not leaked, f"held-out messages found in the training data: {leaked}"


def test_every_label_has_enough_examples():
    trained = Counter(label for _, label in training_examples())
    held_out = Counter(label for _, label in read_nlu_examples(HOLDOUT))
    for label in TOPIC_LABELS:
        assert trained[label] >= 30, f"{label}: only {trained[label]} training examples"
    for label, count in trained.items():
        assert held_out[label] >= 10, f"{label}: only {held_out[label]} held-out examples"


@pytest.mark.slow
def test_holdout_intent_accuracy(holdout_report: NluReport):
    assert holdout_report.accuracy >= MIN_ACCURACY, holdout_report.table()


@pytest.mark.slow
@pytest.mark.parametrize("topic", TOPIC_LABELS)
def test_holdout_topic_f1(holdout_report: NluReport, topic: str):
    assert holdout_report.f1[topic] >= MIN_TOPIC_F1, holdout_report.table()


@pytest.mark.slow
def test_out_of_scope_is_not_taken_for_a_topic(holdout_report: NluReport):
    assert holdout_report.support[OUT_OF_SCOPE] >= 10
    assert holdout_report.out_of_scope_accepted <= MAX_OUT_OF_SCOPE_ACCEPTED, holdout_report.table()
