"""deploy/postgres-roles.sql on a real PostgreSQL: each service reaches only its databases, with only its rights."""

from __future__ import annotations

import os
import subprocess
import uuid
from typing import Iterator, Tuple

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from supportbot.settings import PROJECT_ROOT
from tests.accounts.conftest import PG_ADMIN_DEFAULT

SERVICES = ("rasa", "console", "actions", "chatpage", "mail", "helpdesk", "scheduler")


def admin_url():
    return make_url(os.environ.get("ACCOUNTS_TEST_PG_ADMIN_URL") or PG_ADMIN_DEFAULT)


def as_role(role: str, database: str) -> sa.engine.Engine:
    return sa.create_engine(admin_url().set(username=role, password=None, database=database), future=True)


def run_as(role: str, database: str, sql: str) -> None:
    engine = as_role(role, database)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(sql)
    finally:
        engine.dispose()


def refused(role: str, database: str, sql: str) -> bool:
    try:
        run_as(role, database, sql)
    except sa.exc.DBAPIError as error:
        return "permission denied" in str(error.orig) or "must be owner" in str(error.orig)
    return False


@pytest.fixture(scope="module")
def roles() -> Iterator[Tuple[str, str, str]]:
    """Fresh databases and roles (unique names), the script applied; yields (prefix, tracker db, accounts db)."""
    if os.environ.get("ACCOUNTS_SKIP_PG") == "1":
        pytest.skip("ACCOUNTS_SKIP_PG=1")
    prefix = f"t{uuid.uuid4().hex[:8]}_"
    tracker_db, accounts_db, owner = f"{prefix}tracker", f"{prefix}accounts", f"{prefix}owner"
    admin = sa.create_engine(admin_url(), future=True, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE ROLE "{owner}" LOGIN')
        conn.exec_driver_sql(f'CREATE DATABASE "{tracker_db}"')
        conn.exec_driver_sql(f'CREATE DATABASE "{accounts_db}" OWNER "{owner}"')
    created = [f"{prefix}{name}" for name in SERVICES] + [f"{prefix}tracker_owner", f"{prefix}accounts_rw", owner]
    try:
        run_as(owner, accounts_db, "CREATE TABLE migrated_before (id serial PRIMARY KEY, note text)")
        url = admin_url()
        variables = [f"-v{name}_password=pw-{name}" for name in SERVICES]
        result = subprocess.run(
            ["psql", "-h", url.host or "127.0.0.1", "-p", str(url.port or 5432), "-U", url.username or "postgres",
             "-d", "postgres", f"-vprefix={prefix}", f"-vowner={owner}", f"-vtracker_db={tracker_db}",
             f"-vaccounts_db={accounts_db}", *variables, "-f", str(PROJECT_ROOT / "deploy" / "postgres-roles.sql")],
            capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        run_as(owner, accounts_db, "CREATE TABLE migrated_after (id serial PRIMARY KEY, note text)")  # a later migration
        yield prefix, tracker_db, accounts_db
    finally:
        with admin.connect() as conn:
            for database in (tracker_db, accounts_db):
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            for role in created:
                conn.exec_driver_sql(f'DROP ROLE IF EXISTS "{role}"')
        admin.dispose()


def test_every_service_reads_and_writes_account_rows_but_none_changes_the_schema(roles):
    prefix, _tracker_db, accounts_db = roles
    for service in SERVICES:
        role = f"{prefix}{service}"
        for table in ("migrated_before", "migrated_after"):
            run_as(role, accounts_db, f"INSERT INTO {table} (note) VALUES ('{service}'); "
                                      f"UPDATE {table} SET note = note; DELETE FROM {table} WHERE note = 'x'")
        assert refused(role, accounts_db, "CREATE TABLE sneaky (id int)"), service
        assert refused(role, accounts_db, "DROP TABLE migrated_before"), service
        assert refused(role, accounts_db, "ALTER TABLE migrated_after ADD COLUMN extra text"), service


def test_only_rasa_the_console_and_the_scheduler_reach_the_tracker_store_and_share_its_tables(roles):
    prefix, tracker_db, _accounts_db = roles
    owner = f"{prefix}owner"
    run_as(owner, tracker_db, "CREATE TABLE migrated (id serial PRIMARY KEY, data text)")  # tracking migrate
    run_as(f"{prefix}scheduler", tracker_db, "DELETE FROM migrated; INSERT INTO migrated (data) VALUES ('x')")
    run_as(f"{prefix}rasa", tracker_db, "CREATE TABLE events (id serial PRIMARY KEY, data text)")
    run_as(f"{prefix}console", tracker_db, "CREATE TABLE review (id serial PRIMARY KEY, sender text)")
    run_as(f"{prefix}console", tracker_db, "INSERT INTO events (data) VALUES ('seen by the console')")
    run_as(f"{prefix}rasa", tracker_db, "INSERT INTO review (sender) VALUES ('from rasa')")
    run_as(f"{prefix}scheduler", tracker_db, "DELETE FROM events WHERE data = 'old'; DELETE FROM review WHERE sender = 'x'")
    for service in ("actions", "chatpage", "mail", "helpdesk"):
        assert refused(f"{prefix}{service}", tracker_db, "SELECT 1"), service  # cannot even connect
