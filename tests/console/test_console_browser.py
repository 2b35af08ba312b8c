"""A support lead uses the review console in a real browser (headless Debian Chromium)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.console.conftest import HANDED_OFF, LEAD_EMAIL, LEAD_PASSWORD, ConsoleUnderTest

pytestmark = pytest.mark.slow



def test_a_lead_signs_in_filters_opens_a_transcript_tags_it_and_exports(console: ConsoleUnderTest, page: Page,
                                                                         screenshot_path):
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{console.url}/conversations")
    expect(page).to_have_url(re.compile(r"/login\?next=/conversations$"))
    page.fill("input[name=email]", LEAD_EMAIL)
    page.fill("input[name=password]", LEAD_PASSWORD)
    page.click("button:has-text('Sign in')")
    expect(page.locator("h1")).to_have_text("Conversations")

    page.check("input[name=handoff]")
    page.click("button:has-text('Apply filters')")
    expect(page.locator("#result-count")).to_have_text(f"{len(HANDED_OFF)} conversations match the filters")
    refused = console.senders["refused"]
    expect(page.locator("tr[data-sender]")).to_have_count(len(HANDED_OFF))

    page.click(f'tr[data-sender="{refused}"] .conv a')
    expect(page.locator("h1")).to_contain_text("Conversation")
    expect(page.locator(".facts")).to_contain_text(str(console.accounts["refused"]))
    expect(page.locator(".mark--refused")).to_contain_text("close_account refused (unpaid_invoices)")
    expect(page.locator(".mark--support")).to_be_visible()

    page.fill("input[name=tag]", "Billing block")
    page.click("button:has-text('Add tag')")
    expect(page.locator(".flash")).to_have_text("Tag added.")
    expect(page.locator(".tags .tag")).to_have_text(["billing-block"])
    expect(page.locator(".activity")).to_contain_text(f"{LEAD_EMAIL}: tag added billing-block")
    if console.backend == "sqlite":
        page.screenshot(path=str(screenshot_path("console.png")), full_page=True)

    page.click("text=← Back to the list")
    expect(page.locator("#result-count")).to_have_text(f"{len(HANDED_OFF)} conversations match the filters")
    with page.expect_download() as download:
        page.click("a:has-text('CSV')")
    rows = list(csv.DictReader(Path(download.value.path()).read_text().splitlines()))
    assert {r["conversation_id"] for r in rows} == {console.senders[name] for name in HANDED_OFF}
    assert next(r for r in rows if r["conversation_id"] == refused)["tags"] == "billing-block"

    page.click("nav >> text=Dashboard")
    expect(page.locator(".chart[data-chart=columns][data-drawn=true] rect.bar").last).to_be_visible()  # today
    expect(page.locator(".chart[data-chart=stacked] rect.bar--refused")).to_have_count(1)
