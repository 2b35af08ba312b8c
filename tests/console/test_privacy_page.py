"""The console's personal-data page: a lead exports a customer, is asked to confirm, then erases (audited)."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer

from accounts.models import AuditEvent
from console import auth
from console.app import SESSION_COOKIE, create_app, prepare_database
from console.settings import load_console_settings
from tests.test_privacy import EMAIL, SLACK_USER, WIDGET_TEXT, Clock, _accounts, _conversations
from tracking.db import make_engine, write_transaction
from tracking.schema import events

LEAD = "lead.privacy@example.com"
NOW = 1_800_000_000.0


def test_a_lead_exports_then_confirms_and_erases_a_customer(tmp_path: Path) -> None:
    accounts_url, tracker_url = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 't.db'}"
    deps, account_id, other_id = _accounts(accounts_url, Clock())
    _conversations(tracker_url, account_id, other_id)
    engine = make_engine(tracker_url)
    prepare_database(engine)
    with write_transaction(engine) as conn:
        lead_id = auth.create_lead(conn, LEAD, "a long passphrase", now=NOW)
        token = auth.start_session(conn, lead_id, now=NOW, lifetime_seconds=3600)
        csrf = auth.load_session(conn, token, now=NOW).csrf_token
    settings = load_console_settings({"TRACKER_DB_URL": tracker_url, "ACCOUNTS_DB_URL": accounts_url})
    app = create_app(settings, engine, clock=lambda: NOW, accounts=lambda: deps)

    def conversations() -> set:
        with engine.connect() as conn:
            return set(conn.execute(sa.select(events.c.sender_id).distinct()).scalars())

    def audits(action: str) -> list:
        with deps.session_factory() as s:
            return [a.actor for a in s.execute(sa.select(AuditEvent).where(AuditEvent.action == action)).scalars()]

    async def scenario() -> None:
        async with TestClient(TestServer(app), cookies={SESSION_COOKIE: token}) as client:
            page = await (await client.get("/privacy")).text()
            assert 'id="privacy-form"' in page

            forged = await client.post("/privacy/erase", data={"email": EMAIL, "confirm": "erase"})
            assert forged.status == 403

            exported = await client.post("/privacy/export", data={"csrf_token": csrf, "email": EMAIL})
            assert exported.status == 200
            assert "attachment" in exported.headers["Content-Disposition"]
            document = json.loads(await exported.text())
            assert document["subject"]["account_id"] == account_id
            assert WIDGET_TEXT in json.dumps(document["conversations"])
            assert audits("export_personal_data") == [f"console:{LEAD}"]

            asked = await (await client.post("/privacy/erase", data={"csrf_token": csrf, "email": EMAIL})).text()
            preview = re.search(r'<p id="preview">(.*?)</p>', asked).group(1)
            assert preview.startswith(f"account {account_id} (closed") and "2 conversation(s)" in preview
            assert SLACK_USER in conversations(), "asking for confirmation erased something"

            done = await (await client.post("/privacy/erase", data={"csrf_token": csrf, "email": EMAIL,
                                                                    "confirm": "erase"})).text()
            assert re.search(r'<p id="erased">2 conversation\(s\)', done)
            assert conversations() == {"web-other"}
            assert audits("erase_personal_data") == [f"console:{LEAD}"]

            unclear = await client.post("/privacy/export", data={"csrf_token": csrf, "email": EMAIL,
                                                                 "account_id": "3"})
            assert unclear.status == 400 and "one way" in await unclear.text()

    try:
        asyncio.run(scenario())
    finally:
        engine.dispose()
