"""Start a scale-out deployment locally: N Rasa instances, M action servers, nginx in front.

``python -m supportbot.cluster`` (what ``make run-cluster`` calls) starts, in
the foreground until Ctrl-C:

* the account store on ``ACCOUNTS_DB_URL`` (migrated; demo accounts with ``DEMO_DATA=1``);
* ``--actions`` action servers (default 2), each as the runner starts one
  (``python -m supportbot.log_redaction rasa_sdk ...``: logs redacted);
* one scheduler of the periodic jobs (:mod:`supportbot.scheduler`: closures,
  expired codes, conversation retention; its leases make a second one harmless);
* ``--rasa`` Rasa instances (default 2) on our model, ``credentials.yml`` and
  ``endpoints.yml``, sharing the PostgreSQL tracker store (``TRACKER_DB_URL``)
  and the Redis lock store (``REDIS_URL``, :mod:`supportbot.lock_store`);
* nginx (Debian's ``/usr/sbin/nginx``, a child process with a config rendered
  from ``deploy/nginx.conf.template`` into the run directory): round robin for
  REST and webhooks, sticky by client address for ``/socket.io/``, and a
  private second port that spreads Rasa's action calls over the action servers.

Every Rasa instance calls the actions through nginx's action upstream rather
than one fixed action server: the action servers keep nothing between calls
that another one would miss (the secret vault, see ``docs/deployment.md``), so
round robin spreads the load and a dead action server is skipped.

Defaults (environment, or the command's options):

| variable | default | meaning |
|---|---|---|
| ``TRACKER_DB_URL`` | ``postgresql://postgres@127.0.0.1:5432/supportbot_tracker`` | shared tracker store (created if missing) |
| ``ACCOUNTS_DB_URL`` | ``postgresql://postgres@127.0.0.1:5432/supportbot_accounts`` | account store (created if missing) |
| ``REDIS_URL`` | ``redis://127.0.0.1:6379/0`` | lock store (and the channels' de-duplication) |
| ``CLUSTER_PORT`` | a free port | nginx front port |
| ``CLUSTER_RASA_INSTANCES`` / ``CLUSTER_ACTION_SERVERS`` | ``2`` / ``2`` | how many of each |
| ``TICKET_LOCK_LIFETIME`` | ``10`` | seconds a conversation lock lives (an instance killed holding it blocks that conversation this long at most) |

The other ports (each Rasa, each action server, nginx's action port) are free
ports picked at start. ``python -m supportbot.cluster nginx-config`` prints the
config for ``deploy/compose.yml`` (service names instead of local ports).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, IO, List, Mapping, Optional, Sequence

from supportbot.action_claims import ENV_KEY as ACTION_CLAIMS_KEY
from supportbot.action_claims import ensure_key as ensure_claims_key
from supportbot.runner import ensure_portal_secret, free_port, process_specs, wait_until_up
from supportbot.settings import PROJECT_ROOT, load_settings

logger = logging.getLogger("supportbot.cluster")

NGINX_BINARY = os.environ.get("NGINX_BINARY", "/usr/sbin/nginx")
NGINX_TEMPLATE = PROJECT_ROOT / "deploy" / "nginx.conf.template"
DEFAULT_TRACKER_DB_URL = "postgresql://postgres@127.0.0.1:5432/supportbot_tracker"
DEFAULT_ACCOUNTS_DB_URL = "postgresql://postgres@127.0.0.1:5432/supportbot_accounts"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_LOCK_LIFETIME = "10"
READY_TIMEOUT_SECONDS = 240.0
STOP_GRACE_SECONDS = 10.0


# ---------------------------------------------------------------------------- nginx config

def render_nginx_config(*, listen: str, action_listen: str, rasa_servers: Sequence[str],
                        action_servers: Sequence[str], run_dir: str, error_log: str,
                        access_log: str = "off", worker_processes: str = "1",
                        debug_headers: bool = False) -> str:
    """The nginx config of ``deploy/nginx.conf.template`` for these servers.

    Args:
        listen: Front address (``127.0.0.1:8000`` or ``8000``).
        action_listen: Private address of the action upstream.
        rasa_servers: ``host:port`` of every Rasa instance.
        action_servers: ``host:port`` of every action server.
        run_dir: Folder of the pid and temp files.
        error_log: Error log path (or ``stderr``).
        access_log: Access log path (lines without query strings), or ``off``.
        worker_processes: nginx worker processes (``auto`` in production).
        debug_headers: Add ``X-Upstream`` (the instance that answered) to the
            front's responses; for local runs and tests only.
    """
    def servers(addresses: Sequence[str]) -> str:
        return "\n".join(f"        server {a} max_fails=1 fail_timeout=5s;" for a in addresses)

    values = {
        "LISTEN": listen, "ACTION_LISTEN": action_listen,
        "RASA_SERVERS": servers(rasa_servers), "ACTION_SERVERS": servers(action_servers),
        "RUN_DIR": run_dir, "ERROR_LOG": error_log,
        "ACCESS_LOG": access_log if access_log == "off" else f"{access_log} without_query",
        "WORKER_PROCESSES": worker_processes,
        "DEBUG_HEADERS": "        add_header X-Upstream $upstream_addr always;" if debug_headers else "",
    }
    text = NGINX_TEMPLATE.read_text()
    for name, value in values.items():
        text = text.replace(f"@{name}@", value)
    return text


def check_nginx_config(config_path: Path, run_dir: Path) -> None:
    """Run ``nginx -t`` on a config; raise RuntimeError with nginx's words if it fails."""
    result = subprocess.run([NGINX_BINARY, "-t", "-p", str(run_dir), "-e", "stderr",
                             "-c", str(config_path)], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"nginx -t failed:\n{result.stderr}")


# ---------------------------------------------------------------------------- stores

def ensure_postgres_database(url: str) -> None:
    """Create the PostgreSQL database of ``url`` if it does not exist (other URLs: nothing)."""
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql" or not parsed.database:
        return
    admin = sa.create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT",
                             future=True)
    try:
        with admin.connect() as conn:
            exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :name"),
                                  {"name": parsed.database}).first()
            if not exists:
                quoted = parsed.database.replace('"', '""')
                conn.exec_driver_sql(f'CREATE DATABASE "{quoted}"')
    finally:
        admin.dispose()


def drop_postgres_database(url: str) -> None:
    """Drop the PostgreSQL database of ``url`` (closing its connections); for tests."""
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    admin = sa.create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT",
                             future=True)
    try:
        with admin.connect() as conn:
            quoted = parsed.database.replace('"', '""')
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{quoted}" WITH (FORCE)')
    finally:
        admin.dispose()


def check_redis(url: str) -> None:
    """Fail with a clear message when Redis at ``url`` does not answer."""
    import redis

    try:
        redis.StrictRedis.from_url(url, socket_timeout=5).ping()
    except redis.RedisError as error:
        raise RuntimeError(f"Redis at {url} does not answer ({error}); the cluster needs it "
                           "for the conversation locks.") from error


def prepare_account_store(env: Mapping[str, str]) -> None:
    """Migrate the account store of ``env["ACCOUNTS_DB_URL"]``; demo accounts only with ``DEMO_DATA=1``."""
    result = subprocess.run([sys.executable, "-m", "accounts", "prepare"], cwd=PROJECT_ROOT,
                            env=dict(env), capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"the account store could not be prepared:\n{result.stderr[-2000:]}")


# ---------------------------------------------------------------------------- the cluster

@dataclass
class Cluster:
    """A running scale-out deployment (see :func:`start_cluster`)."""

    url: str
    rasa_urls: List[str]
    action_urls: List[str]
    action_endpoint_url: str
    run_dir: Path
    env: Dict[str, str] = field(repr=False)
    processes: Dict[str, subprocess.Popen] = field(default_factory=dict)
    _logs: List[IO[bytes]] = field(default_factory=list, repr=False)
    _temp_dir: Optional[tempfile.TemporaryDirectory] = field(default=None, repr=False)

    def kill_rasa(self, index: int) -> None:
        """Kill Rasa instance ``index`` with SIGKILL (no clean shutdown) and reap it."""
        process = self.processes[f"rasa-{index}"]
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def log(self, name: str) -> str:
        """What process ``name`` (``rasa-0``, ``actions-1``, ``nginx``) has written so far."""
        return (self.run_dir / f"{name}.log").read_text(errors="replace")

    def exited(self) -> List[str]:
        """Names of the processes that are not running any more."""
        return [name for name, p in self.processes.items() if p.poll() is not None]

    def stop(self) -> None:
        """Stop nginx first, then Rasa, then the action servers; kill what does not stop."""
        order = ["nginx"] + [n for n in self.processes if n.startswith("rasa-")] + \
                [n for n in self.processes if n.startswith("actions-")] + ["scheduler"]
        for name in order:
            process = self.processes.get(name)
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGQUIT if name == "nginx" else signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for name in order:
            process = self.processes.get(name)
            if process is None:
                continue
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for log in self._logs:
            log.close()
        self._logs.clear()
        if self._temp_dir is not None:
            self._temp_dir.cleanup()
            self._temp_dir = None

    def __enter__(self) -> "Cluster":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_cluster(rasa_instances: int = 2, action_servers: int = 2, *,
                  tracker_db_url: Optional[str] = None, accounts_db_url: Optional[str] = None,
                  redis_url: Optional[str] = None, env: Optional[Mapping[str, str]] = None,
                  run_dir: Optional[Path] = None, port: Optional[int] = None,
                  ready_timeout: float = READY_TIMEOUT_SECONDS) -> Cluster:
    """Start a scale-out deployment on this machine and wait until it answers.

    Args:
        rasa_instances: Number of Rasa servers.
        action_servers: Number of action servers.
        tracker_db_url: Shared tracker store (default ``TRACKER_DB_URL``, else the
            local ``supportbot_tracker`` PostgreSQL database); created if missing.
        accounts_db_url: Account store (default ``ACCOUNTS_DB_URL``, else
            ``supportbot_accounts``); created, migrated, demo accounts loaded
            with ``DEMO_DATA=1``.
        redis_url: Redis of the lock store (default ``REDIS_URL``, else db 0 on
            127.0.0.1); must answer.
        env: Extra environment of every process (over ``os.environ``), e.g.
            ``PORTAL_TOKEN_SECRET``, ``MAIL_DIR``, ``SANIC_WORKERS``.
        run_dir: Folder for nginx's config, pid, temp files and every process's
            log (default: a temporary folder removed by :meth:`Cluster.stop`).
        port: nginx front port (default ``CLUSTER_PORT``, else a free port).
        ready_timeout: Seconds to wait for every process to answer.

    Returns:
        The running :class:`Cluster`; stop it with :meth:`Cluster.stop` or ``with``.
    """
    if rasa_instances < 1 or action_servers < 1:
        raise ValueError("a cluster needs at least one Rasa instance and one action server")
    base = dict(os.environ)
    base.update(env or {})
    tracker_db_url = tracker_db_url or base.get("TRACKER_DB_URL") or DEFAULT_TRACKER_DB_URL
    accounts_db_url = accounts_db_url or base.get("ACCOUNTS_DB_URL") or DEFAULT_ACCOUNTS_DB_URL
    redis_url = redis_url or base.get("REDIS_URL") or DEFAULT_REDIS_URL
    if "PORTAL_TOKEN_SECRET" not in base:
        ensure_portal_secret()
        base["PORTAL_TOKEN_SECRET"] = os.environ["PORTAL_TOKEN_SECRET"]
    if ACTION_CLAIMS_KEY not in base:
        ensure_claims_key()
        base[ACTION_CLAIMS_KEY] = os.environ[ACTION_CLAIMS_KEY]
    base.update(TRACKER_DB_URL=tracker_db_url, ACCOUNTS_DB_URL=accounts_db_url,
                REDIS_URL=redis_url, PYTHONPATH=str(PROJECT_ROOT),
                RASA_TELEMETRY_ENABLED="false", SQLALCHEMY_SILENCE_UBER_WARNING="1")
    base.setdefault("TICKET_LOCK_LIFETIME", DEFAULT_LOCK_LIFETIME)

    check_redis(redis_url)
    ensure_postgres_database(tracker_db_url)
    ensure_postgres_database(accounts_db_url)
    prepare_account_store(base)

    temp_dir = None
    if run_dir is None:
        temp_dir = tempfile.TemporaryDirectory(prefix="supportbot-cluster-")
        run_dir = Path(temp_dir.name)
    run_dir = Path(run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)

    front_port = port or int(base.get("CLUSTER_PORT") or 0) or free_port()
    action_lb_port = free_port()
    rasa_ports = [free_port() for _ in range(rasa_instances)]
    action_ports = [free_port() for _ in range(action_servers)]
    action_endpoint_url = f"http://127.0.0.1:{action_lb_port}/webhook"
    cluster = Cluster(
        url=f"http://127.0.0.1:{front_port}",
        rasa_urls=[f"http://127.0.0.1:{p}" for p in rasa_ports],
        action_urls=[f"http://127.0.0.1:{p}" for p in action_ports],
        action_endpoint_url=action_endpoint_url, run_dir=run_dir, env=base, _temp_dir=temp_dir,
    )

    config_path = run_dir / "nginx.conf"
    config_path.write_text(render_nginx_config(
        listen=f"127.0.0.1:{front_port}", action_listen=f"127.0.0.1:{action_lb_port}",
        rasa_servers=[f"127.0.0.1:{p}" for p in rasa_ports],
        action_servers=[f"127.0.0.1:{p}" for p in action_ports],
        run_dir=str(run_dir), error_log=str(run_dir / "nginx.log"), debug_headers=True))
    try:
        check_nginx_config(config_path, run_dir)
        for index, action_port in enumerate(action_ports):
            _start(cluster, f"actions-{index}", _spec_argv("actions", base, ACTION_PORT=action_port),
                   dict(base, SANIC_HOST="127.0.0.1"))
        _start(cluster, "scheduler", _spec_argv("scheduler", base), base)
        for index, rasa_port in enumerate(rasa_ports):
            _start(cluster, f"rasa-{index}",
                   _spec_argv("rasa", base, RASA_PORT=rasa_port, RASA_HOST="127.0.0.1",
                              ACTION_ENDPOINT_URL=action_endpoint_url),
                   # behind nginx: the client's address from X-Forwarded-For (channels/rest.py)
                   dict(base, ACTION_ENDPOINT_URL=action_endpoint_url, SANIC_PROXIES_COUNT="1"))
        health = [f"{u}/health" for u in cluster.action_urls] + [f"{u}/" for u in cluster.rasa_urls]
        up = wait_until_up(health, timeout=ready_timeout, processes=list(cluster.processes.values()))
        if up:  # nginx last: a server refusing connections would be marked down for a while
            _start(cluster, "nginx", [NGINX_BINARY, "-p", str(run_dir), "-e", str(run_dir / "nginx.log"),
                                      "-c", str(config_path)], base)
            up = wait_until_up([f"{cluster.url}/"], timeout=30,
                               processes=list(cluster.processes.values()))
        if not up:
            details = "\n".join(f"--- {name} ---\n{cluster.log(name)[-1500:]}"
                                for name in cluster.processes)
            raise RuntimeError(f"the cluster did not come up (exited: {cluster.exited()}):\n{details}")
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _spec_argv(name: str, environ: Mapping[str, str], **overrides: object) -> List[str]:
    """The command line the runner uses for its process ``name``, with other ports."""
    settings = load_settings(dict(environ, **{k: str(v) for k, v in overrides.items()}))
    spec = next(s for s in process_specs(settings) if s.name == name)
    return list(spec.argv)


def _start(cluster: Cluster, name: str, argv: List[str], env: Mapping[str, str]) -> None:
    log = open(cluster.run_dir / f"{name}.log", "wb")
    cluster._logs.append(log)
    logger.info("starting %s", name)
    # own process group: Ctrl-C reaches only the cluster command, which stops
    # the children in order; kill_rasa kills a whole instance (Sanic workers too)
    cluster.processes[name] = subprocess.Popen(argv, env=dict(env), cwd=PROJECT_ROOT, stdout=log,
                                               stderr=subprocess.STDOUT, start_new_session=True)


# ---------------------------------------------------------------------------- command line

def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m supportbot.cluster", description=__doc__.split("\n")[0])
    parser.add_argument("--rasa", type=int, default=int(os.environ.get("CLUSTER_RASA_INSTANCES", "2")),
                        help="number of Rasa instances (CLUSTER_RASA_INSTANCES, default 2)")
    parser.add_argument("--actions", type=int, default=int(os.environ.get("CLUSTER_ACTION_SERVERS", "2")),
                        help="number of action servers (CLUSTER_ACTION_SERVERS, default 2)")
    parser.add_argument("--port", type=int, default=None,
                        help="nginx front port (CLUSTER_PORT, default a free port)")
    parser.add_argument("--run-dir", type=Path, default=None,
                        help="folder of nginx's files and the logs (default var/cluster)")
    sub = parser.add_subparsers(dest="command")
    config = sub.add_parser("nginx-config", help="print the nginx config for deploy/compose.yml")
    config.add_argument("--rasa-hosts", default="rasa-1:5005,rasa-2:5005")
    config.add_argument("--action-hosts", default="actions-1:5055,actions-2:5055")
    return parser


def _compose_nginx_config(rasa_hosts: str, action_hosts: str) -> str:
    return render_nginx_config(
        listen="8000", action_listen="5055", rasa_servers=rasa_hosts.split(","),
        action_servers=action_hosts.split(","), run_dir="/tmp", error_log="stderr",
        access_log="/dev/stdout", worker_processes="auto")


def main(argv: Optional[List[str]] = None) -> int:
    """Run the cluster until Ctrl-C or SIGTERM (or print the compose nginx config)."""
    args = _parser().parse_args(argv)
    if args.command == "nginx-config":
        sys.stdout.write(_compose_nginx_config(args.rasa_hosts, args.action_hosts))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    model = load_settings().model_path
    if not model.exists():
        logger.error("No trained model at %s: run `make train` first.", model)
        return 1
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    run_dir = args.run_dir or PROJECT_ROOT / "var" / "cluster"
    try:
        cluster = start_cluster(args.rasa, args.actions, run_dir=run_dir, port=args.port)
    except (RuntimeError, ValueError) as error:
        logger.error("%s", error)
        return 1
    with cluster:
        logger.info("Cluster ready: %s/webhooks/rest/webhook (Socket.IO %s/socket.io/), "
                    "Rasa %s, actions %s, logs in %s. Ctrl-C stops it.", cluster.url, cluster.url,
                    ", ".join(cluster.rasa_urls), ", ".join(cluster.action_urls), run_dir)
        while not stop.wait(0.5):
            if cluster.exited():
                logger.error("%s exited; stopping the others (logs in %s).",
                             ", ".join(cluster.exited()), run_dir)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
