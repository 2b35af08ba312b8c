"""Train a model with a given configuration and record how long it took.

``python -m bench.training --config bench/configs/rasa_default.yml --name rasa_default``
trains ``models/rasa_default.tar.gz`` on ``data/`` and ``domain.yml`` (what the
Makefile's reference-model target runs when its inputs change) and writes the
training time beside it in ``models/rasa_default.train.json``, so the benchmark
can report it without training the reference (about 5 minutes) on every run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Optional, Sequence

from supportbot.settings import PROJECT_ROOT


def train(config: Path, out_dir: Path, name: str) -> tuple:
    """Train a full model with ``config`` into ``out_dir/name.tar.gz``; return (model path, seconds)."""
    env = dict(os.environ, RASA_TELEMETRY_ENABLED="false", PYTHONPATH=str(PROJECT_ROOT))
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "rasa", "train", "--config", str(config), "--domain", "domain.yml",
         "--data", "data", "--out", str(out_dir), "--fixed-model-name", name, "--force"],
        cwd=PROJECT_ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    return out_dir / f"{name}.tar.gz", time.monotonic() - started


def record_path(model: Path) -> Path:
    """Where the training record of ``model`` (``x.tar.gz``) lives: ``x.train.json``."""
    return model.with_name(model.name.replace(".tar.gz", "") + ".train.json")


def read_record(model: Path) -> Optional[Dict]:
    """The training record of ``model`` ({"seconds", "trained_at", "config"}), or None."""
    path = record_path(model)
    return json.loads(path.read_text()) if path.exists() else None


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Train one model and write its training record."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--name", required=True, help="model file name without .tar.gz")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "models")
    args = parser.parse_args(argv)
    model, seconds = train(args.config.resolve(), args.out.resolve(), args.name)
    record_path(model).write_text(json.dumps({
        "seconds": round(seconds, 1), "config": str(args.config),
        "trained_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
    }))
    print(f"trained {model} in {seconds:.0f} s")


if __name__ == "__main__":
    main()
