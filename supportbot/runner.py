"""Start the whole assistant in the foreground: Rasa, the action server and the chat page.

``python -m supportbot.runner`` (what ``make run`` calls) starts the three
processes with the settings of :mod:`supportbot.settings`, waits until each one
answers, and stops all of them on Ctrl-C, SIGTERM, or when any one of them
exits.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Dict, List, Optional

from supportbot.settings import PROJECT_ROOT, Settings, load_settings

logger = logging.getLogger("supportbot.runner")

READY_TIMEOUT_SECONDS = 120.0
STOP_GRACE_SECONDS = 10.0


@dataclass(frozen=True)
class ProcessSpec:
    """One process of the assistant: how to start it and how to tell it is up."""

    name: str
    argv: List[str]
    env: Dict[str, str]
    health_url: str


def process_specs(settings: Settings) -> List[ProcessSpec]:
    """The processes that make up the assistant, in start order."""
    python = sys.executable
    base_env = dict(os.environ)
    base_env["ACTION_ENDPOINT_URL"] = settings.action_endpoint_url
    base_env.setdefault("PYTHONPATH", str(PROJECT_ROOT))

    actions_env = dict(base_env, SANIC_HOST=settings.action_host)
    actions = ProcessSpec(
        name="actions",
        argv=[python, "-m", "rasa_sdk", "--actions", "actions",
              "--port", str(settings.action_port)],
        env=actions_env,
        health_url=f"http://{_local(settings.action_host)}:{settings.action_port}/health",
    )

    rasa_argv = [
        python, "-m", "rasa", "run",
        "--model", str(settings.model_path),
        "--interface", settings.rasa_interface,
        "--port", str(settings.rasa_port),
        "--credentials", str(PROJECT_ROOT / "credentials.yml"),
        "--endpoints", str(PROJECT_ROOT / "endpoints.yml"),
    ]
    if settings.enable_api:
        if not settings.api_token:
            raise SystemExit("RASA_ENABLE_API=1 needs RASA_API_TOKEN to be set.")
        rasa_argv += ["--enable-api", "--auth-token", settings.api_token]
    rasa = ProcessSpec(
        name="rasa",
        argv=rasa_argv,
        env=base_env,
        health_url=f"{settings.rasa_url}/",
    )

    web = ProcessSpec(
        name="chat page",
        argv=[python, "-m", "supportbot.chatpage"],
        env=base_env,
        health_url=f"http://{_local(settings.web_host)}:{settings.web_port}/healthz",
    )
    return [actions, rasa, web]


def _local(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "") else host


def is_up(url: str) -> bool:
    """True when ``url`` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def wait_until_up(urls: List[str], timeout: float = READY_TIMEOUT_SECONDS,
                  processes: Optional[List[subprocess.Popen]] = None) -> bool:
    """Poll ``urls`` until all answer; False on timeout or if a process died."""
    deadline = time.monotonic() + timeout
    pending = list(urls)
    while pending and time.monotonic() < deadline:
        if processes and any(p.poll() is not None for p in processes):
            return False
        pending = [url for url in pending if not is_up(url)]
        if pending:
            time.sleep(0.25)
    return not pending


def stop_all(processes: List[subprocess.Popen]) -> None:
    """Ask every process to stop, then kill what is still running."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for process in processes:
        remaining = max(0.1, deadline - time.monotonic())
        try:
            process.wait(timeout=remaining)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def prepare_account_store() -> bool:
    """Apply the account store's migrations and load the demo accounts if missing."""
    result = subprocess.run([sys.executable, "-m", "accounts", "demo"], cwd=PROJECT_ROOT,
                            capture_output=True, text=True)
    if result.returncode != 0:
        logger.error("The account store could not be prepared:\n%s", result.stderr[-2000:])
        return False
    logger.info("Account store ready (ACCOUNTS_DB_URL or var/accounts.db), demo accounts loaded.")
    return True


def main() -> int:
    """Run the assistant until interrupted; the exit code is non-zero on failure."""
    settings = load_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(name)s %(message)s")
    if not settings.model_path.exists():
        logger.error("No trained model at %s: run `make train` first.", settings.model_path)
        return 1

    if not prepare_account_store():
        return 1
    specs = process_specs(settings)
    processes: List[subprocess.Popen] = []
    stopping = False

    def request_stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        for spec in specs:
            logger.info("starting %s", spec.name)
            processes.append(subprocess.Popen(spec.argv, env=spec.env, cwd=PROJECT_ROOT))
        if wait_until_up([spec.health_url for spec in specs], processes=processes):
            logger.info(
                "Assistant ready. Chat page: http://%s:%s/  REST: %s/webhooks/rest/webhook",
                _local(settings.web_host), settings.web_port, settings.rasa_url,
            )
        elif not stopping:
            logger.error("The assistant did not come up; stopping.")
            return 1
        while not stopping:
            exited = [spec.name for spec, p in zip(specs, processes) if p.poll() is not None]
            if exited:
                logger.error("%s exited; stopping the others.", ", ".join(exited))
                return 1
            time.sleep(0.5)
        return 0
    finally:
        stop_all(processes)


if __name__ == "__main__":
    sys.exit(main())
