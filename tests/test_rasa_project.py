"""The Rasa project is consistent: data validates cleanly, test stories pass."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from supportbot.settings import PROJECT_ROOT

pytestmark = pytest.mark.slow


def rasa(*args: str, cwd: Path = PROJECT_ROOT) -> subprocess.CompletedProcess:
    env = dict(os.environ, RASA_TELEMETRY_ENABLED="false", PYTHONPATH=str(PROJECT_ROOT),
               SQLALCHEMY_SILENCE_UBER_WARNING="1")
    return subprocess.run(
        [sys.executable, "-m", "rasa", *args], cwd=cwd, env=env,
        capture_output=True, text=True, timeout=600,
    )


def test_training_data_validates_without_warnings():
    result = rasa("data", "validate", "--fail-on-warnings")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    # Rasa reports data problems as UserWarnings or WARNING log lines of its own
    # loggers; deprecation notices of libraries are not about our data.
    rasa_warnings = [line for line in output.splitlines()
                     if "UserWarning" in line or re.search(r"\bWARNING\s+rasa\.", line)]
    assert not rasa_warnings, "\n".join(rasa_warnings)


def test_test_stories_pass(model_path: Path, tmp_path: Path):
    result = rasa(
        "test", "core", "--model", str(model_path), "--stories", "tests/test_stories.yml",
        "--fail-on-prediction-errors", "--out", str(tmp_path / "results"),
    )
    failed = tmp_path / "results" / "failed_test_stories.yml"
    details = failed.read_text() if failed.exists() else ""
    assert result.returncode == 0, (details or (result.stdout + result.stderr))[-4000:]
