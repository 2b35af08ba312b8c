"""Tests of accounts.db, the migrations, the CLI and the package's boundaries."""

from __future__ import annotations

import ast
import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.exc import IntegrityError, StatementError

import accounts
from accounts import settings
from accounts.__main__ import main
from accounts.db import alembic_config, make_engine, make_session_factory, read_session, upgrade, write_session
from accounts.models import Account, Member, metadata

PACKAGE = Path(accounts.__file__).resolve().parent
PROJECT = PACKAGE.parent


def test_default_url_is_var_accounts_db_under_project_root():
    assert settings.database_url({}) == f"sqlite:///{PROJECT / 'var' / 'accounts.db'}"
    assert settings.database_url({"ACCOUNTS_DB_URL": "postgresql://x/y"}) == "postgresql://x/y"


def test_settings_from_env():
    s = settings.Settings.from_env({"ACCOUNTS_GRACE_PERIOD_DAYS": "30", "ACCOUNTS_PORTAL_BASE_URL": "https://p"})
    assert (s.grace_period_days, s.invitation_ttl_days, s.portal_base_url) == (30, 7, "https://p")
    with pytest.raises(ValueError):
        settings.Settings.from_env({"ACCOUNTS_RESET_RATE_LIMIT": "0"})


def test_make_engine_creates_the_folder_of_a_sqlite_file(tmp_path):
    url = f"sqlite:///{tmp_path / 'var' / 'nested' / 'a.db'}"
    engine = make_engine(url)
    assert (tmp_path / "var" / "nested").is_dir()
    engine.dispose()


def test_upgrade_works_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'x.db'}"
    upgrade(url)
    upgrade(url)  # already at head: no-op
    engine = make_engine(url)
    with engine.connect() as conn:
        head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == head
    engine.dispose()


def test_migrations_match_the_models(engine):
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []


def test_sqlite_foreign_keys_are_enforced(sqlite_engine):
    factory = make_session_factory(sqlite_engine)
    with pytest.raises(IntegrityError):
        with write_session(factory) as s:
            s.add(Member(account_id=12345, email="x@example.com", role="owner", status="active",
                         created_at=datetime.now(timezone.utc)))


def test_sqlite_write_transaction_takes_the_lock_up_front(sqlite_engine):
    factory = make_session_factory(sqlite_engine)
    path = sqlite_engine.url.database
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        with write_session(factory):
            # nothing written yet, but BEGIN IMMEDIATE already holds the write lock
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        with read_session(factory) as s:
            s.execute(sa.select(Account)).all()
            other.execute("BEGIN IMMEDIATE")  # a read transaction does not block writers
            other.execute("ROLLBACK")
    finally:
        other.close()


def test_write_session_rolls_back_on_error(sqlite_engine):
    factory = make_session_factory(sqlite_engine)
    now = datetime.now(timezone.utc)
    with pytest.raises(RuntimeError):
        with write_session(factory) as s:
            s.add(Account(primary_email="a@example.com", currency="EUR", created_at=now))
            s.flush()
            raise RuntimeError("boom")
    with read_session(factory) as s:
        assert s.execute(sa.select(sa.func.count()).select_from(Account)).scalar() == 0


def test_column_types_round_trip(engine):
    factory = make_session_factory(engine)
    cest = datetime(2024, 6, 3, 11, 0, tzinfo=timezone(timedelta(hours=2)))
    with write_session(factory) as s:
        s.add(Account(primary_email="a@example.com", currency="EUR", created_at=cest,
                      balance=Decimal("0.1") + Decimal("0.2")))
    with read_session(factory) as s:
        account = s.execute(sa.select(Account)).scalar_one()
        assert account.balance == Decimal("0.30") and str(account.balance) == "0.30"
        assert account.created_at == cest and account.created_at.utcoffset() == timedelta(0)
        assert account.created_at.hour == 9
        assert s.execute(sa.select(Account.id).where(Account.balance > Decimal("0.29"))).scalar() == account.id
    with pytest.raises(StatementError):
        with write_session(factory) as s:
            s.add(Account(primary_email="b@example.com", currency="EUR", created_at=datetime(2024, 1, 1)))
    with pytest.raises(StatementError, match="not float"):
        with write_session(factory) as s:
            s.add(Account(primary_email="c@example.com", currency="EUR", created_at=cest, balance=0.1))
            s.flush()


def test_check_constraints(sqlite_engine):
    factory = make_session_factory(sqlite_engine)
    with pytest.raises(IntegrityError):
        with write_session(factory) as s:
            s.add(Account(primary_email="a@example.com", currency="EUR", status="frozen",
                          created_at=datetime.now(timezone.utc)))


# ------------------------------------------------------------------------ boundaries


def test_domain_imports_nothing_from_rasa_sanic_or_channels():
    forbidden = ("rasa", "rasa_sdk", "sanic")
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in forbidden, f"{path}: imports {name}"


def test_importing_the_package_connects_to_nothing(tmp_path):
    code = (
        "import sys, sqlalchemy, sqlalchemy.engine.create as c\n"
        "made = []\n"
        "orig = c.create_engine\n"
        "sqlalchemy.create_engine = lambda *a, **k: made.append(a) or orig(*a, **k)\n"
        "import accounts, accounts.models, accounts.db, accounts.closing, accounts.currency, accounts.members,"
        " accounts.business, accounts.password_reset, accounts.support_requests, accounts.demo,"
        " accounts.__main__\n"
        "assert made == [], made\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('rasa', 'rasa_sdk', 'sanic')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=PROJECT, check=True, timeout=60)
    assert not (tmp_path / "var").exists()


def _public_definitions(tree):
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
            yield node
            if isinstance(node, ast.ClassDef):
                for inner in node.body:
                    if isinstance(inner, ast.FunctionDef) and not inner.name.startswith("_"):
                        yield inner


def test_public_functions_have_docstrings_and_type_hints():
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        assert ast.get_docstring(tree), f"{path} has no module docstring"
        for node in _public_definitions(tree):
            assert ast.get_docstring(node), f"{path}:{node.lineno} {node.name} has no docstring"
            if isinstance(node, ast.FunctionDef):
                assert node.returns is not None, f"{path}:{node.lineno} {node.name} has no return type"
                args = [a for a in node.args.args + node.args.kwonlyargs if a.arg not in ("self", "cls")]
                assert all(a.annotation is not None for a in args), f"{path}:{node.lineno} {node.name}"


# ------------------------------------------------------------------------------- CLI


def test_cli_migrate_and_demo_are_idempotent(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert main(["--url", url, "migrate"]) == 0
    assert main(["--url", url, "demo"]) == 0
    first = capsys.readouterr().out
    assert main(["--url", url, "demo"]) == 0
    second = capsys.readouterr().out
    assert first.count("created") == 8 and second.count("present") == 8 and "created" not in second
    assert main(["--url", url, "finalize-closures"]) == 0
    assert "ClosuresFinalized" in capsys.readouterr().out


def test_cli_reads_url_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("ACCOUNTS_DB_URL", f"sqlite:///{tmp_path / 'env.db'}")
    assert main(["migrate"]) == 0
    assert (tmp_path / "env.db").exists()


def test_python_dash_m_accounts_from_another_directory(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    env = {"PYTHONPATH": str(PROJECT), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-m", "accounts", "--url", url, "demo"],
        cwd=tmp_path, env=env, check=True, capture_output=True, text=True, timeout=60,
    ).stdout
    assert "clean@demo.example" in out
