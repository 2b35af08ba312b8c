"""A support lead revokes a customer's Telegram link in a real browser (headless Debian Chromium).

The console runs in-process on a free port, on SQLite (both databases are
covered by ``test_links_page.py``); the lead signs in with a password, opens a
link-verified transcript, follows it to the account's chat links and revokes one.
"""

from __future__ import annotations

import asyncio
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator, Tuple

import pytest
from aiohttp import web
from playwright.sync_api import Page, expect

from accounts import channel_links
from accounts.deps import Actor, Deps
from console import auth
from console.app import create_app, prepare_database
from console.settings import load_console_settings
from supportbot.runner import free_port
from tests.console.test_links_page import (
    OWNER, SLACK, SLACK_CONVERSATION, TELEGRAM, _accounts, _link, _linked_conversation,
)
from tracking.db import make_engine, write_transaction

pytestmark = pytest.mark.slow

LEAD = "lead.browser@example.com"
PASSWORD = "a long passphrase for links"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Tuple[str, Deps, int, int]]:
    """(console URL, account store deps, account id, Telegram link id) with the console serving."""
    accounts_url, tracker_url = f"sqlite:///{tmp_path / 'accounts.db'}", f"sqlite:///{tmp_path / 'tracker.db'}"
    deps, account_id = _accounts(accounts_url)
    telegram_link = _link(deps, TELEGRAM, "tg")
    _link(deps, SLACK, "slack")
    with ThreadPoolExecutor(1) as worker:  # Playwright's loop runs in this thread: asyncio elsewhere
        worker.submit(_linked_conversation, tracker_url, account_id).result()
    engine = make_engine(tracker_url)
    prepare_database(engine)
    with write_transaction(engine) as conn:
        auth.create_lead(conn, LEAD, PASSWORD, now=0.0)
    settings = load_console_settings({"TRACKER_DB_URL": tracker_url, "ACCOUNTS_DB_URL": accounts_url})
    app = create_app(settings, engine, accounts=lambda: deps)
    port = free_port()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None)

    async def start() -> None:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=30)
    try:
        yield f"http://127.0.0.1:{port}", deps, account_id, telegram_link
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
        engine.dispose()


def test_a_lead_follows_a_linked_transcript_to_the_account_and_revokes_its_telegram_link(
        served: Tuple[str, Deps, int, int], page: Page, screenshot_path) -> None:
    base, deps, account_id, telegram_link = served
    page.goto(f"{base}/conversation?id={SLACK_CONVERSATION}")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.fill("input[name=email]", LEAD)
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('Sign in')")
    expect(page.locator("#customer-links")).to_have_text(f"{account_id} (via slack link)")

    page.click("#customer-links")
    expect(page.locator("#account")).to_contain_text(f"Account {account_id} · {OWNER}")
    expect(page.locator("tr[data-link][data-state=active]")).to_have_count(2)
    row = page.locator(f'tr[data-link="{telegram_link}"]')
    expect(row).to_contain_text("telegram")
    expect(row).to_contain_text("e-mailed code")

    row.locator("button:has-text('Revoke')").click()
    expect(page.locator("#done")).to_have_text("Link revoked: that chat no longer acts for the account.")
    expect(page.locator(f'tr[data-link="{telegram_link}"]')).to_have_attribute("data-state", "revoked")
    expect(page.locator(f'tr[data-link="{telegram_link}"] button')).to_have_count(0)
    expect(page.locator("tr[data-link][data-state=active] button:has-text('Revoke')")).to_have_count(1)
    page.screenshot(path=str(screenshot_path("console-links.png")), full_page=True)
    assert channel_links.find_linked_actor(deps, *TELEGRAM) is None
    assert channel_links.find_linked_actor(deps, *SLACK) == Actor(account_id, OWNER)
