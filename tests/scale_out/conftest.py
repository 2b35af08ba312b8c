"""A scale-out deployment for the tests: two Rasa instances, two action servers, nginx.

Each test session gets its own PostgreSQL databases (tracker and accounts,
``cluster_test_*``, created through ``CLUSTER_TEST_PG_ADMIN_URL``, default
``postgresql://postgres@127.0.0.1:5432/postgres``, dropped afterwards) and its
Redis database (``CLUSTER_TEST_REDIS_URL``, default db 5 on 127.0.0.1), which
is never emptied: every key the tests make names a fresh conversation or event
id, so runs cannot see each other's keys. PostgreSQL, Redis or nginx missing is
a failure, not a skip.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import pytest
import redis
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from channels.rate_limit import RATE_LIMITS_OFF
from supportbot.cluster import (
    NGINX_BINARY, Cluster, drop_postgres_database, ensure_postgres_database, start_cluster,
)
from tests.channels.conftest import SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET
from tests.channels.fakes import FakeSlackApi
from tests.conftest import TEST_PORTAL_SECRET

PG_ADMIN_URL = os.environ.get("CLUSTER_TEST_PG_ADMIN_URL",
                              "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_TEST_URL = os.environ.get("CLUSTER_TEST_REDIS_URL", "redis://127.0.0.1:6379/5")


@contextlib.contextmanager
def postgres_database(prefix: str) -> Iterator[str]:
    """A fresh PostgreSQL database on the server of ``CLUSTER_TEST_PG_ADMIN_URL``; dropped afterwards."""
    url = make_url(PG_ADMIN_URL).set(database=f"{prefix}_{uuid.uuid4().hex[:10]}")
    url = url.render_as_string(hide_password=False)
    try:
        ensure_postgres_database(url)
    except sa.exc.OperationalError as error:
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL} ({error.orig})", pytrace=False)
    try:
        yield url
    finally:
        drop_postgres_database(url)


@contextlib.contextmanager
def running_cluster(model_path: Path, run_dir: Path, extra_env: Optional[Dict[str, str]] = None,
                    ) -> Iterator[Cluster]:
    """Two Rasa instances and two action servers behind nginx, on fresh databases; stopped afterwards."""
    if not os.access(NGINX_BINARY, os.X_OK):
        pytest.fail(f"{NGINX_BINARY} is missing: `make test` installs it (scripts/ensure_debian_package.sh).")
    try:
        redis.StrictRedis.from_url(REDIS_TEST_URL, socket_timeout=5).ping()
    except redis.RedisError as error:
        pytest.fail(f"Redis is not reachable at {REDIS_TEST_URL} ({error})", pytrace=False)
    with postgres_database("cluster_test_tracker") as tracker_url, \
            postgres_database("cluster_test_accounts") as accounts_url:
        env = {"PORTAL_TOKEN_SECRET": TEST_PORTAL_SECRET, "MAIL_BACKEND": "file", "DEMO_DATA": "1",
               "MAIL_DIR": str(run_dir / "mail"), "RASA_MODEL": str(model_path), **RATE_LIMITS_OFF,
               **(extra_env or {})}
        with start_cluster(2, 2, tracker_db_url=tracker_url, accounts_db_url=accounts_url,
                           redis_url=REDIS_TEST_URL, env=env, run_dir=run_dir) as running:
            yield running


@pytest.fixture(scope="package")
def cluster(model_path: Path, tmp_path_factory) -> Iterator[Cluster]:
    """A cluster the tests of this folder share; none of them may stop or kill any of its processes."""
    with running_cluster(model_path, tmp_path_factory.mktemp("cluster")) as running:
        yield running


@pytest.fixture
def fake_slack_api() -> Iterator[FakeSlackApi]:
    """A fake Slack Web API recording what the cluster posts."""
    server = FakeSlackApi().start()
    yield server
    server.stop()


@pytest.fixture
def cluster_to_break(model_path: Path, tmp_path_factory, fake_slack_api: FakeSlackApi) -> Iterator[Cluster]:
    """A cluster of the test's own, for a test that kills part of it (it runs in any order).

    Its Slack channel is on, talking to ``fake_slack_api``.
    """
    slack = {"SLACK_BOT_TOKEN": SLACK_BOT_TOKEN, "SLACK_SIGNING_SECRET": SLACK_SIGNING_SECRET,
             "SLACK_API_BASE_URL": fake_slack_api.api_base_url}
    with running_cluster(model_path, tmp_path_factory.mktemp("cluster-to-break"), slack) as running:
        yield running


def stored_events(cluster: Cluster, sender_id: str) -> List[dict]:
    """The conversation's rows of the shared tracker store, in storage order."""
    engine = sa.create_engine(cluster.env["TRACKER_DB_URL"], future=True)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT id, type_name, timestamp, data FROM events WHERE sender_id = :s ORDER BY id"),
                {"s": sender_id}).all()
    finally:
        engine.dispose()
    return [dict(row._mapping) for row in rows]
