"""Start the whole assistant in the foreground: Rasa, the action server, the chat page, the review console, the mail dispatcher, the helpdesk delivery and the scheduler.

``python -m supportbot.runner`` (what ``make run`` calls) migrates the account
store and the tracker database, then starts the seven
processes with the settings of :mod:`supportbot.settings`, waits until each one
with an HTTP interface answers, and stops all of them on Ctrl-C, SIGTERM, or when any one of them
exits.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Dict, List, Optional

from accounts.settings import Settings as AccountSettings
from console.settings import load_console_settings
from supportbot.action_claims import ENV_KEY as ACTION_CLAIMS_KEY
from supportbot.action_claims import ensure_key as ensure_claims_key
from supportbot.portal_token import DEV_PORTAL_SECRET_FILE, development_secret
from supportbot.settings import PROJECT_ROOT, Settings, load_settings

logger = logging.getLogger("supportbot.runner")

PORTAL_TOKEN_SECRET = "PORTAL_TOKEN_SECRET"

READY_TIMEOUT_SECONDS = 120.0
STOP_GRACE_SECONDS = 10.0


@dataclass(frozen=True)
class ProcessSpec:
    """One process of the assistant: how to start it and how to tell it is up.

    A process without an HTTP interface (the mail dispatcher) has no
    ``health_url``; it counts as up while it runs.
    """

    name: str
    argv: List[str]
    env: Dict[str, str]
    health_url: Optional[str] = None


def process_specs(settings: Settings) -> List[ProcessSpec]:
    """The processes that make up the assistant, in start order."""
    python = sys.executable
    base_env = dict(os.environ)
    base_env["ACTION_ENDPOINT_URL"] = settings.action_endpoint_url
    base_env.setdefault("PYTHONPATH", str(PROJECT_ROOT))
    # E-mailed TFA enrolment / "not me" links open the chat page server's /tfa/ pages unless set.
    base_env.setdefault("ACCOUNTS_ENROLLMENT_BASE_URL", f"http://{_local(settings.web_host)}:{settings.web_port}")

    # Each secret only where it is used: the portal secret verifies tokens in the
    # channels (Rasa) and the widget page; the claims key signs (Rasa) and checks
    # (actions) identity claims. The console and the workers need neither.
    actions_env = without(dict(base_env, SANIC_HOST=settings.action_host), PORTAL_TOKEN_SECRET)
    web_env = without(base_env, ACTION_CLAIMS_KEY)
    worker_env = without(base_env, PORTAL_TOKEN_SECRET, ACTION_CLAIMS_KEY)
    actions = ProcessSpec(
        name="actions",
        argv=[python, "-m", "supportbot.log_redaction", "rasa_sdk", "--actions", "actions",
              "--port", str(settings.action_port)],
        env=actions_env,
        health_url=f"http://{_local(settings.action_host)}:{settings.action_port}/health",
    )

    rasa_argv = [
        python, "-m", "supportbot.log_redaction", "rasa", "run",
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
        env=web_env,
        health_url=f"http://{_local(settings.web_host)}:{settings.web_port}/healthz",
    )

    console_settings = load_console_settings(worker_env)
    console = ProcessSpec(
        name="review console",
        argv=[python, "-m", "console", "serve"],
        env=worker_env,
        health_url=f"{console_settings.local_url}/healthz",
    )

    # E-mails the account store's outbox (MAIL_BACKEND, SMTP_*; see accounts/README.md "Mail").
    mail = ProcessSpec(
        name="mail dispatcher",
        argv=[python, "-m", "supportbot.log_redaction", "accounts", "dispatch", "--loop"],
        env=worker_env,
    )
    # Delivers stored support requests to the helpdesk (HELPDESK_*; accounts/README.md "Helpdesk delivery").
    helpdesk = ProcessSpec(
        name="helpdesk delivery",
        argv=[python, "-m", "supportbot.log_redaction", "accounts", "helpdesk", "--loop"],
        env=worker_env,
    )
    # Periodic jobs: closures, expired codes, conversation retention (supportbot/scheduler.py).
    scheduler = ProcessSpec(
        name="scheduler",
        argv=[python, "-m", "supportbot.log_redaction", "supportbot.scheduler", "--loop"],
        env=worker_env,
    )
    return [actions, rasa, web, console, mail, helpdesk, scheduler]


def without(env: Dict[str, str], *names: str) -> Dict[str, str]:
    """A copy of ``env`` without the variables ``names`` (secrets a process does not need)."""
    return {key: value for key, value in env.items() if key not in names}


def _local(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "") else host


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
    """Apply the account store's migrations; load missing demo accounts (default SQLite file or ``DEMO_DATA=1``)."""
    result = subprocess.run([sys.executable, "-m", "accounts", "prepare"], cwd=PROJECT_ROOT,
                            capture_output=True, text=True)
    if result.returncode != 0:
        logger.error("The account store could not be prepared:\n%s", result.stderr[-2000:])
        return False
    logger.info("Account store ready (ACCOUNTS_DB_URL or var/accounts.db): %s",
                result.stdout.strip().splitlines()[0] if result.stdout.strip() else "migrated")
    return True


def prepare_tracker_store() -> bool:
    """Apply the tracker database's migrations (events, review index, console tables)."""
    result = subprocess.run([sys.executable, "-m", "tracking", "migrate"], cwd=PROJECT_ROOT,
                            capture_output=True, text=True)
    if result.returncode != 0:
        logger.error("The tracker database could not be migrated:\n%s", result.stderr[-2000:])
        return False
    logger.info("Tracker database migrated (TRACKER_DB_URL or var/tracker.db).")
    return True


def ensure_portal_secret() -> None:
    """Give a local run a portal token secret when none is configured.

    Production sets ``PORTAL_TOKEN_SECRET``. For ``make run`` on a developer's
    machine a random secret is created once in the git-ignored ``var/`` folder
    (readable only by its owner) and passed to the processes, so tokens for the
    demo accounts can be signed with ``python -m supportbot.portal_token``.
    """
    if os.environ.get("PORTAL_TOKEN_SECRET"):
        return
    os.environ["PORTAL_TOKEN_SECRET"] = development_secret(create=True) or ""
    logger.warning("PORTAL_TOKEN_SECRET not set: using the development secret in %s",
                   DEV_PORTAL_SECRET_FILE)


def main() -> int:
    """Run the assistant until interrupted; the exit code is non-zero on failure."""
    settings = load_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(name)s %(message)s")
    if not settings.model_path.exists():
        logger.error("No trained model at %s: run `make train` first.", settings.model_path)
        return 1

    try:
        AccountSettings.from_env()  # refuses real mail without the portal's URL, before anything starts
    except ValueError as error:
        logger.error("%s", error)
        return 1
    if not prepare_account_store() or not prepare_tracker_store():
        return 1
    ensure_portal_secret()
    ensure_claims_key()
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
        if wait_until_up([spec.health_url for spec in specs if spec.health_url], processes=processes):
            logger.info(
                "Assistant ready. Chat page: http://%s:%s/  REST: %s/webhooks/rest/webhook  "
                "Review console: %s/",
                _local(settings.web_host), settings.web_port, settings.rasa_url,
                load_console_settings().local_url,
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
