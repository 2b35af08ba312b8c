"""Held-out NLU evaluation: accuracy, per-label F1 and out-of-scope acceptance.

A message the FallbackClassifier rejects (``nlu_fallback``) counts as
"out_of_scope" when scoring: for an out-of-scope message both outcomes are
right (the assistant does not pretend to understand it), for a topic message
both are wrong.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import yaml
from sklearn.metrics import precision_recall_fscore_support

TOPIC_LABELS = (
    "add_user", "remove_user", "account_types", "change_account_type",
    "change_currency", "close_account", "create_account", "forgot_password",
    "what_is_tfa", "lost_tfa_app",
)
OUT_OF_SCOPE = "out_of_scope"
FALLBACK = "nlu_fallback"


def read_nlu_examples(path: Path) -> List[Tuple[str, str]]:
    """(text, intent) pairs of a Rasa NLU YAML file."""
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    pairs = []
    for block in document.get("nlu", []):
        intent = block.get("intent")
        if not intent:
            continue
        for line in block["examples"].splitlines():
            line = line.strip()
            if line.startswith("- "):
                pairs.append((line[2:].strip(), intent))
    return pairs


@dataclass
class NluReport:
    """Scores of one model on one labelled set."""

    total: int
    accuracy: float
    f1: Dict[str, float]
    support: Dict[str, int]
    out_of_scope_accepted: float
    errors: List[Tuple[str, str, str]] = field(default_factory=list)

    def table(self) -> str:
        """Markdown table of the per-label F1 and the headline figures."""
        lines = [
            f"held-out messages: {self.total}, intent accuracy: {self.accuracy:.1%}, "
            f"out-of-scope accepted as a topic: {self.out_of_scope_accepted:.1%}",
            "| label | F1 | n |", "|---|---|---|",
        ]
        for label in sorted(self.f1):
            lines.append(f"| {label} | {self.f1[label]:.3f} | {self.support[label]} |")
        return "\n".join(lines)


def score(gold: Sequence[str], predicted: Sequence[str], texts: Sequence[str]) -> NluReport:
    """Score predictions against gold labels."""
    normalised = [OUT_OF_SCOPE if p == FALLBACK else p for p in predicted]
    labels = sorted(set(gold))
    _, _, f1, support = precision_recall_fscore_support(
        gold, normalised, labels=labels, zero_division=0
    )
    correct = sum(g == p for g, p in zip(gold, normalised))
    oos = [p for g, p in zip(gold, normalised) if g == OUT_OF_SCOPE]
    accepted = sum(p != OUT_OF_SCOPE for p in oos)
    errors = [(t, g, p) for t, g, p in zip(texts, gold, predicted)
              if g != (OUT_OF_SCOPE if p == FALLBACK else p)]
    return NluReport(
        total=len(gold),
        accuracy=correct / len(gold),
        f1={label: float(v) for label, v in zip(labels, f1)},
        support={label: int(n) for label, n in zip(labels, support)},
        out_of_scope_accepted=accepted / len(oos) if oos else 0.0,
        errors=errors,
    )


def evaluate_model(model_path: Path, examples: Sequence[Tuple[str, str]]) -> NluReport:
    """Parse every example with the model at ``model_path`` and score the result."""
    import structlog
    from rasa.core.agent import Agent

    # Rasa logs every parsed message at DEBUG through structlog: keep it quiet.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    agent = Agent.load(model_path)

    async def predict_all() -> List[str]:
        results = []
        for text, _ in examples:
            parsed = await agent.parse_message(text)
            results.append(parsed["intent"]["name"])
        return results

    predicted = asyncio.run(predict_all())
    return score([g for _, g in examples], predicted, [t for t, _ in examples])
