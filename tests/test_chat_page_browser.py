"""A person chats with the assistant on the plain chat page, in a real browser."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import RunningAssistant

pytestmark = pytest.mark.slow



def test_a_person_asks_a_question_and_clicks_a_suggestion(assistant: RunningAssistant, page: Page,
                                                        screenshot_path):
    page.goto(assistant.web_url)
    page.fill("#message", "how do I add a colleague to my account?")
    page.press("#message", "Enter")
    expect(page.locator(".msg--bot").last).to_contain_text("Invite User")

    page.fill("#message", "switch it")
    page.click("button[type=submit]")
    expect(page.locator(".msg--bot").last).to_contain_text("Did you mean")
    suggestions = page.locator(".buttons button")
    expect(suggestions.first).to_be_visible()
    first_title = suggestions.first.inner_text()
    suggestions.first.click()
    expect(page.locator(".msg--user").last).to_have_text(first_title)
    expect(page.locator(".msg--bot").last).not_to_contain_text("Did you mean")
    page.screenshot(path=str(screenshot_path("chat-page.png")))


def test_text_from_the_assistant_is_never_run_as_html(assistant: RunningAssistant, page: Page):
    page.goto(assistant.web_url)
    page.fill("#message", "<img src=x onerror=\"document.title='pwned'\"> hello")
    page.press("#message", "Enter")
    expect(page.locator(".msg--bot")).to_have_count(1)
    assert page.title() != "pwned"
    assert page.locator(".msg--user img").count() == 0
