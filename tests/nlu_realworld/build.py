"""Rebuild the real-user NLU sets (dev and frozen test) from their public source.

Source: the AmFam Chatbot Intent Dataset (ACID), real customer messages to an
insurer's support (https://github.com/AmFamMLTeam/ACID, pinned commit below).
Its published test split becomes our frozen TEST set, its training split our
DEV set; both are mapped onto this project's labels by ``LABEL_OF`` (README.md
in this folder explains each choice). The source states no licence, so the
messages are not committed: this script rebuilds them, byte for byte, into
``build/`` (git-ignored) and refuses a source whose SHA-256 differs.

Usage: python -m tests.nlu_realworld.build [--source DIR]
  DIR: a folder holding the two CSV files, or a git directory of the ACID
  repository (e.g. a mirror); default: download the pinned files from GitHub.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import re
import subprocess
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

FOLDER = Path(__file__).resolve().parent
BUILD = FOLDER / "build"
DEV_SET = BUILD / "dev.yml"
TEST_SET = BUILD / "test.yml"
COMMIT = "66bc5e0afa33495d8c61fba76b8c551af84bfa6e"
URL = "https://raw.githubusercontent.com/AmFamMLTeam/ACID/{commit}/{name}"
SOURCES = {  # split -> (file, SHA-256)
    "dev": ("customer_training.csv", "9cdbdb331d3a16c0676c2dfde3671c9862e55dfc053e74bc45b9951dc366406c"),
    "test": ("customer_testing.csv", "4238a11181a1e7010fda2b7f0335770375170f75a00274045bb64fc3f0369fbf"),
}
#: SHA-256 of the built files: the frozen sets, so a changed mapping shows.
FROZEN = {
    "dev": "f319f86c136d499210792b6afdcd67c6254a78e805e9f7765528ce26e750b2e2",
    "test": "f2cb0eff07e9eef47bdcc2b10ee8106f41551690b1ebfff75718b69035f48c6a",
}

# ACID intent -> our label. Intents not listed here are out_of_scope, except
# those in AMBIGUOUS, which are left out (see README.md).
LABEL_OF: Dict[str, str] = {
    "INFO_FORGOT_PASSWORD": "forgot_password",
    "INFO_SET_UP_ACCT": "create_account",
    "INFO_CANCEL_INS_POLICY": "close_account",
    "INFO_LIFE_POLICY_CANCEL": "close_account",
    "INFO_SPEAK_TO_REP": "human_handoff",
    "ST_HELLO": "greet",
    "ST_THANK_YOU": "thank",
    "YES": "affirm",
    "NO": "deny",
    "ST_IS_ABBY_REAL": "bot_challenge",
    # split by verb into add_user / remove_user, see _insured_label
    "INFO_ADD_REMOVE_INSURED": "",
}
AMBIGUOUS = {
    "INFO_LOGIN_ERROR", "INFO_FORGOT_USERID", "INFO_CHANGE_USERID", "INFO_FORGOT_EMAIL",
    "INFO_LOG_OUT", "INFO_CANCEL_CONFIRM", "INFO_CANCEL_FEE", "INFO_PHONE_NUM",
    "INFO_PHONE_NUM_INTERNATIONAL", "INFO_CUSTOMER_SERVICE_HOURS", "INFO_BILLING_DEPT_CONTACT",
    "INFO_AGT_NOT_RESPONDING", "INFO_PROFILE_SECTION", "ST_GENERAL_REQUEST",
    "ST_WHAT_CAN_ABBY_DO", "INFO_srtwentytwo",
    # "agent" there is the customer's insurance agent (a salesperson), here a support person
    "INFO_FIND_AGENT", "INFO_WHO_IS_MY_AGENT", "INFO_CHANGE_AGENT", "INFO_AGENT_WRONG",
}
OUT_OF_SCOPE = "out_of_scope"
MAX_PER_LABEL = 50
MAX_PER_OUT_OF_SCOPE_INTENT = 3
_REMOVE = re.compile(r"\b(remove|removed|removing|delete|deleted|take|taken|taking|drop|get rid|off)\b", re.I)
_ADD = re.compile(r"\b(add|adding|added|put|include|including)\b", re.I)


def normalise(text: str) -> str:
    """Lower case, letters and digits only, single spaces (for de-duplication)."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def _insured_label(text: str) -> Optional[str]:
    removes, adds = bool(_REMOVE.search(text)), bool(_ADD.search(text))
    if removes == adds:
        return None
    return "remove_user" if removes else "add_user"


def map_label(intent: str, text: str) -> Optional[str]:
    """Our label for an ACID example, or None if it is left out."""
    if intent in AMBIGUOUS:
        return None
    if intent == "INFO_ADD_REMOVE_INSURED":
        return _insured_label(text)
    if intent == "ST_HELLO" and len(text.split()) > 4:
        return None  # greetings followed by names, addresses and birth dates
    return LABEL_OF.get(intent, OUT_OF_SCOPE)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def select(rows: Iterable[Tuple[str, str]], exclude: Iterable[str] = ()) -> List[Tuple[str, str]]:
    """Mapped (text, label) pairs: de-duplicated, capped per label, in a fixed order.

    Within a label the examples are taken in the order of their SHA-256, so
    the choice is deterministic and independent of the file's order.
    """
    seen = set(exclude)
    groups: Dict[Tuple[str, str], List[str]] = defaultdict(list)
    for intent, text in rows:
        text = " ".join(text.split())
        key = normalise(text)
        if not key or key in seen:
            continue
        label = map_label(intent, text)
        if label is None:
            continue
        seen.add(key)
        group = (label, intent if label == OUT_OF_SCOPE else "")
        groups[group].append(text)
    chosen: List[Tuple[str, str]] = []
    for (label, intent), texts in sorted(groups.items()):
        cap = MAX_PER_OUT_OF_SCOPE_INTENT if intent else MAX_PER_LABEL
        chosen.extend((text, label) for text in sorted(texts, key=_digest)[:cap])
    return chosen


def to_yaml(pairs: List[Tuple[str, str]], comment: str) -> str:
    """Rasa NLU YAML, one block per label."""
    by_label: Dict[str, List[str]] = defaultdict(list)
    for text, label in pairs:
        by_label[label].append(text)
    lines = [f"# {comment}", 'version: "3.1"', "nlu:"]
    for label in sorted(by_label):
        lines += [f"- intent: {label}", "  examples: |"]
        lines += [f"    - {text}" for text in by_label[label]]
    return "\n".join(lines) + "\n"


def read_source(source: Optional[Path], name: str, sha256: str) -> str:
    """The CSV file ``name`` at the pinned commit, checked against its SHA-256."""
    if source is None:
        with urllib.request.urlopen(URL.format(commit=COMMIT, name=name), timeout=60) as response:
            data = response.read()
    elif (source / name).exists():
        data = (source / name).read_bytes()
    else:
        data = subprocess.run(
            ["git", "--git-dir", str(source), "show", f"{COMMIT}:{name}"],
            check=True, capture_output=True,
        ).stdout
    if hashlib.sha256(data).hexdigest() != sha256:
        raise SystemExit(f"{name}: SHA-256 differs from the pinned source; refusing to build")
    return data.decode("utf-8")


def rows_of(csv_text: str) -> List[Tuple[str, str]]:
    reader = csv.reader(io.StringIO(csv_text))
    next(reader)  # INTENT_NAME,UTTERANCES
    return [(row[0], row[1]) for row in reader if len(row) >= 2]


def build(source: Optional[Path]) -> Dict[str, List[Tuple[str, str]]]:
    """Write build/test.yml and build/dev.yml; the dev set shares no message with the test set."""
    test = select(rows_of(read_source(source, *SOURCES["test"])))
    dev = select(rows_of(read_source(source, *SOURCES["dev"])), exclude={normalise(t) for t, _ in test})
    BUILD.mkdir(exist_ok=True)
    note = "Built by tests/nlu_realworld/build.py from ACID ({}) at {}; do not edit, do not commit."
    for split, pairs, path in (("test", test, TEST_SET), ("dev", dev, DEV_SET)):
        text = to_yaml(pairs, note.format(SOURCES[split][0], COMMIT))
        path.write_text(text, encoding="utf-8")
        frozen = FROZEN[split]
        if frozen and _digest(text) != frozen:
            raise SystemExit(f"{path}: differs from the frozen set (SHA-256 {_digest(text)})")
    return {"test": test, "dev": dev}


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=None)
    sets = build(parser.parse_args(argv).source)
    for split, pairs in sets.items():
        counts: Dict[str, int] = defaultdict(int)
        for _, label in pairs:
            counts[label] += 1
        print(split, len(pairs), dict(sorted(counts.items())))


if __name__ == "__main__":
    main()
