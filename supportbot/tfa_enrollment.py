"""The TFA enrolment page and the "this was not me" page, served by the chat page server.

After a lost-app recovery (:mod:`accounts.tfa_recovery`) the customer gets an
e-mail with ``/tfa/enroll?token=...`` (single use, 15 minutes). This module
serves it:

* ``GET /tfa/enroll?token=...`` shows the new secret as a QR code (inline SVG
  made here with segno; nothing is loaded from anywhere) and as text, and a
  form for the first code of the new app. Nothing is activated by a GET, and
  the same secret is shown again on reload (mail scanners open links too).
* ``POST /tfa/enroll`` activates the secret only with a valid code; the
  answer page shows the 10 fresh recovery codes, once.
* ``GET /tfa/not-me?token=...`` asks for confirmation; ``POST /tfa/not-me``
  records the report (pending enrolment links are revoked, support is told).

Protection: every POST carries a form token, HMAC-SHA256 under a server key of
the link's token, checked in constant time (a page elsewhere can neither read
nor forge it); a POST whose ``Origin`` is another site, or whose
``Sec-Fetch-Site`` says cross-site, is refused as well. Every answer is ``Cache-Control: no-store`` with ``Referrer-Policy:
no-referrer``, a strict Content-Security-Policy (no scripts, styles only by
nonce, forms only to this server, no framing) and ``X-Frame-Options: DENY``.
Nothing here logs tokens, codes or secrets; the domain calls run in a worker
thread.

Settings: ``TFA_FORM_KEY`` (any long random string) signs the form tokens; if
it is unset a random key is made per process, which is fine for one process
(a form then only works with the process that rendered it). The account store
comes from ``ACCOUNTS_DB_URL`` like everywhere else; the link in the e-mail is
built from ``ACCOUNTS_ENROLLMENT_BASE_URL`` (see accounts/settings.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import logging
import os
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Tuple
from urllib.parse import urlsplit

import segno
from aiohttp import web

from accounts import tfa_recovery
from accounts.deps import Deps
from accounts.results import EnrollmentStarted, NotMeReported, Reason, Refused, Result, TfaEnrolled

logger = logging.getLogger("supportbot.tfa_enrollment")

ENROLL_PATH = "/tfa/enroll"
NOT_ME_PATH = "/tfa/not-me"
FORM_KEY_ENV = "TFA_FORM_KEY"
MAX_TOKEN_CHARS = 200
MAX_CODE_CHARS = 20

_TOKEN_PROBLEMS: Dict[Reason, Tuple[int, str, str]] = {
    Reason.INVALID_TOKEN: (404, "This link is not valid",
                           "Check that you opened the whole link from the e-mail."),
    Reason.TOKEN_EXPIRED: (410, "This link has expired",
                           "For your safety the link worked for 15 minutes only. Ask the assistant again "
                           "that you lost your authenticator app to get a new one."),
    Reason.TOKEN_USED: (410, "This link was already used",
                        "Each link works once. If you did not use it, contact support at once."),
    Reason.TOKEN_REVOKED: (410, "This link was cancelled",
                           "A newer link was sent, or someone reported that this reset was not them. "
                           "Ask the assistant again or contact support."),
}

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;background:#f4f5f7;color:#1d2330}
main{max-width:34rem;margin:2rem auto;background:#fff;padding:1.5rem 2rem;border-radius:8px;
box-shadow:0 1px 3px rgba(0,0,0,.12)}
h1{font-size:1.4rem;margin-top:0}
.qr{display:block;margin:1rem auto;background:#fff}
.secret,.codes{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:1.1rem;letter-spacing:.05em}
.secret{background:#eef1f5;padding:.5rem;border-radius:4px;word-break:break-all;text-align:center}
.codes{columns:2;padding-left:2.5rem}
label{display:block;margin-top:1rem;font-weight:600}
input[type=text]{font-size:1.4rem;width:8em;padding:.3rem;letter-spacing:.2em}
button{margin-top:1rem;font-size:1rem;padding:.5rem 1.2rem;border:0;border-radius:4px;background:#2457c5;
color:#fff;cursor:pointer}
.error{color:#a11;font-weight:600}
.note{color:#555;font-size:.9rem}
"""


# --------------------------------------------------------------------------- set-up


@dataclass
class TfaPages:
    """What the handlers need: the account store and the form-token key."""

    deps_factory: Callable[[], Deps]
    form_key: bytes
    _deps: Optional[Deps] = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def deps(self) -> Deps:
        """The account store's dependencies, built on first use (never at import or start-up)."""
        with self._lock:
            if self._deps is None:
                self._deps = self.deps_factory()
            return self._deps

    def form_token(self, purpose: str, token: str) -> str:
        """The form token of a page for one link token (HMAC of the token's digest)."""
        digest = hashlib.sha256(token.encode("utf-8")).hexdigest()
        return hmac.new(self.form_key, f"{purpose}:{digest}".encode(), hashlib.sha256).hexdigest()

    def form_token_ok(self, purpose: str, token: str, submitted: str) -> bool:
        """Whether a submitted form token belongs to this link token (constant time)."""
        return hmac.compare_digest(self.form_token(purpose, token).encode(), submitted.encode())


APP_KEY: "web.AppKey[TfaPages]" = web.AppKey("tfa_pages", TfaPages)


def _default_deps() -> Deps:
    from accounts.db import make_session_factory
    from accounts.settings import Settings

    return Deps(session_factory=make_session_factory(), settings=Settings.from_env())


def _form_key(environ: Mapping[str, str]) -> bytes:
    configured = environ.get(FORM_KEY_ENV)
    if configured:
        if len(configured.encode()) < 32:
            raise ValueError(f"{FORM_KEY_ENV} must be at least 32 bytes")
        return configured.encode()
    return secrets.token_bytes(32)


def add_tfa_routes(
    app: web.Application,
    deps: Optional[Deps] = None,
    *,
    form_key: Optional[bytes] = None,
    environ: Optional[Mapping[str, str]] = None,
) -> None:
    """Register ``/tfa/enroll`` and ``/tfa/not-me`` (GET and POST) on ``app``.

    Args:
        app: The aiohttp application (the chat page server's).
        deps: The account store's dependencies; default: built on first
            request from ``ACCOUNTS_DB_URL`` and the ``ACCOUNTS_*`` settings.
        form_key: Key of the form tokens; default ``TFA_FORM_KEY`` or random.
        environ: Environment to read (default ``os.environ``).
    """
    env = os.environ if environ is None else environ
    app[APP_KEY] = TfaPages(
        deps_factory=(lambda: deps) if deps is not None else _default_deps,
        form_key=form_key or _form_key(env),
    )
    app.router.add_get(ENROLL_PATH, enroll_page)
    app.router.add_post(ENROLL_PATH, enroll_submit)
    app.router.add_get(NOT_ME_PATH, not_me_page)
    app.router.add_post(NOT_ME_PATH, not_me_submit)


# --------------------------------------------------------------------------- rendering


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _page(title: str, body: str, *, status: int = 200) -> web.Response:
    nonce = secrets.token_urlsafe(16)
    document = (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        "<meta name=\"robots\" content=\"noindex\">"
        f"<title>{_e(title)}</title><style nonce=\"{nonce}\">{_CSS}</style></head>"
        f"<body><main>{body}</main></body></html>"
    )
    response = web.Response(text=document, status=status, content_type="text/html", charset="utf-8")
    response.headers.update({
        "Cache-Control": "no-store",
        "Pragma": "no-cache",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": (
            f"default-src 'none'; style-src 'nonce-{nonce}'; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        ),
    })
    return response


def _problem(reason: Reason) -> web.Response:
    status, title, advice = _TOKEN_PROBLEMS.get(
        reason, (400, "This link cannot be used", "Ask the assistant again or contact support."))
    return _page(title, f"<h1>{_e(title)}</h1><p>{_e(advice)}</p>", status=status)


def qr_svg(uri: str) -> str:
    """The ``otpauth://`` URI as an inline SVG QR code (no external resources)."""
    return segno.make(uri, error="m", micro=False).svg_inline(
        scale=5, border=4, dark="#000", light="#fff", svgclass="qr",
        title="QR code for your authenticator app")


def _grouped(secret: str) -> str:
    return " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))


def _hidden(fields: Iterable[Tuple[str, str]]) -> str:
    return "".join(f'<input type="hidden" name="{_e(k)}" value="{_e(v)}">' for k, v in fields)


def _enroll_form(pages: TfaPages, token: str, started: EnrollmentStarted, *, error: str = "",
                 status: int = 200) -> web.Response:
    assert started.secret and started.provisioning_uri
    attempt = secrets.token_urlsafe(16)
    body = (
        "<h1>Set up your new authenticator app</h1>"
        f"<p>For <strong>{_e(started.member_email)}</strong>. Scan the code with your authenticator app "
        "(or type the key below), then enter the 6-digit code the app shows.</p>"
        f"{qr_svg(started.provisioning_uri)}"
        f"<p>Key: </p><p class=\"secret\" id=\"secret\">{_e(_grouped(started.secret))}</p>"
        "<p class=\"note\">Two-factor authentication stays off until you enter a code from the new app. "
        f"This page works until {_e(started.expires_at.strftime('%H:%M UTC'))}. "
        "Keep the key to yourself: we will never ask for it in a chat.</p>"
        + (f"<p class=\"error\" role=\"alert\" id=\"error\">{_e(error)}</p>" if error else "")
        + f"<form method=\"post\" action=\"{ENROLL_PATH}\" autocomplete=\"off\">"
        + _hidden([("token", token), ("form_token", pages.form_token("enroll", token)), ("attempt", attempt)])
        + "<label for=\"code\">Code from the app</label>"
          "<input type=\"text\" id=\"code\" name=\"code\" inputmode=\"numeric\" pattern=\"[0-9 ]{6,7}\" "
          "maxlength=\"7\" autocomplete=\"one-time-code\" required autofocus>"
          "<button type=\"submit\">Turn on two-factor authentication</button></form>"
    )
    return _page("Set up your authenticator app", body, status=status)


def _enrolled(result: TfaEnrolled) -> web.Response:
    if not result.recovery_codes:  # an exact repeat of the submission: the codes were shown already
        return _page("Two-factor authentication is on", (
            "<h1>Two-factor authentication is on</h1><p>Your new authenticator app is active. The recovery "
            "codes were shown once, on the page that turned it on.</p>"))
    codes = "".join(f"<li>{_e(c)}</li>" for c in result.recovery_codes)
    return _page("Two-factor authentication is on", (
        "<h1>Two-factor authentication is on</h1>"
        f"<p>Your new authenticator app is active for <strong>{_e(result.member_email)}</strong>.</p>"
        "<h2>Your recovery codes</h2><p>Save them somewhere safe now (print them or use a password manager). "
        "Each works once if you lose your app again. <strong>They will not be shown again.</strong></p>"
        f"<ol class=\"codes\" id=\"recovery-codes\">{codes}</ol>"
        "<p class=\"note\">Your old recovery codes no longer work.</p>"))


# --------------------------------------------------------------------------- handlers


def _same_origin(request: web.Request) -> bool:
    """Whether the browser says the POST comes from this server's own page.

    With ``Referrer-Policy: no-referrer`` Chromium sends ``Origin: null`` for
    our own form, so ``null`` and a missing header pass here (the form token
    is the real check); another origin, or ``Sec-Fetch-Site`` other than
    ``same-origin``/``none``, does not.
    """
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return True
    return urlsplit(origin).netloc == request.host


async def _form(request: web.Request) -> Dict[str, str]:
    data = await request.post()
    return {k: v for k, v in data.items() if isinstance(v, str)}


def _token_from(value: Optional[str]) -> Optional[str]:
    if not value or len(value) > MAX_TOKEN_CHARS:
        return None
    return value


async def enroll_page(request: web.Request) -> web.Response:
    """GET: show the new secret (QR + text) and the code form."""
    pages: TfaPages = request.app[APP_KEY]
    token = _token_from(request.query.get("token"))
    if token is None:
        return _problem(Reason.INVALID_TOKEN)
    result: Result = await asyncio.to_thread(
        tfa_recovery.begin_enrollment, pages.deps(), token=token,
        idempotency_key=f"web:tfa-enroll-view:{secrets.token_hex(16)}")
    if isinstance(result, Refused):
        logger.info("TFA enrolment page refused: %s", result.reason.value)
        return _problem(result.reason)
    assert isinstance(result, EnrollmentStarted)
    return _enroll_form(pages, token, result)


async def enroll_submit(request: web.Request) -> web.Response:
    """POST: activate the new app with its first code; show the recovery codes once."""
    pages: TfaPages = request.app[APP_KEY]
    form = await _form(request)
    token = _token_from(form.get("token"))
    if token is None:
        return _problem(Reason.INVALID_TOKEN)
    attempt = form.get("attempt", "")
    if (not _same_origin(request) or not pages.form_token_ok("enroll", token, form.get("form_token", ""))
            or not attempt or len(attempt) > 64):
        logger.warning("TFA enrolment form rejected: bad form token or origin")
        return _page("Please start again", "<h1>Please start again</h1><p>This form could not be checked. "
                     "Open the link from the e-mail again.</p>", status=403)
    code = form.get("code", "")[:MAX_CODE_CHARS]
    deps = pages.deps()
    result = await asyncio.to_thread(tfa_recovery.complete_enrollment, deps, token=token, code=code,
                                     idempotency_key=f"web:tfa-enroll:{attempt}")
    if isinstance(result, TfaEnrolled):
        logger.info("TFA enrolment completed")
        return _enrolled(result)
    assert isinstance(result, Refused)
    logger.info("TFA enrolment code refused: %s", result.reason.value)
    if result.reason in _TOKEN_PROBLEMS:
        return _problem(result.reason)
    if result.reason == Reason.TOO_MANY_ATTEMPTS:
        error, status = (f"Too many wrong codes. Wait {result.details.get('retry_after_seconds', 30)} seconds, "
                         "then enter the code the app shows at that moment."), 429
    elif result.reason == Reason.CODE_INVALID:
        error, status = "That code did not match. Enter the code the app shows now (it changes every 30 seconds).", 400
        if result.details.get("retry_after_seconds"):
            error += f" Wait {result.details['retry_after_seconds']} seconds before the next try."
    else:
        error, status = "That did not work. Please try again.", 400
    again = await asyncio.to_thread(tfa_recovery.begin_enrollment, deps, token=token,
                                    idempotency_key=f"web:tfa-enroll-view:{secrets.token_hex(16)}")
    if isinstance(again, Refused):
        return _problem(again.reason)
    assert isinstance(again, EnrollmentStarted)
    return _enroll_form(pages, token, again, error=error, status=status)


async def not_me_page(request: web.Request) -> web.Response:
    """GET: ask to confirm the report (a GET changes nothing: mail scanners open links)."""
    pages: TfaPages = request.app[APP_KEY]
    token = _token_from(request.query.get("token"))
    if token is None:
        return _problem(Reason.INVALID_TOKEN)
    problem = await asyncio.to_thread(tfa_recovery.check_report_token, pages.deps(), token)
    if problem is not None:
        return _problem(problem)
    event = await asyncio.to_thread(tfa_recovery.report_event, pages.deps(), token)
    if event == "channel_linked":
        title, text, button = "Unlink a chat", (
            "A chat was linked to your account with the code we e-mailed you. If this wasn't you, "
            "unlink it: we remove every chat linked to your account and our support team contacts "
            "you."), "This wasn't me: unlink"
    else:
        title, text, button = "Report a TFA reset", (
            "Two-factor authentication on your account was reset after a lost-app request. If you did "
            "not ask for this, report it: we stop the pending reset and our support team contacts "
            "you."), "This was not me"
    body = (
        "<h1>Was this not you?</h1>"
        f"<p>{_e(text)}</p>"
        f"<form method=\"post\" action=\"{NOT_ME_PATH}\">"
        + _hidden([("token", token), ("form_token", pages.form_token("not-me", token))])
        + f"<button type=\"submit\">{_e(button)}</button></form>"
    )
    return _page(title, body)


async def not_me_submit(request: web.Request) -> web.Response:
    """POST: record the report and confirm it with the support reference."""
    pages: TfaPages = request.app[APP_KEY]
    form = await _form(request)
    token = _token_from(form.get("token"))
    if token is None:
        return _problem(Reason.INVALID_TOKEN)
    if not _same_origin(request) or not pages.form_token_ok("not-me", token, form.get("form_token", "")):
        logger.warning("TFA report form rejected: bad form token or origin")
        return _page("Please start again", "<h1>Please start again</h1><p>Open the link from the e-mail "
                     "again.</p>", status=403)
    key = "web:tfa-not-me:" + hashlib.sha256(token.encode()).hexdigest()[:40]
    result = await asyncio.to_thread(tfa_recovery.report_not_me, pages.deps(), token=token, idempotency_key=key)
    if isinstance(result, Refused):
        logger.info("TFA report refused: %s", result.reason.value)
        return _problem(result.reason)
    assert isinstance(result, NotMeReported)
    logger.info("TFA reset reported as not me: %s", result.reference)
    return _page("Thank you", (
        "<h1>Thank you, we are on it</h1>"
        "<p>We stopped the pending reset and unlinked every chat. Our support team will contact you; "
        "your reference is "
        f"<strong id=\"reference\">{_e(result.reference)}</strong>.</p>"
        "<p class=\"note\">If you can still sign in, change your password now.</p>"))
