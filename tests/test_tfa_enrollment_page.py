"""The TFA enrolment and "not me" pages on the real chat page app, with real codes from pyotp.

The chat page server (supportbot.chatpage.create_app, which registers the
routes) runs in a thread on a free port against a migrated SQLite account
store; the customer's side is plain HTTP (requests) and a real browser
(Playwright with Debian's Chromium).
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from datetime import datetime, timedelta, timezone
from html import unescape
from typing import Iterator, List, Tuple
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest
import requests
import sqlalchemy as sa
from aiohttp import web

from accounts import tfa_recovery
from accounts.db import make_session_factory, upgrade, write_session
from accounts.demo import demo_account_id, load_demo
from accounts.deps import Actor, Deps
from accounts.models import OutboxNotification, TfaEnrolment, TfaEnrollmentToken, TfaRecoveryCode
from accounts.security import hash_secret
from accounts.settings import Settings
from supportbot.runner import free_port
from supportbot.chatpage import create_app
from supportbot.settings import load_settings
from tests.secret_scan import contains_secret

DEMO = "tfa@demo.example"


class Server:
    """The chat page app on 127.0.0.1:<free port>, its account store, and helpers to recover TFA."""

    def __init__(self, url: str, deps: Deps) -> None:
        self.url = url
        self.deps = deps
        self._n = 0

    def key(self) -> str:
        self._n += 1
        return f"page-test-{self._n}"

    def mails(self, kind: str) -> List[OutboxNotification]:
        with self.deps.session_factory() as s:
            return list(s.execute(sa.select(OutboxNotification).where(OutboxNotification.kind == kind)
                                  .order_by(OutboxNotification.id)).scalars())

    def recover(self) -> Tuple[str, str]:
        """Lose the demo app and recover; return (enrolment link path, "not me" link path).

        Earlier tests may have used the demo's recovery codes or enrolled a new
        app, so a known recovery code is added to the enrolment first.
        """
        actor = Actor(demo_account_id(self.deps.session_factory, DEMO), DEMO)
        recovery_code = f"TEST-RECOVERY-{self.key()}"
        with write_session(self.deps.session_factory) as s:
            enrolment_id = s.execute(sa.select(TfaEnrolment.id)).scalar_one()
            s.add(TfaRecoveryCode(enrolment_id=enrolment_id, code_hash=hash_secret(recovery_code.upper())))
        assert tfa_recovery.start_tfa_recovery(self.deps, actor, idempotency_key=self.key()).ok
        code = self.mails("verification_code")[-1].payload["secret_code"]
        assert tfa_recovery.complete_tfa_recovery(self.deps, actor, recovery_code=recovery_code, email_code=code,
                                                  idempotency_key=self.key()).ok
        enroll = self.mails("tfa_enrollment_link")[-1].payload["secret_link"]
        report = self.mails("tfa_reset")[-1].payload["secret_report_link"]
        return _path(enroll), _path(report)

    def enrolment(self) -> TfaEnrolment:
        with self.deps.session_factory() as s:
            return s.execute(sa.select(TfaEnrolment)).scalars().one()


def _path(link: str) -> str:
    parts = urlsplit(link)
    return f"{parts.path}?{parts.query}"


def _token(path: str) -> str:
    return parse_qs(urlsplit(path).query)["token"][0]


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("tfa-page")
    url = f"sqlite:///{tmp / 'accounts.db'}"
    upgrade(url)
    factory = make_session_factory(url)
    load_demo(factory)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    deps = Deps(session_factory=factory, settings=Settings(enrollment_base_url=base, code_send_limit=100))
    env = {"ACCOUNTS_DB_URL": url, "WEB_PORT": str(port)}

    import os
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the page builds its own Deps from ACCOUNTS_DB_URL, as in production
    app = create_app(load_settings())
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield Server(base, deps)
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _fields(page: str) -> dict:
    return {m.group(1): unescape(m.group(2))
            for m in re.finditer(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page)}


def _secret(page: str) -> str:
    return re.search(r'id="secret">([A-Z2-7 ]+)<', page).group(1).replace(" ", "")


def _assert_private(response: requests.Response) -> None:
    headers = response.headers
    assert headers["Cache-Control"] == "no-store"
    assert headers["Referrer-Policy"] == "no-referrer"
    csp = headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "form-action 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "script" not in response.text.lower()
    assert not re.search(r'\b(?:src|href)=', response.text) and "url(" not in response.text


def _now_code(secret: str) -> str:
    return pyotp.TOTP(secret).now()


# --------------------------------------------------------------------------- HTTP


def test_the_page_shows_qr_and_secret_and_activates_only_with_a_valid_code(server, caplog):
    caplog.set_level(logging.DEBUG)
    enroll, _ = server.recover()
    token = _token(enroll)

    shown = requests.get(server.url + enroll, timeout=10)
    assert shown.status_code == 200
    _assert_private(shown)
    assert '<svg' in shown.text and 'class="qr"' in shown.text
    secret = _secret(shown.text)
    with server.deps.session_factory() as s:
        assert s.execute(sa.select(TfaEnrollmentToken.pending_secret)).scalars().all()[-1] == secret
    assert _secret(requests.get(server.url + enroll, timeout=10).text) == secret
    assert not server.enrolment().enabled

    form = _fields(shown.text)
    wrong = "000000" if _now_code(secret) != "000000" else "111111"
    refused = requests.post(server.url + "/tfa/enroll", data={**form, "code": wrong}, timeout=10)
    assert refused.status_code == 400 and "did not match" in refused.text
    _assert_private(refused)
    assert not server.enrolment().enabled

    form = _fields(refused.text)
    code = _now_code(secret)
    done = requests.post(server.url + "/tfa/enroll", data={**form, "code": code}, timeout=10)
    assert done.status_code == 200, done.text
    _assert_private(done)
    codes = re.findall(r"<li>([A-Z2-9-]+)</li>", done.text)
    assert len(codes) == 10 and "will not be shown again" in done.text
    enrolment = server.enrolment()
    assert enrolment.enabled and enrolment.secret == secret
    with server.deps.session_factory() as s:
        stored = set(s.execute(sa.select(TfaRecoveryCode.code_hash).where(
            TfaRecoveryCode.enrolment_id == enrolment.id)).scalars())
    assert stored == {hash_secret(c) for c in codes}

    # the same form again: no codes shown a second time; the link is used up
    repeat = requests.post(server.url + "/tfa/enroll", data={**form, "code": code}, timeout=10)
    assert repeat.status_code == 200 and not re.findall(r"<li>([A-Z2-9-]+)</li>", repeat.text)
    used = requests.get(server.url + enroll, timeout=10)
    assert used.status_code == 410 and "already used" in used.text

    # what the server side logged (the test's own HTTP client logs its URLs: not the server's business)
    logged = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("urllib3"))
    assert "TFA enrolment completed" in logged
    for secret_value in [token, secret, code, wrong, *codes]:
        assert not contains_secret(logged, secret_value)


def test_posts_without_the_right_form_token_or_from_another_origin_are_refused(server):
    enroll, _ = server.recover()
    form = _fields(requests.get(server.url + enroll, timeout=10).text)
    secret = _secret(requests.get(server.url + enroll, timeout=10).text)
    code = _now_code(secret)

    forged = requests.post(server.url + "/tfa/enroll", data={**form, "form_token": "0" * 64, "code": code},
                           timeout=10)
    missing = requests.post(server.url + "/tfa/enroll", data={"token": form["token"], "code": code}, timeout=10)
    cross = requests.post(server.url + "/tfa/enroll", data={**form, "code": code},
                          headers={"Origin": "https://evil.example"}, timeout=10)
    cross_site = requests.post(server.url + "/tfa/enroll", data={**form, "code": code},
                               headers={"Sec-Fetch-Site": "cross-site", "Origin": "null"}, timeout=10)

    assert [r.status_code for r in (forged, missing, cross, cross_site)] == [403, 403, 403, 403]
    assert not server.enrolment().enabled


def test_expired_and_unknown_links_get_a_clear_page(server):
    enroll, _ = server.recover()
    with write_session(server.deps.session_factory) as s:
        s.execute(sa.update(TfaEnrollmentToken).where(TfaEnrollmentToken.token_hash == hash_secret(_token(enroll)))
                  .values(expires_at=datetime.now(timezone.utc) - timedelta(seconds=1)))

    expired = requests.get(server.url + enroll, timeout=10)
    unknown = requests.get(server.url + "/tfa/enroll?token=not-a-real-token", timeout=10)
    bare = requests.get(server.url + "/tfa/enroll", timeout=10)

    assert expired.status_code == 410 and "expired" in expired.text
    assert unknown.status_code == 404 and bare.status_code == 404
    _assert_private(expired)


def test_not_me_asks_first_then_reports_once(server):
    enroll, report = server.recover()

    ask = requests.get(server.url + report, timeout=10)
    assert ask.status_code == 200 and "This was not me" in ask.text
    _assert_private(ask)
    assert requests.get(server.url + enroll, timeout=10).status_code == 200  # a GET changed nothing

    forged = requests.post(server.url + "/tfa/not-me", data={"token": _token(report), "form_token": "x"},
                           timeout=10)
    assert forged.status_code == 403
    done = requests.post(server.url + "/tfa/not-me", data=_fields(ask.text), timeout=10)
    assert done.status_code == 200 and re.search(r"SR-\d{6}", done.text)
    assert requests.get(server.url + enroll, timeout=10).status_code == 410  # pending link revoked
    assert requests.get(server.url + report, timeout=10).status_code == 410


def test_the_channel_linked_mail_unlinks_with_one_confirmed_click(server):
    """Issue #12: the ``channel_linked`` notice carries "this wasn't me: unlink"."""
    from accounts import channel_links

    chat = ("slack", f"T1:U{server.key()}")
    channel_links.request_link(server.deps, channel=chat[0], channel_user_id=chat[1],
                               email="clean@demo.example", idempotency_key=server.key())
    with server.deps.session_factory() as s:
        code = s.execute(sa.select(OutboxNotification.payload).where(
            OutboxNotification.kind == "verification_code").order_by(OutboxNotification.id.desc())
        ).scalars().first()["secret_code"]
    assert channel_links.confirm_link(server.deps, channel=chat[0], channel_user_id=chat[1], code=code,
                                      idempotency_key=server.key()).ok
    notice = server.mails("channel_linked")[-1].payload
    assert notice["channel"] == "slack"
    unlink = notice["secret_report_link"][len(server.url):]

    ask = requests.get(server.url + unlink, timeout=10)
    assert ask.status_code == 200 and "This wasn&#x27;t me: unlink" in ask.text
    assert channel_links.find_linked_actor(server.deps, *chat) is not None  # a GET changed nothing
    done = requests.post(server.url + "/tfa/not-me", data=_fields(ask.text), timeout=10)

    assert done.status_code == 200 and re.search(r"SR-\d{6}", done.text)
    assert channel_links.find_linked_actor(server.deps, *chat) is None


# --------------------------------------------------------------------------- browser


@pytest.mark.slow
def test_a_customer_enrols_a_new_app_in_a_browser(server, page, screenshot_path):
    from playwright.sync_api import expect

    enroll, _ = server.recover()
    page.goto(server.url + enroll)
    expect(page.locator("svg.qr")).to_be_visible()
    secret = page.locator("#secret").inner_text().replace(" ", "")
    assert len(secret) == 32
    page.screenshot(path=str(screenshot_path("tfa-enroll.png")), full_page=True)

    page.fill("#code", "000000" if _now_code(secret) != "000000" else "111111")
    page.click("button[type=submit]")
    expect(page.locator("#error")).to_contain_text("did not match")

    page.fill("#code", _now_code(secret))
    page.click("button[type=submit]")
    expect(page.locator("#recovery-codes li")).to_have_count(10)
    assert server.enrolment().enabled
    page.goto(server.url + enroll)  # the link is used up
    expect(page.locator("h1")).to_contain_text("already used")
