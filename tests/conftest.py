"""Shared fixtures: the trained model and a running assistant on free ports."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import pytest
import requests

from channels.rate_limit import RATE_LIMITS_OFF
from supportbot.runner import free_port, wait_until_up
from supportbot.settings import PROJECT_ROOT

MODEL_PATH = PROJECT_ROOT / "models" / "assistant.tar.gz"

# Figures reported at the end of the run (see pytest_terminal_summary).
REPORT_LINES: List[str] = []


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: D103
    if REPORT_LINES:
        terminalreporter.section("measured figures")
        for line in REPORT_LINES:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def model_path() -> Path:
    """The model trained from data/ (``make test`` trains it first)."""
    if not MODEL_PATH.exists():
        pytest.fail(f"{MODEL_PATH} is missing: run the tests with `make test`, which trains it.")
    return MODEL_PATH


@dataclass
class RunningAssistant:
    """URLs of an assistant started by the runner for the tests."""

    rasa_url: str
    web_url: str
    action_url: str
    log_path: Path
    accounts_db_url: str = ""
    console_url: str = ""

    def say(self, sender: str, message: str, token: Optional[str] = None) -> List[Dict]:
        """Send one message over the REST channel and return the bot's replies.

        With a portal ``token`` the message comes from that verified customer.
        """
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = requests.post(
            f"{self.rasa_url}/webhooks/rest/webhook",
            json={"sender": sender, "message": message},
            headers=headers,
            timeout=30,
        )
        response.raise_for_status()
        return response.json()


def start_assistant(tmp_dir: Path, extra_env: Dict[str, str]) -> tuple:
    """Start ``python -m supportbot.runner`` on free ports; return (process, assistant)."""
    ports = {name: free_port() for name in ("RASA_PORT", "ACTION_PORT", "WEB_PORT", "CONSOLE_PORT")}
    env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT), RASA_TELEMETRY_ENABLED="false",
               RASA_MODEL=str(MODEL_PATH), TRACKER_DB_URL=f"sqlite:///{tmp_dir / 'tracker.db'}",
               **{k: str(v) for k, v in ports.items()})
    env.update(extra_env)
    log_path = tmp_dir / "assistant.log"
    log = open(log_path, "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "supportbot.runner"], cwd=PROJECT_ROOT, env=env,
        stdout=log, stderr=subprocess.STDOUT,
    )
    assistant = RunningAssistant(
        rasa_url=f"http://127.0.0.1:{ports['RASA_PORT']}",
        web_url=f"http://127.0.0.1:{ports['WEB_PORT']}",
        action_url=f"http://127.0.0.1:{ports['ACTION_PORT']}",
        log_path=log_path,
        console_url=f"http://127.0.0.1:{ports['CONSOLE_PORT']}",
    )
    up = wait_until_up(
        [f"{assistant.rasa_url}/", f"{assistant.web_url}/healthz", f"{assistant.action_url}/health",
         f"{assistant.console_url}/healthz"],
        timeout=180, processes=[process],
    )
    if not up:
        stop_process(process)
        pytest.fail("the assistant did not start:\n" + log_path.read_text(errors="replace")[-4000:])
    return process, assistant


def stop_process(process: subprocess.Popen) -> None:
    """Stop the runner (it stops its children) and wait for it."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# Portal token secret of the test assistants (tests sign tokens with it).
TEST_PORTAL_SECRET = "test-portal-secret-" + "x" * 32
#: Key the test assistants' Rasa and action servers sign identity claims with.
TEST_ACTION_CLAIMS_KEY = "test-action-claims-key-" + "k" * 32


def assistant_env(tmp_dir: Path) -> Dict[str, str]:
    """Environment of a test assistant: its own account store and mail folder, a known portal secret."""
    return {
        "ACCOUNTS_DB_URL": f"sqlite:///{tmp_dir / 'accounts.db'}",
        "PORTAL_TOKEN_SECRET": TEST_PORTAL_SECRET,
        "ACTION_CLAIMS_KEY": TEST_ACTION_CLAIMS_KEY,
        "MAIL_BACKEND": "file",
        "MAIL_DIR": str(tmp_dir / "mail"),
        "DEMO_DATA": "1",  # the tests sign in as the demo accounts
        # tests play many customers from one address and one token in quick succession;
        # the limits themselves are tested in tests/channels/test_rate_limits.py
        **RATE_LIMITS_OFF,
    }


@pytest.fixture(scope="session")
def assistant(model_path: Path, tmp_path_factory) -> Iterator[RunningAssistant]:
    """The whole assistant (Rasa, actions, chat page) as ``make run`` starts it.

    It has its own account store (with the demo accounts) and accepts portal
    tokens signed with ``TEST_PORTAL_SECRET``.
    """
    tmp_dir = tmp_path_factory.mktemp("assistant")
    process, running = start_assistant(tmp_dir, assistant_env(tmp_dir))
    running.accounts_db_url = assistant_env(tmp_dir)["ACCOUNTS_DB_URL"]
    yield running
    stop_process(process)


#: How long a browser test waits for the assistant's reply or a page change (Playwright's
#: default is 5 s, too short on a loaded machine): the widget tests' wait, for every page.
BROWSER_WAIT_MS = 20_000

CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def reply_texts(replies: List[Dict]) -> str:
    """The texts of the assistant's REST replies, joined with spaces."""
    return " ".join(reply.get("text", "") for reply in replies)


def wait_for(condition, timeout: float = 40.0, every: float = 0.25) -> bool:
    """Poll ``condition`` until it is true (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return False


@pytest.fixture
def screenshot_path(tmp_path: Path):
    """Where a browser test saves its screenshot.

    Into ``docs/screenshots`` (the pictures the README shows) only when
    ``UPDATE_SCREENSHOTS=1``; otherwise into the test's temporary directory, so
    a test run never changes tracked files.
    """
    def path(name: str) -> Path:
        folder = PROJECT_ROOT / "docs" / "screenshots" if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path
        folder.mkdir(parents=True, exist_ok=True)
        return folder / name
    return path


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium driven by Playwright (never a downloaded browser).

    Module-scoped: Playwright's sync API keeps an event loop running while it is
    open, which would break later tests that start their own loop.
    """
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=BROWSER_WAIT_MS)
    executable = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
    if not Path(executable).exists():
        pytest.fail(f"{executable} missing: `make test` installs it (scripts/ensure_debian_package.sh).")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A fresh browser context (own cookies and storage) and page per test."""
    context = browser.new_context(viewport={"width": 1000, "height": 760})
    context.set_default_timeout(BROWSER_WAIT_MS)
    page = context.new_page()
    yield page
    context.close()
