"""A person chats through the website widget (rasa-webchat) in headless Chromium."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator, List
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, expect

from actions import messages
from supportbot.runner import free_port
from channels.rest import verified_sender_id
from supportbot.portal_token import PortalTokenVerifier, development_secret
from supportbot.runner import wait_until_up
from supportbot.settings import PROJECT_ROOT
from tests.channels import scripted_widget_server as scripted
from tests.channels.conftest import ChannelAssistant
from tests.conftest import BROWSER_WAIT_MS, stop_process

pytestmark = pytest.mark.slow

REPLY_MS = BROWSER_WAIT_MS


def record_requests(page: Page) -> List[str]:
    """Every URL the page requests from now on (the page itself, scripts, sockets, images)."""
    urls: List[str] = []
    page.context.on("request", lambda request: urls.append(request.url))
    return urls


def off_machine(urls: List[str]) -> List[str]:
    return [url for url in urls if not url.startswith("data:")
            and urlsplit(url).hostname != "127.0.0.1"]


def sign_in(page: Page, account_id: str, email: str) -> None:
    """Use the page's demo sign-in (a stand-in for the portal's own)."""
    page.fill("#demo-login-form input[name=account_id]", account_id)
    page.fill("#demo-login-form input[name=email]", email)
    page.click("#demo-login-form button[type=submit]")
    expect(page.locator("#signed-in-as")).to_have_text(f"Signed in as {email}")


def ask(page: Page, text: str) -> None:
    page.fill(".rw-new-message", text)
    page.press(".rw-new-message", "Enter")


def test_a_customer_chats_in_the_widget_and_finds_the_conversation_after_a_reload(
    channels: ChannelAssistant, portal: PortalTokenVerifier, page: Page, screenshot_path
):
    urls = record_requests(page)
    page.goto(f"{channels.web_url}/widget")
    sign_in(page, "1", "clean@demo.example")
    page.click(".rw-launcher")
    bot = page.locator(".rw-response")
    expect(bot.first).to_contain_text("support assistant", timeout=REPLY_MS)

    ask(page, "what is two-factor authentication?")
    expect(bot.last).to_contain_text("one-time password", timeout=REPLY_MS)
    ask(page, "switch it")
    expect(bot.last).to_have_text(messages.CLARIFY_SUGGESTIONS, timeout=REPLY_MS)
    page.locator(".rw-replies .rw-reply", has_text="Something else").click()
    expect(page.locator(".rw-client").last).to_have_text("Something else")
    expect(bot.last).to_have_text(messages.CLARIFY_GAVE_UP, timeout=REPLY_MS)

    page.reload()
    expect(page.locator(".rw-conversation-container")).to_be_visible(timeout=REPLY_MS)
    expect(bot.filter(has_text="one-time password")).to_have_count(1)
    expect(page.locator(".rw-client", has_text="Something else")).to_have_count(1)
    ask(page, "which account types do you have?")
    expect(bot.last).to_contain_text("personal and business", timeout=REPLY_MS)
    page.wait_for_function("() => document.getAnimations().every(a => a.playState !== 'running')")
    page.screenshot(path=str(screenshot_path("widget.png")))

    conversation = channels.tracker_events(verified_sender_id("web", portal.verify(
        portal.issue("1", "clean@demo.example"))))
    said = [event["text"] for event in conversation if event["event"] == "user"]
    assert said[-2:] == ["/deny", "which account types do you have?"]
    assert "what is two-factor authentication?" in said
    assert off_machine(urls) == []
    socket_urls = [url for url in urls if "/socket.io/" in url]
    assert any("ticket=" in url for url in socket_urls)  # signed in: a connect ticket
    assert not [url for url in urls if "token=" in url]  # the portal token is in no URL


def test_a_forged_token_cannot_connect(channels: ChannelAssistant, page: Page):
    forged = PortalTokenVerifier("forged-secret-" + "f" * 32).issue("1", "clean@demo.example")
    page.route("**/widget/demo-login", lambda route: route.fulfill(json={
        "token": forged, "account_id": "1", "email": "clean@demo.example"}))
    page.goto(f"{channels.web_url}/widget")
    sign_in(page, "1", "clean@demo.example")
    expect(page.locator("#widget-status")).to_contain_text(
        "could not connect: your sign-in is not valid", timeout=REPLY_MS)
    page.click(".rw-launcher")
    expect(page.locator(".rw-response")).to_have_count(0)
    assert forged not in channels.log_text()


@pytest.fixture(scope="module")
def scripted_widget(tmp_path_factory) -> Iterator[str]:
    """A chat page whose widget talks to the real channel in front of a scripted assistant."""
    socket_port, web_port = free_port(), free_port()
    web_url = f"http://127.0.0.1:{web_port}"
    env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT), WEB_PORT=str(web_port),
               WIDGET_SOCKET_URL=f"http://127.0.0.1:{socket_port}")
    env.pop("WIDGET_DEMO_LOGIN", None)
    log = open(Path(tmp_path_factory.mktemp("scripted")) / "servers.log", "wb")
    processes = [
        subprocess.Popen([sys.executable, "-m", "tests.channels.scripted_widget_server",
                          str(socket_port), web_url], cwd=PROJECT_ROOT, env=env,
                         stdout=log, stderr=subprocess.STDOUT),
        subprocess.Popen([sys.executable, "-m", "supportbot.chatpage"], cwd=PROJECT_ROOT,
                         env=env, stdout=log, stderr=subprocess.STDOUT),
    ]
    try:
        assert wait_until_up([f"http://127.0.0.1:{socket_port}/webhooks/socketio/",
                              f"{web_url}/healthz"], timeout=60, processes=processes)
        yield web_url
    finally:
        for process in processes:
            stop_process(process)
        log.close()


def test_links_images_buttons_and_quick_replies_render(scripted_widget: str, page: Page):
    urls = record_requests(page)
    page.goto(f"{scripted_widget}/widget")
    page.click(".rw-launcher")
    expect(page.locator(".rw-response").first).to_have_text(scripted.GREETING, timeout=REPLY_MS)

    ask(page, "show me everything")
    expect(page.locator(f".rw-response a[href='{scripted.GUIDE_URL}']")).to_be_visible(timeout=REPLY_MS)
    expect(page.locator("img.rw-image-frame")).to_have_attribute("src", scripted.IMAGE,
                                                                  timeout=REPLY_MS)
    expect(page.locator(".rw-reply", has_text="Yes")).to_be_visible(timeout=REPLY_MS)
    expect(page.locator(f"a.rw-reply[href='{scripted.HELP_CENTRE_URL}']")).to_have_text(
        "Open the help centre")
    expect(page.locator(".rw-reply", has_text="Talk to support")).to_be_visible(timeout=REPLY_MS)

    page.locator(".rw-reply", has_text="No, thanks").click()
    expect(page.locator(".rw-response").last).to_have_text("You picked /deny", timeout=REPLY_MS)
    expect(page.locator(".rw-reply", has_text="Talk to support")).to_have_count(0)
    assert off_machine(urls) == []


def start_scripted_socket_server(port: int, web_url: str, env: dict, log) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.channels.scripted_widget_server",
                             str(port), web_url], cwd=PROJECT_ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)


def test_a_signed_in_customer_chats_on_after_the_socket_server_restarts(tmp_path, page: Page):
    """The reconnection's ticket was used (remembered in Redis): the page fetches a fresh one."""
    socket_port, web_port = free_port(), free_port()
    web_url, socket_url = f"http://127.0.0.1:{web_port}", f"http://127.0.0.1:{socket_port}"
    env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT), WEB_PORT=str(web_port),
               WIDGET_SOCKET_URL=socket_url, WIDGET_DEMO_LOGIN="1",
               PORTAL_TOKEN_SECRET=development_secret(create=True), REDIS_URL="redis://127.0.0.1:6379/0")
    log = open(tmp_path / "servers.log", "wb")
    socket_server = start_scripted_socket_server(socket_port, web_url, env, log)
    chat_page = subprocess.Popen([sys.executable, "-m", "supportbot.chatpage"], cwd=PROJECT_ROOT,
                                 env=env, stdout=log, stderr=subprocess.STDOUT)
    health = f"{socket_url}/webhooks/socketio/"
    try:
        assert wait_until_up([health, f"{web_url}/healthz"], timeout=60,
                             processes=[socket_server, chat_page])
        page.goto(f"{web_url}/widget")
        sign_in(page, "1", "clean@demo.example")
        page.click(".rw-launcher")
        expect(page.locator(".rw-response").first).to_have_text(scripted.GREETING, timeout=REPLY_MS)
        urls = record_requests(page)  # from the first connection on

        stop_process(socket_server)
        socket_server = start_scripted_socket_server(socket_port, web_url, env, log)
        assert wait_until_up([health], timeout=60, processes=[socket_server])
        ask(page, "show me everything")
        expect(page.locator(f".rw-response a[href='{scripted.GUIDE_URL}']")).to_be_visible(
            timeout=REPLY_MS)
        assert [url for url in urls if url.endswith("/webhooks/socketio/ticket")]  # a fresh ticket
        expect(page.locator("#widget-status")).not_to_contain_text("could not connect")
    finally:
        stop_process(socket_server)
        stop_process(chat_page)
        log.close()
