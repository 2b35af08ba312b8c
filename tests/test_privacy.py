"""Export and erasure of one customer across the account store and the tracker store (SQLite and PostgreSQL).

The customer closes their account from Slack after linking it, chats on the
widget signed in, asks for a person; a lead tags and annotates the chat.
After ``python -m supportbot.privacy erase`` no row of either database (and,
on SQLite, no byte of either file) holds their address, their Slack user id
or the text of their messages, while another customer's data and the
invoices stay.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import uuid
from contextlib import redirect_stdout
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest
import sqlalchemy as sa
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import BotUttered, UserUttered
from sqlalchemy.engine import make_url

from accounts.closing import finalize_due_closures, request_closure
from accounts.db import make_engine, make_session_factory, upgrade, write_session
from accounts.deps import Actor, Deps
from accounts.models import Account, ChannelLink, Invoice, Member, metadata as accounts_metadata
from accounts.support_requests import create_support_request
from console.models import metadata as console_metadata
from supportbot.cluster import drop_postgres_database, ensure_postgres_database
from supportbot.privacy import main
from tracking.schema import metadata as tracking_metadata
from tracking.store import ReviewableSQLTrackerStore

EMAIL = "leaving.customer@example.com"
SLACK_USER = "U0LEAVE7Q"
WIDGET_CONVERSATION = "web-acct-leaving-4711"
SLACK_TEXT = "pls delete evrything, my bike shop in tartu closed down"
WIDGET_TEXT = "hi its me again about the refund for order zz-9981"
OTHER_EMAIL = "staying@example.com"
OTHER_TEXT = "what payment methods do you take for the yearly plan"
START = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
PG_ADMIN_DEFAULT = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(params=["sqlite", "postgresql"])
def urls(request: Any, tmp_path: Path) -> Iterator[Tuple[str, str]]:
    """(accounts URL, tracker URL) on one backend; fresh databases."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'accounts.db'}", f"sqlite:///{tmp_path / 'tracker.db'}"
        return
    admin = make_url(os.environ.get("ACCOUNTS_TEST_PG_ADMIN_URL") or PG_ADMIN_DEFAULT)
    tag = f"{os.getpid()}_{uuid.uuid4().hex[:8]}"
    made = [admin.set(database=f"privacy_{kind}_{tag}").render_as_string(hide_password=False)
            for kind in ("accounts", "tracker")]
    for url in made:
        ensure_postgres_database(url)
    try:
        yield made[0], made[1]
    finally:
        for url in made:
            drop_postgres_database(url)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def _accounts(url: str, clock: Clock) -> Tuple[Deps, int, int]:
    """The leaving customer (Slack link, support request, closure) and a customer who stays."""
    upgrade(url)
    deps = Deps(session_factory=make_session_factory(make_engine(url)), clock=clock)
    ids = []
    with write_session(deps.session_factory) as s:
        for address in (EMAIL, OTHER_EMAIL):
            account = Account(primary_email=address, currency="EUR", created_at=START,
                              company_name="Tartu Bikes" if address == EMAIL else "Narva Books")
            s.add(account)
            s.flush()
            s.add(Member(account_id=account.id, email=address, role="owner", status="active", created_at=START,
                         password_hash="scrypt$x"))
            s.add(Invoice(account_id=account.id, number=f"INV-{account.id}", amount=Decimal("9.00"), currency="EUR",
                          status="paid", issued_at=START, due_date=START.date()))
            ids.append(account.id)
        member = s.execute(sa.select(Member).where(Member.email == EMAIL)).scalar_one()
        s.add(ChannelLink(channel="slack", channel_user_id=SLACK_USER, account_id=ids[0], member_id=member.id,
                          member_email=EMAIL, created_at=START, expires_at=START + timedelta(days=90)))
    create_support_request(deps, account_id=ids[0], channel="slack", reason="human_handoff",
                           summary=f"customer asked for a person: {SLACK_TEXT}",
                           idempotency_key=f"{SLACK_USER}:support_request:1",
                           context={"conversation": SLACK_USER, "transcript": [{"user": SLACK_TEXT}]})
    create_support_request(deps, account_id=ids[1], channel="web", reason="human_handoff",
                           summary=OTHER_TEXT, idempotency_key="web-other:support_request:1",
                           context={"conversation": "web-other", "transcript": [{"user": OTHER_TEXT}]})
    actor = Actor(account_id=ids[0], member_email=EMAIL)
    assert request_closure(deps, actor, idempotency_key=f"{SLACK_USER}:close_account:2").ok
    clock.now = START + timedelta(days=15)
    assert finalize_due_closures(deps, idempotency_key="finalize:test").ok
    return deps, ids[0], ids[1]


def _user(text: str, metadata: Dict[str, Any]) -> UserUttered:
    return UserUttered(text, intent={"name": "human_handoff", "confidence": 0.9}, metadata=metadata,
                       input_channel=metadata.get("channel", "rest"))


def _conversations(url: str, account_id: int, other_id: int) -> None:
    store = ReviewableSQLTrackerStore(Domain.empty(), host=url)

    async def chat(sender: str, text: str, metadata: Dict[str, Any]) -> None:
        tracker = await store.get_or_create_tracker(sender)
        tracker.update(_user(text, metadata))
        tracker.update(BotUttered(f"I hear you: {text}"))
        await store.save(tracker)

    slack = {"channel_user": {"channel": "slack", "channel_user_id": SLACK_USER}, "channel": "slack"}
    asyncio.run(chat(SLACK_USER, SLACK_TEXT, slack))
    asyncio.run(chat(WIDGET_CONVERSATION, WIDGET_TEXT,
                     {"verified_identity": {"account_id": account_id, "email": EMAIL}, "channel": "socketio"}))
    asyncio.run(chat("web-other", OTHER_TEXT,
                     {"verified_identity": {"account_id": other_id, "email": OTHER_EMAIL}, "channel": "socketio"}))
    with store.engine.begin() as conn:
        lead = conn.execute(console_metadata.tables["console_lead"].insert().values(
            email="lead@example.com", password_hash="x", created_at=1.0, disabled=False)).inserted_primary_key[0]
        for sender in (SLACK_USER, "web-other"):
            conn.execute(console_metadata.tables["conversation_tag"].insert().values(
                sender_id=sender, tag="refund", added_by=lead, added_at=1.0))
            conn.execute(console_metadata.tables["conversation_note"].insert().values(
                sender_id=sender, lead_id=lead, body=f"called back about: {SLACK_TEXT[:20]}", created_at=1.0))
    store.engine.dispose()


def _dump(url: str, metadatas: List[sa.MetaData]) -> str:
    """Every row of every table of the database, as text."""
    engine = sa.create_engine(url, future=True)
    try:
        names = set(sa.inspect(engine).get_table_names())
        out = []
        with engine.connect() as conn:
            for metadata in metadatas:
                for table in metadata.sorted_tables:
                    if table.name in names:
                        out += [json.dumps([str(v) for v in row]) for row in conn.execute(sa.select(table))]
            if engine.dialect.name == "sqlite" and "message_fts" in names:
                out += [str(r) for r in conn.exec_driver_sql("SELECT * FROM message_fts")]
        return "\n".join(out)
    finally:
        engine.dispose()


def _file_bytes(url: str) -> bytes:
    path = Path(make_url(url).database)
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal"), Path(f"{path}-journal")) if p.exists())


def _run(*args: str) -> Dict[str, Any]:
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(list(args)) == 0
    return json.loads(out.getvalue())


def test_export_then_erase_leaves_nothing_of_the_customer_in_either_database(urls: Tuple[str, str],
                                                                             monkeypatch: Any) -> None:
    accounts_url, tracker_url = urls
    monkeypatch.setenv("ACCOUNTS_DB_URL", accounts_url)
    monkeypatch.setenv("TRACKER_DB_URL", tracker_url)
    deps, account_id, other_id = _accounts(accounts_url, Clock())
    _conversations(tracker_url, account_id, other_id)

    export = _run("export", "--channel", "slack", "--channel-user", SLACK_USER)
    assert export["subject"]["account_id"] == account_id
    assert export["account_store"]["account"]["primary_email"] == EMAIL
    assert [r["number"] for r in export["account_store"]["invoices"]] == [f"INV-{account_id}"]
    assert "password_hash" not in json.dumps(export)
    texts = [e.get("text") for c in export["conversations"] for e in c["events"] if e.get("event") == "user"]
    assert sorted(texts) == sorted([SLACK_TEXT, WIDGET_TEXT])
    assert OTHER_TEXT not in json.dumps(export)
    slack = next(c for c in export["conversations"] if c["conversation_id"] == SLACK_USER)
    assert [t["tag"] for t in slack["review"]["conversation_tag"]] == ["refund"]
    assert _run("export", "--email", EMAIL)["subject"]["account_id"] == account_id

    erased = _run("erase", "--email", EMAIL.upper(), "--yes")
    assert erased["found"] and erased["account_pseudonymised"]
    assert erased["conversations"] == {"conversations": 2, "events": erased["conversations"]["events"]}

    secrets = [EMAIL, SLACK_USER, SLACK_TEXT, WIDGET_TEXT, WIDGET_CONVERSATION, "Tartu Bikes"]
    everything = _dump(accounts_url, [accounts_metadata]) + _dump(tracker_url, [tracking_metadata, console_metadata])
    for secret in secrets:
        assert secret not in everything, secret
    if accounts_url.startswith("sqlite"):
        raw = _file_bytes(accounts_url) + _file_bytes(tracker_url)
        for secret in secrets:
            assert secret.encode() not in raw, f"{secret} is still in the database files"
    for kept in (OTHER_EMAIL, OTHER_TEXT, f"INV-{account_id}", erased["pseudonym"]):
        assert kept in everything, kept
    with deps.session_factory() as s:
        account = s.get(Account, account_id)
        assert account.status == "closed" and account.primary_email.endswith("@erased.invalid")
        audit = s.execute(sa.text("SELECT actor, action FROM audit_events WHERE account_id = :a ORDER BY id"),
                          {"a": account_id}).all()
    assert ("operator:privacy-cli", "erase_personal_data") == tuple(audit[-1])
    assert any(action == "request_closure" and actor.startswith("member:erased-") for actor, action in audit)

    assert _run("erase", "--email", EMAIL, "--yes") == {"found": False}
    again = _run("erase", "--channel", "slack", "--channel-user", SLACK_USER, "--yes")
    assert again["conversations"]["conversations"] == 0 and not any(again["account_store"].values())


def test_erase_refuses_without_yes_and_without_a_selector(capsys: Any) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["erase", "--email", EMAIL])
    assert exit_info.value.code == 2 and "--yes" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["export", "--channel", "slack"])
