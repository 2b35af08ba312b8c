"""Fixtures of the account-domain tests: real databases, a fake clock, fixed tokens.

Every operation test runs twice: on a fresh, migrated SQLite file per test
(``tmp_path``) and on PostgreSQL. For PostgreSQL one database with a unique
name is created per test session through ``ACCOUNTS_TEST_PG_ADMIN_URL``
(default ``postgresql+psycopg2://postgres@127.0.0.1:5432/postgres``), migrated
once, emptied before each test and dropped at the end. If the server cannot be
reached the PostgreSQL variants FAIL; set ``ACCOUNTS_SKIP_PG=1`` to skip them.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import threading
import uuid
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import OperationalError

from accounts.db import make_engine, make_session_factory, upgrade, write_session
from accounts.deps import Actor, Deps
from accounts.models import (
    Account,
    AuditEvent,
    IdempotencyRecord,
    Invoice,
    Member,
    OutboxNotification,
    Payment,
    Service,
    metadata,
)
from accounts.outbox import DbOutbox
from accounts.settings import Settings

PG_ADMIN_DEFAULT = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
START = datetime(2024, 6, 3, 9, 0, tzinfo=timezone.utc)


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class SequentialTokens:
    """Predictable, unique, thread-safe tokens: tok-0001-..., tok-0002-..."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)
        self.issued: List[str] = []
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            token = f"tok-{next(self._counter):04d}-{uuid.uuid4().hex}"
            self.issued.append(token)
            return token


class ConstraintViolatingOutbox(DbOutbox):
    """Writes a notification that violates NOT NULL, so the flush fails after the state change."""

    def add(self, session: Any, **kwargs: Any) -> None:
        kwargs["recipient_email"] = None
        super().add(session, **kwargs)


class RaisingOutbox:
    """An outbox whose mail queue is down."""

    def add(self, session: Any, **kwargs: Any) -> None:
        raise RuntimeError("outbox unavailable")


# --------------------------------------------------------------------------- databases


@pytest.fixture(scope="session")
def pg_engine() -> Iterator[Engine]:
    """A migrated PostgreSQL database for this test session."""
    if os.environ.get("ACCOUNTS_SKIP_PG") == "1":
        pytest.skip("ACCOUNTS_SKIP_PG=1")
    admin_url = os.environ.get("ACCOUNTS_TEST_PG_ADMIN_URL") or PG_ADMIN_DEFAULT
    admin = sa.create_engine(admin_url, future=True, isolation_level="AUTOCOMMIT")
    name = f"accounts_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except OperationalError as exc:
        admin.dispose()
        pytest.fail(
            f"PostgreSQL not reachable at {make_url(admin_url).render_as_string(hide_password=True)}: "
            f"{exc.orig}. Start it, point ACCOUNTS_TEST_PG_ADMIN_URL at it, or set ACCOUNTS_SKIP_PG=1.",
            pytrace=False,
        )
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    engine = None
    try:
        upgrade(url)
        engine = make_engine(url, pool_size=12, max_overflow=4)
        yield engine
    finally:
        if engine is not None:
            engine.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def empty_database(engine: Engine) -> None:
    """Delete every row (DELETE is much faster than TRUNCATE on tiny tables)."""
    with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(table.delete())


@pytest.fixture
def sqlite_engine(tmp_path: Any) -> Iterator[Engine]:
    """A fresh SQLite file migrated with accounts.db.upgrade."""
    url = f"sqlite:///{tmp_path / 'accounts.db'}"
    upgrade(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: Any, tmp_path: Any) -> Iterator[Engine]:
    """The database of an operation test: SQLite file or PostgreSQL (emptied)."""
    if request.param == "sqlite":
        yield request.getfixturevalue("sqlite_engine")
    else:
        pg = request.getfixturevalue("pg_engine")
        empty_database(pg)
        yield pg


# --------------------------------------------------------------------------- world


class World:
    """Builds accounts in a real database and reads back what operations wrote."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.session_factory = make_session_factory(engine)
        self.clock = FakeClock()
        self.tokens = SequentialTokens()
        self.settings = Settings()
        self.deps = Deps(
            session_factory=self.session_factory,
            clock=self.clock,
            tokens=self.tokens,
            outbox=DbOutbox(),
            settings=self.settings,
        )
        self._numbers = itertools.count(1)

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    def with_deps(self, **changes: Any) -> Deps:
        """Return the deps with some fields replaced (e.g. a broken outbox)."""
        return dataclasses.replace(self.deps, **changes)

    def account(
        self,
        email: str = "owner@example.com",
        *,
        kind: str = "personal",
        currency: str = "EUR",
        status: str = "active",
        balance: str = "0.00",
        members: Sequence[Tuple[str, str, str]] = (),
        services: Sequence[Tuple[str, str]] = (),
        invoices: Sequence[Tuple[str, str, str]] = (),
        payments: Sequence[str] = (),
        grace_period_ends_at: Optional[datetime] = None,
        **fields: Any,
    ) -> int:
        """Create an account whose owner has the primary e-mail; return its id.

        members: (email, role, status); services: (name, status);
        invoices: (number, amount, status); payments: amounts.
        """
        now = self.clock()
        with write_session(self.session_factory) as s:
            account = Account(
                primary_email=email, kind=kind, currency=currency, status=status,
                balance=Decimal(balance), created_at=now, payment_method=fields.pop("payment_method", "card"),
                closing_requested_at=now if status == "closing" else None,
                grace_period_ends_at=grace_period_ends_at
                or (now + timedelta(days=14) if status == "closing" else None),
                **fields,
            )
            s.add(account)
            s.flush()
            s.add(Member(account_id=account.id, email=email, role="owner", status="active", created_at=now))
            for m_email, role, m_status in members:
                s.add(Member(account_id=account.id, email=m_email, role=role, status=m_status, created_at=now))
            for name, s_status in services:
                s.add(Service(account_id=account.id, name=name, status=s_status, created_at=now))
            for number, amount, i_status in invoices:
                s.add(Invoice(account_id=account.id, number=number, amount=Decimal(amount), currency=currency,
                              status=i_status, issued_at=now, due_date=date(2024, 6, 30)))
            for amount in payments:
                s.add(Payment(account_id=account.id, amount=Decimal(amount), currency=currency, paid_at=now))
            return account.id

    def execute(self, statement: Any) -> None:
        """Run one statement in its own write transaction (test set-up)."""
        with write_session(self.session_factory) as s:
            s.execute(statement)

    def actor(self, account_id: int, email: str = "owner@example.com") -> Actor:
        return Actor(account_id=account_id, member_email=email)

    def get(self, model: Any, ident: Any) -> Any:
        with self.session_factory() as s:
            return s.get(model, ident)

    def member(self, account_id: int, email: str) -> Member:
        with self.session_factory() as s:
            return s.execute(
                sa.select(Member).where(Member.account_id == account_id, Member.email == email)
            ).scalar_one()

    def all(self, model: Any, *where: Any) -> List[Any]:
        with self.session_factory() as s:
            return list(s.execute(sa.select(model).where(*where).order_by(model.id)).scalars())

    def count(self, model: Any, *where: Any) -> int:
        return len(self.all(model, *where))

    def audits(self, outcome: Optional[str] = None, action: Optional[str] = None) -> List[AuditEvent]:
        where = []
        if outcome:
            where.append(AuditEvent.outcome == outcome)
        if action:
            where.append(AuditEvent.action == action)
        return self.all(AuditEvent, *where)

    def outbox(self, kind: Optional[str] = None) -> List[OutboxNotification]:
        return self.all(OutboxNotification, *([OutboxNotification.kind == kind] if kind else []))

    def snapshot(self, exclude: Sequence[str] = ("audit_events",)) -> Dict[str, List[Tuple[Any, ...]]]:
        """Every row of every table (except ``exclude``), for "nothing changed" checks."""
        out: Dict[str, List[Tuple[Any, ...]]] = {}
        with self.engine.connect() as conn:
            for table in metadata.sorted_tables:
                if table.name in exclude:
                    continue
                rows = conn.execute(sa.select(table).order_by(*table.primary_key.columns)).all()
                out[table.name] = [tuple(r) for r in rows]
        return out

    def dump(self, exclude: Sequence[str] = ()) -> str:
        """All rows of all tables as one string, to search for leaked secrets."""
        return json.dumps(self.snapshot(exclude=exclude), default=str)

    def idempotency_records(self) -> List[IdempotencyRecord]:
        return self.all(IdempotencyRecord)

    def broken_deps(self, how: str = "constraint") -> Deps:
        """Deps whose outbox fails after the state change (constraint violation or exception)."""
        outbox = ConstraintViolatingOutbox() if how == "constraint" else RaisingOutbox()
        return self.with_deps(outbox=outbox)

    def assert_refused(self, before: Dict[str, Any], result: Any, reason: str) -> None:
        """A refusal: right reason, no table changed, no notification, a refused audit event."""
        assert not result.ok, result
        assert result.reason.value == reason, result
        assert self.snapshot() == before
        refused = self.audits(outcome="refused")
        assert refused and refused[-1].details["reason"] == reason

    def assert_nothing_written(self, before: Dict[str, Any]) -> None:
        """After a failed transaction: every table, audit log included, is as before."""
        assert self.snapshot(exclude=()) == before

    @staticmethod
    def run_threads(n: int, target: Callable[[int], Any]) -> List[Any]:
        """Run ``target(i)`` in ``n`` threads released together; return results in order."""
        barrier = threading.Barrier(n)
        results: List[Any] = [None] * n
        errors: List[BaseException] = []

        def worker(i: int) -> None:
            try:
                barrier.wait(timeout=10)
                results[i] = target(i)
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not errors, errors
        return results


@pytest.fixture
def world(engine: Engine) -> World:
    """A World on the parametrized backend (SQLite and PostgreSQL)."""
    return World(engine)


@pytest.fixture
def sqlite_world(sqlite_engine: Engine) -> World:
    """A World on SQLite only."""
    return World(sqlite_engine)
