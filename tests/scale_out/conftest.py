"""A scale-out deployment for the tests: two Rasa instances, two action servers, nginx.

Each test session gets its own PostgreSQL databases (tracker and accounts,
``cluster_test_*``, created through ``CLUSTER_TEST_PG_ADMIN_URL``, default
``postgresql://postgres@127.0.0.1:5432/postgres``, dropped afterwards) and its
own Redis database (``CLUSTER_TEST_REDIS_URL``, default db 5 on 127.0.0.1,
emptied first). PostgreSQL, Redis or nginx missing is a failure, not a skip.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from typing import Iterator, List

import pytest
import redis
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from channels.rate_limit import RATE_LIMITS_OFF
from supportbot.cluster import (
    NGINX_BINARY, Cluster, drop_postgres_database, ensure_postgres_database, start_cluster,
)
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


@pytest.fixture(scope="package")
def cluster(model_path: Path, tmp_path_factory) -> Iterator[Cluster]:
    """Two Rasa instances and two action servers behind nginx, on PostgreSQL and Redis.

    Shared by this folder's tests and stopped after them. The test that kills
    an instance (test_survives_killed_instance.py) runs last, by file name.
    """
    if not os.access(NGINX_BINARY, os.X_OK):
        pytest.fail(f"{NGINX_BINARY} is missing: `make test` installs it (scripts/ensure_debian_package.sh).")
    try:
        redis.StrictRedis.from_url(REDIS_TEST_URL, socket_timeout=5).flushdb()
    except redis.RedisError as error:
        pytest.fail(f"Redis is not reachable at {REDIS_TEST_URL} ({error})", pytrace=False)
    run_dir = tmp_path_factory.mktemp("cluster")
    with postgres_database("cluster_test_tracker") as tracker_url, \
            postgres_database("cluster_test_accounts") as accounts_url:
        env = {"PORTAL_TOKEN_SECRET": TEST_PORTAL_SECRET, "MAIL_BACKEND": "file",
               "MAIL_DIR": str(run_dir / "mail"), "RASA_MODEL": str(model_path), **RATE_LIMITS_OFF}
        with start_cluster(2, 2, tracker_db_url=tracker_url, accounts_db_url=accounts_url,
                           redis_url=REDIS_TEST_URL, env=env, run_dir=run_dir) as running:
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
