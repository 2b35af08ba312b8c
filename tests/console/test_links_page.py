"""The console's chat-links page: a lead finds an account's links, revokes one, audited (SQLite and PostgreSQL).

The links are made the customer's way (e-mailed code through
:mod:`accounts.channel_links`); the conversation a link verified is written by
the real tracker store, so its transcript shows "via slack link" and links to
the account's page.
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import SlotSet, UserUttered
from sqlalchemy.engine import make_url

from accounts import channel_links
from accounts.db import make_engine as make_accounts_engine
from accounts.db import make_session_factory, upgrade, write_session
from accounts.deps import Actor, Deps
from accounts.models import Account, AuditEvent, ChannelLink, Member, OutboxNotification
from console import auth
from console.app import SESSION_COOKIE, create_app, prepare_database
from console.settings import load_console_settings
from supportbot.cluster import drop_postgres_database, ensure_postgres_database
from tracking.db import make_engine, write_transaction
from tracking.store import ReviewableSQLTrackerStore

PG_ADMIN_DEFAULT = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
LEAD = "lead.links@example.com"
OWNER = "kadri.tamm@example.com"
TELEGRAM = ("telegram", "100200300")
SLACK = ("slack", "T01ABC:U0AB12CD")
SLACK_CONVERSATION = "slack-T01ABC-U0AB12CD"
NOW = 1_800_000_000.0
LINKED_AT = datetime(2026, 11, 20, 8, 30, tzinfo=timezone.utc)
ROW_RE = re.compile(r'<tr data-link="(\d+)" data-state="(\w+)">(.*?)</tr>', re.S)
KEY_RE = re.compile(r'name="key" value="([^"]+)"')


@pytest.fixture(params=["sqlite", "postgresql"])
def urls(request: Any, tmp_path: Path) -> Iterator[Tuple[str, str]]:
    """(accounts URL, tracker URL) on one backend; fresh databases."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'accounts.db'}", f"sqlite:///{tmp_path / 'tracker.db'}"
        return
    admin = make_url(os.environ.get("CONSOLE_TEST_PG_ADMIN_URL") or PG_ADMIN_DEFAULT)
    tag = f"{os.getpid()}_{uuid.uuid4().hex[:8]}"
    made = [admin.set(database=f"links_{kind}_{tag}").render_as_string(hide_password=False)
            for kind in ("accounts", "tracker")]
    for url in made:
        ensure_postgres_database(url)
    try:
        yield made[0], made[1]
    finally:
        for url in made:
            drop_postgres_database(url)


def _link(deps: Deps, identity: Tuple[str, str], key: str) -> int:
    """Link a chat identity to OWNER's account with the e-mailed code, as the customer does."""
    channel, user = identity
    assert channel_links.request_link(deps, channel=channel, channel_user_id=user, email=OWNER,
                                      idempotency_key=f"{key}:request").ok
    with deps.session_factory() as s:
        code = s.execute(sa.select(OutboxNotification).where(OutboxNotification.kind == "verification_code")
                         .order_by(OutboxNotification.id.desc())).scalars().first().payload["secret_code"]
    linked = channel_links.confirm_link(deps, channel=channel, channel_user_id=user, code=code,
                                        idempotency_key=f"{key}:confirm")
    assert linked.ok, linked
    return linked.link_id


def _accounts(url: str) -> Tuple[Deps, int]:
    """OWNER's account with a Telegram and a Slack link, and another account with none."""
    upgrade(url)
    deps = Deps(session_factory=make_session_factory(make_accounts_engine(url)), clock=lambda: LINKED_AT)
    with write_session(deps.session_factory) as s:
        for address in (OWNER, "someone.else@example.com"):
            account = Account(primary_email=address, currency="EUR", created_at=LINKED_AT)
            s.add(account)
            s.flush()
            s.add(Member(account_id=account.id, email=address, role="owner", status="active", created_at=LINKED_AT))
        account_id = s.execute(sa.select(Account.id).where(Account.primary_email == OWNER)).scalar_one()
    return deps, account_id


def _linked_conversation(url: str, account_id: int) -> None:
    """A Slack conversation whose customer the linking action verified (``via slack link``)."""
    store = ReviewableSQLTrackerStore(Domain.empty(), host=url)

    async def chat() -> None:
        tracker = await store.get_or_create_tracker(SLACK_CONVERSATION)
        tracker.update(UserUttered("heres the code 12 34 56", intent={"name": "inform", "confidence": 0.9},
                                   input_channel="slack"))
        tracker.update(SlotSet("last_operation", {"operation": "link_account", "outcome": "performed",
                                                  "customer": {"account_id": account_id, "channel": "slack"}}))
        await store.save(tracker)

    asyncio.run(chat())
    store.engine.dispose()


def test_a_lead_lists_and_revokes_an_accounts_chat_links(urls: Tuple[str, str]) -> None:
    accounts_url, tracker_url = urls
    deps, account_id = _accounts(accounts_url)
    telegram_link = _link(deps, TELEGRAM, "tg")
    slack_link = _link(deps, SLACK, "slack")
    _linked_conversation(tracker_url, account_id)
    engine = make_engine(tracker_url)
    prepare_database(engine)
    with write_transaction(engine) as conn:
        lead_id = auth.create_lead(conn, LEAD, "a long passphrase", now=NOW)
        token = auth.start_session(conn, lead_id, now=NOW, lifetime_seconds=3600)
        csrf = auth.load_session(conn, token, now=NOW).csrf_token
    settings = load_console_settings({"TRACKER_DB_URL": tracker_url, "ACCOUNTS_DB_URL": accounts_url})
    app = create_app(settings, engine, clock=lambda: NOW, accounts=lambda: deps)

    def rows(page: str) -> Dict[int, Tuple[str, str]]:
        return {int(i): (state, cells) for i, state, cells in ROW_RE.findall(page)}

    def revocations() -> List[Tuple[str, int, Any]]:
        with deps.session_factory() as s:
            return [(a.actor, a.account_id, a.details["link_id"]) for a in s.execute(
                sa.select(AuditEvent).where(AuditEvent.action == "channel_link_revoked")).scalars()]

    async def scenario() -> None:
        async with TestClient(TestServer(app), cookies={SESSION_COOKIE: token}) as client:
            transcript = await (await client.get("/conversation", params={"id": SLACK_CONVERSATION})).text()
            found = re.search(r'<a href="([^"]+)" id="customer-links">([^<]+)</a>', transcript)
            assert found and found.group(2) == f"{account_id} (via slack link)"

            page = await (await client.get(found.group(1).replace("&amp;", "&"))).text()
            listed = rows(page)
            assert set(listed) == {telegram_link, slack_link}
            assert all(state == "active" for state, _ in listed.values())
            assert f"<td>{OWNER}</td>" in listed[telegram_link][1] and "<td>e-mailed code</td>" in listed[slack_link][1]
            assert "<code>100200300</code>" in listed[telegram_link][1]
            by_mail = await (await client.get("/links", params={"account": " Kadri.Tamm@Example.com"})).text()
            assert set(rows(by_mail)) == set(listed)

            sneaky = await client.get("/links/revoke", params={"link_id": str(telegram_link), "account": account_id},
                                      allow_redirects=False)
            assert sneaky.status == 405
            forged = await client.post("/links/revoke", data={"link_id": str(telegram_link), "account": account_id,
                                                              "key": "k1"}, allow_redirects=False)
            assert forged.status == 403
            assert channel_links.find_linked_actor(deps, *TELEGRAM) == Actor(account_id, OWNER)
            assert revocations() == []

            form_key = KEY_RE.search(listed[telegram_link][1]).group(1)
            form = {"csrf_token": csrf, "link_id": str(telegram_link), "account": str(account_id), "key": form_key}
            revoked = await client.post("/links/revoke", data=form, allow_redirects=False)
            assert revoked.status == 302
            after = await (await client.get(revoked.headers["Location"])).text()
            assert re.search(r'<p class="flash flash--ok" id="done" role="status">Link revoked', after)
            now_listed = rows(after)
            assert now_listed[telegram_link][0] == "revoked" and "Revoke</button>" not in now_listed[telegram_link][1]
            assert now_listed[slack_link][0] == "active" and "Revoke</button>" in now_listed[slack_link][1]
            assert channel_links.find_linked_actor(deps, *TELEGRAM) is None
            assert channel_links.find_linked_actor(deps, *SLACK) == Actor(account_id, OWNER)
            assert revocations() == [(f"console:{LEAD}", account_id, telegram_link)]

            twice = await client.post("/links/revoke", data=form, allow_redirects=False)
            assert twice.status == 302 and "done=revoked" in twice.headers["Location"]
            stale = await client.post("/links/revoke", data={**form, "key": "another-tab"}, allow_redirects=False)
            assert "done=not_active" in stale.headers["Location"]
            assert len(revocations()) == 1

            beyond = await client.post("/links/revoke", data={**form, "link_id": str(2 ** 40)}, allow_redirects=False)
            assert beyond.status == 400
            too_big = await client.get("/links", params={"account": "9" * 30})
            assert too_big.status == 404 and 'id="unknown-account"' in await too_big.text()
            unknown = await client.get("/links", params={"account": "nobody@example.com"})
            assert unknown.status == 404
            assert re.search(r'id="unknown-account"[^>]*>No account has the id or primary e-mail '
                             r'“nobody@example.com”', await unknown.text())

        async with TestClient(TestServer(app)) as anonymous:
            assert (await anonymous.get("/links", params={"account": account_id}, allow_redirects=False)).status == 302
            assert (await anonymous.post("/links/revoke", data=form, allow_redirects=False)).status == 401
        with deps.session_factory() as s:
            assert s.get(ChannelLink, slack_link).revoked_at is None

    try:
        asyncio.run(scenario())
    finally:
        engine.dispose()
