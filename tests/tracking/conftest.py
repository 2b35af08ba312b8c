"""Fixtures of the tracker database tests: a fresh SQLite file or PostgreSQL database per test.

PostgreSQL databases get a unique name through ``TRACKING_TEST_PG_ADMIN_URL``
(default ``postgresql+psycopg2://postgres@127.0.0.1:5432/postgres``) and are
dropped afterwards; set ``TRACKING_SKIP_PG=1`` to skip those variants.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest
from sqlalchemy.engine import make_url

from supportbot.cluster import drop_postgres_database, ensure_postgres_database

PG_ADMIN_DEFAULT = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(params=["sqlite", "postgresql"])
def tracker_url(request: Any, tmp_path: Path) -> Iterator[str]:
    """URL of an empty tracker database (SQLite file, or a new PostgreSQL database)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'tracker.db'}"
        return
    if os.environ.get("TRACKING_SKIP_PG") == "1":
        pytest.skip("TRACKING_SKIP_PG=1")
    admin = os.environ.get("TRACKING_TEST_PG_ADMIN_URL") or PG_ADMIN_DEFAULT
    url = make_url(admin).set(database=f"tracking_test_{os.getpid()}_{uuid.uuid4().hex[:8]}")
    text = url.render_as_string(hide_password=False)
    ensure_postgres_database(text)
    try:
        yield text
    finally:
        drop_postgres_database(text)
