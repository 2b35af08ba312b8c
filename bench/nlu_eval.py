"""Held-out NLU evaluation: accuracy, per-label F1 and out-of-scope acceptance.

A message the FallbackClassifier rejects (``nlu_fallback``) counts as
"out_of_scope" when scoring: for an out-of-scope message both outcomes are
right (the assistant does not pretend to understand it), for a topic message
both are wrong.
"""

from __future__ import annotations

import asyncio
import difflib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

import yaml
from sklearn.metrics import precision_recall_fscore_support

TOPIC_LABELS = (
    "add_user", "remove_user", "account_types", "change_account_type",
    "change_currency", "close_account", "create_account", "forgot_password",
    "what_is_tfa", "lost_tfa_app",
)
OUT_OF_SCOPE = "out_of_scope"
FALLBACK = "nlu_fallback"
#: Character similarity from which two messages count as near-copies.
SIMILARITY = 0.9


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
    #: Share of each label's messages given that label (out-of-scope: not taken for a topic).
    recall: Dict[str, float] = field(default_factory=dict)
    #: Share of the messages that are not out-of-scope given their right label.
    in_scope_understood: float = 0.0
    #: The label given to each message, in the order scored (fallback as out_of_scope).
    predicted: List[str] = field(default_factory=list)

    def table(self) -> str:
        """Markdown table of the per-label F1 and the headline figures."""
        lines = [
            f"held-out messages: {self.total}, intent accuracy: {self.accuracy:.1%}, "
            f"out-of-scope accepted as a topic: {self.out_of_scope_accepted:.1%}, "
            f"in-scope understood: {self.in_scope_understood:.1%}",
            "| label | F1 | right | n |", "|---|---|---|---|",
        ]
        for label in sorted(self.f1):
            lines.append(f"| {label} | {self.f1[label]:.3f} | {self.recall.get(label, 0.0):.1%} | {self.support[label]} |")
        return "\n".join(lines)


def score(gold: Sequence[str], predicted: Sequence[str], texts: Sequence[str]) -> NluReport:
    """Score predictions against gold labels."""
    normalised = [OUT_OF_SCOPE if p == FALLBACK else p for p in predicted]
    labels = sorted(set(gold))
    _, recall, f1, support = precision_recall_fscore_support(
        gold, normalised, labels=labels, zero_division=0
    )
    correct = sum(g == p for g, p in zip(gold, normalised))
    oos = [p for g, p in zip(gold, normalised) if g == OUT_OF_SCOPE]
    accepted = sum(p != OUT_OF_SCOPE for p in oos)
    errors = [(t, g, p) for t, g, p in zip(texts, gold, predicted)
              if g != (OUT_OF_SCOPE if p == FALLBACK else p)]
    in_scope = [(g, p) for g, p in zip(gold, normalised) if g != OUT_OF_SCOPE]
    return NluReport(
        total=len(gold),
        accuracy=correct / len(gold),
        f1={label: float(v) for label, v in zip(labels, f1)},
        support={label: int(n) for label, n in zip(labels, support)},
        out_of_scope_accepted=accepted / len(oos) if oos else 0.0,
        errors=errors,
        recall={label: float(v) for label, v in zip(labels, recall)},
        in_scope_understood=sum(g == p for g, p in in_scope) / len(in_scope) if in_scope else 0.0,
        predicted=normalised,
    )


def load_agent(model_path: Path) -> Any:
    """The Rasa agent of the model at ``model_path``, with Rasa's per-message DEBUG logging off."""
    import structlog
    from rasa.core.agent import Agent

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    return Agent.load(model_path)


def parse_intents(agent: Any, texts: Sequence[str]) -> List[str]:
    """The intent the model gives each text, all texts through the NLU graph in one batch.

    The same graph ``agent.parse_message`` runs for one message; a batch lets
    the classifier encode all the texts at once.
    """
    from rasa.core.channels.channel import UserMessage
    from rasa.engine.constants import PLACEHOLDER_MESSAGE, PLACEHOLDER_TRACKER

    processor = agent.processor
    target = processor.model_metadata.nlu_target
    results = processor.graph_runner.run(
        inputs={PLACEHOLDER_MESSAGE: [UserMessage(text) for text in texts], PLACEHOLDER_TRACKER: None},
        targets=[target],
    )
    return [message.get("intent", {}).get("name") for message in results[target]]


def evaluate_model(model_path: Path, examples: Sequence[Tuple[str, str]], agent: Any = None) -> NluReport:
    """Parse every example with the model at ``model_path`` and score the result."""
    agent = agent or load_agent(model_path)
    predicted = parse_intents(agent, [text for text, _ in examples])
    return score([g for _, g in examples], predicted, [t for t, _ in examples])


def _words(text: str) -> List[str]:
    return re.sub(r"[^\w\s]", " ", text.lower()).split()


def _one_word_apart(a: List[str], b: List[str]) -> bool:
    """True if one word inserted, deleted or replaced turns ``a`` into ``b``.

    Both must keep at least two words in common: "hi there" and "hey there"
    are one word apart too, but neither is a copy of the other.
    """
    if abs(len(a) - len(b)) > 1 or min(len(a), len(b)) < 2:
        return False
    if len(a) == len(b) == 2:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b)) <= 1
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    for i in range(len(long_)):
        if long_[:i] + long_[i + 1:] == short:
            return True
    return False


def near_duplicate_reason(text: str, other: str) -> str:
    """Why ``text`` is a near-copy of ``other`` ("" if it is not).

    Near-copies: the same words once punctuation and case are ignored, the same
    set of words, one word inserted/deleted/replaced, or a character
    similarity (difflib ratio of the normalised texts) of at least 0.9.
    One word apart counts only between messages of two words or more.
    """
    a, b = _words(text), _words(other)
    joined_a, joined_b = " ".join(a), " ".join(b)
    if joined_a == joined_b:
        return "same words"
    if set(a) == set(b):
        return "same word set"
    if _one_word_apart(a, b):
        return "one word apart"
    total = len(joined_a) + len(joined_b)
    if total and 2 * min(len(joined_a), len(joined_b)) / total >= SIMILARITY:
        matcher = difflib.SequenceMatcher(None, joined_a, joined_b, autojunk=False)
        if matcher.real_quick_ratio() >= SIMILARITY and matcher.quick_ratio() >= SIMILARITY \
                and matcher.ratio() >= SIMILARITY:
            return f"character similarity {matcher.ratio():.2f}"
    return ""


def near_duplicates(
    examples: Sequence[Tuple[str, str]], training: Sequence[Tuple[str, str]]
) -> List[Tuple[str, str, str, str]]:
    """(text, label, training text, reason) for each example that near-copies a training example."""
    found = []
    for text, label in examples:
        for other, _ in training:
            reason = near_duplicate_reason(text, other)
            if reason:
                found.append((text, label, other, reason))
                break
    return found
