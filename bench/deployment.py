"""One deployment of the assistant for measuring, started as ``make run`` starts it.

The Rasa server and the action server are started with the same command lines
and environment as :mod:`supportbot.runner` builds (``process_specs``): our SQL
tracker store from ``endpoints.yml``, the action server behind the redacting
log wrapper. Each deployment gets its own throw-away account store (prepared
with ``python -m accounts demo``), tracker database and portal token secret in
a temporary folder, and free ports. The chat page, console and delivery
workers are not started: no measured turn needs them.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from bench.serving import resident_mb
from channels.rate_limit import RATE_LIMITS_OFF
from supportbot.portal_token import PortalTokenVerifier
from supportbot.runner import free_port, is_up, process_specs, stop_all
from supportbot.settings import PROJECT_ROOT, load_settings

READY_TIMEOUT_SECONDS = 300.0
#: Variables that would change the deployment away from ``make run``'s defaults (a
#: Redis lock store, several Sanic workers); removed from the processes' environment.
DEPLOYMENT_OVERRIDES = ("REDIS_URL", "SANIC_WORKERS", "RASA_ENABLE_API")
#: Lifetime of the benchmark customers' portal tokens (the longest the verifier accepts).
TOKEN_LIFETIME = dt.timedelta(hours=12)


@dataclass
class Deployment:
    """A running Rasa server and action server on throw-away stores."""

    url: str
    action_url: str
    processes: Dict[str, subprocess.Popen]
    ready_seconds: float
    workdir: Path
    accounts_db_url: str
    portal_secret: str

    def verified_customers(self, count: int) -> List[str]:
        """Create ``count`` fresh customers in the account store; one portal token each.

        Each is the owner of a personal account in EUR with no payments (a
        currency change can start) and one active colleague (there is a user to
        list). Conversations of verified customers are keyed by the customer,
        so concurrent conversations need a customer each.
        """
        return create_customers(self.accounts_db_url, self.portal_secret, count)

    def pids(self) -> Dict[str, int]:
        """Process id of each process by name ("rasa", "actions")."""
        return {name: process.pid for name, process in self.processes.items()}

    def resident_mb(self) -> Dict[str, float]:
        """Resident memory of each process in MB now ("rasa", "actions") and its peak ("rasa_peak", ...)."""
        now = {name: resident_mb(pid) for name, pid in self.pids().items()}
        peak = {f"{name}_peak": resident_mb(pid, "VmHWM") for name, pid in self.pids().items()}
        return {**now, **peak}

    def stop(self) -> None:
        """Stop both processes and delete the throw-away stores."""
        stop_all(list(self.processes.values()))
        shutil.rmtree(self.workdir, ignore_errors=True)


def _answers_message(url: str) -> bool:
    request = urllib.request.Request(
        f"{url}/webhooks/rest/webhook", method="POST",
        data=b'{"sender": "bench-readiness", "message": "hello"}',
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def create_customers(accounts_db_url: str, portal_secret: str, count: int) -> List[str]:
    """Add ``count`` customers (see :meth:`Deployment.verified_customers`); their portal tokens."""
    from decimal import Decimal

    from accounts.db import make_session_factory, write_session
    from accounts.models import Account, Member

    now = dt.datetime.now(dt.timezone.utc)
    factory = make_session_factory(accounts_db_url)
    owners = []
    with write_session(factory) as session:
        for _ in range(count):
            tag = uuid.uuid4().hex[:12]
            owner = f"bench-{tag}@bench.example"
            account = Account(kind="personal", currency="EUR", status="active", primary_email=owner,
                              payment_method="card", balance=Decimal("0.00"), created_at=now)
            account.members = [
                Member(email=owner, role="owner", status="active", joined_at=now, created_at=now),
                Member(email=f"colleague-{tag}@bench.example", role="member", status="active",
                       joined_at=now, created_at=now),
            ]
            session.add(account)
            owners.append((account, owner))
        session.flush()
        ids = [(str(account.id), owner) for account, owner in owners]
    verifier = PortalTokenVerifier(portal_secret)
    return [verifier.issue(account_id, owner, TOKEN_LIFETIME) for account_id, owner in ids]


def start_deployment(model: Path, log_dir: Optional[Path] = None,
                     timeout: float = READY_TIMEOUT_SECONDS) -> Deployment:
    """Start Rasa on ``model`` and the action server as ``make run`` does; wait until both answer.

    ``ready_seconds`` runs from starting the processes until Rasa answers a
    REST message and the action server its health check (the stores are
    prepared before the clock starts).
    """
    workdir = Path(tempfile.mkdtemp(prefix="bench-deploy-"))
    accounts_url = f"sqlite:///{workdir / 'accounts.db'}"
    rasa_port, action_port = free_port(), free_port()
    env = dict(
        os.environ, PYTHONPATH=str(PROJECT_ROOT), RASA_TELEMETRY_ENABLED="false",
        SQLALCHEMY_SILENCE_UBER_WARNING="1", RASA_MODEL=str(model),
        RASA_PORT=str(rasa_port), ACTION_PORT=str(action_port),
        ACTION_ENDPOINT_URL=f"http://127.0.0.1:{action_port}/webhook",
        TRACKER_DB_URL=f"sqlite:///{workdir / 'tracker.db'}", ACCOUNTS_DB_URL=accounts_url,
        PORTAL_TOKEN_SECRET=secrets.token_urlsafe(48), ACTION_CLAIMS_KEY=secrets.token_urlsafe(48),
        MAIL_BACKEND="file",
        MAIL_DIR=str(workdir / "mail"), LOG_LEVEL=os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
        **RATE_LIMITS_OFF,  # one address plays every customer
    )
    env = {k: v for k, v in env.items() if k not in DEPLOYMENT_OVERRIDES}  # make run's defaults
    subprocess.run([sys.executable, "-m", "accounts", "demo"], cwd=PROJECT_ROOT, env=env,
                   check=True, capture_output=True)

    settings = load_settings(env)
    specs = {spec.name: spec for spec in process_specs(settings) if spec.name in ("actions", "rasa")}
    processes: Dict[str, subprocess.Popen] = {}
    logs: List = []
    started = time.monotonic()
    try:
        for name, spec in specs.items():
            spec_env = {k: v for k, v in {**spec.env, **env}.items() if k not in DEPLOYMENT_OVERRIDES}
            log = open(log_dir / f"{name}-{rasa_port}.log", "wb") if log_dir else subprocess.DEVNULL
            logs.append(log)
            processes[name] = subprocess.Popen(spec.argv, env=spec_env, cwd=PROJECT_ROOT,
                                               stdout=log, stderr=subprocess.STDOUT)
        url = settings.rasa_url
        action_health = f"http://127.0.0.1:{action_port}/health"
        rasa_ready = actions_ready = False
        while not (rasa_ready and actions_ready):
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"the deployment did not answer within {timeout:.0f} s")
            dead = [name for name, p in processes.items() if p.poll() is not None]
            if dead:
                raise RuntimeError(f"{', '.join(dead)} exited during start-up (logs: {log_dir})")
            actions_ready = actions_ready or is_up(action_health)
            rasa_ready = rasa_ready or _answers_message(url)
            if not (rasa_ready and actions_ready):
                time.sleep(0.1)
        ready = time.monotonic() - started
    except BaseException:
        stop_all(list(processes.values()))
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    finally:
        for log in logs:
            if log is not subprocess.DEVNULL:
                log.close()
    return Deployment(url=url, action_url=f"http://127.0.0.1:{action_port}", processes=processes,
                      ready_seconds=ready, workdir=workdir, accounts_db_url=accounts_url,
                      portal_secret=env["PORTAL_TOKEN_SECRET"])
