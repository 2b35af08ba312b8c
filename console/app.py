"""The console's web application (aiohttp).

Every page and action needs a signed-in support lead, except the sign-in page,
the health check and the style sheet. Every state-changing request (POST) must
carry the session's CSRF token (form field ``csrf_token`` or header
``X-CSRF-Token``) and, when the browser sends an ``Origin``, come from the
console's own origin. Database work runs in worker threads, so a slow query
never blocks other requests.
"""

from __future__ import annotations

import asyncio
import csv
import hmac
import io
import json
import logging
import secrets
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, List, Optional, Sequence, Tuple
from urllib.parse import urlsplit

import sqlalchemy as sa
import yaml
from aiohttp import web
from sqlalchemy.engine import Engine

from console import admin, auth, links, privacy, queries, review, support, views
from console.models import metadata as console_metadata
from console.settings import ConsoleSettings
from tracking.db import read_transaction, write_transaction
from tracking.schema import create_schema_when_reachable

logger = logging.getLogger("console")

STATIC_DIR = Path(__file__).resolve().parent / "static"
SESSION_COOKIE = "console_session"
LOGIN_CSRF_COOKIE = "console_login_csrf"
PUBLIC_PATHS = frozenset({"/login", "/healthz", "/static/console.css"})
#: Authenticated by their own token (not a session), hence without CSRF token: see console/support.py.
TOKEN_PATHS = frozenset({support.WEBHOOK_PATH})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CHOICES_TTL_SECONDS = 60.0
MAX_DASHBOARD_DAYS = 366
EXPORT_BATCH = 500

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # same-origin (not no-referrer): browsers then send a real Origin on our own POSTs.
    "Referrer-Policy": "same-origin",
}

DONE_MESSAGES = {
    "tag": "Tag added.", "untag": "Tag removed.", "note": "Note added.", "status": "Review status saved.",
    "confirmed": "Label confirmed.", "corrected": "Correction saved.", **support.DONE_MESSAGES,
}
ADMIN_DONE = {"created": "Lead created.", "disabled": "Lead disabled; their sessions are ended.",
              "enabled": "Lead re-enabled.", "reset": "Password changed; the lead's sessions are ended.",
              "unchanged": "Nothing to change."}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def html_response(body: str, status: int = 200) -> web.Response:
    """An HTML page that is never cached."""
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8",
                        headers={"Cache-Control": "no-store"})


def safe_local_path(value: Optional[str], default: str, prefix: str = "/") -> str:
    """``value`` if it is a path on this site starting with ``prefix``, else ``default``."""
    if not value or not value.startswith(prefix) or value.startswith("//") or "\\" in value:
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return default
    return value


def _int(value: Optional[str], default: int, low: int, high: int) -> int:
    try:
        return max(low, min(high, int(value))) if value else default
    except ValueError:
        return default


def load_intents(domain_path: Path) -> List[str]:
    """The assistant's intents from domain.yml (what a message may be labelled as)."""
    try:
        domain = yaml.safe_load(domain_path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        logger.warning("Could not read %s; the NLU inbox offers the intents seen in conversations.", domain_path)
        return []
    names = []
    for entry in domain.get("intents") or []:
        name = next(iter(entry)) if isinstance(entry, dict) else entry
        if isinstance(name, str) and name != "nlu_fallback":
            names.append(name)
    return names


class Console:
    """Request handlers and their shared state (engine, clock, settings)."""

    def __init__(self, settings: ConsoleSettings, engine: Engine,
                 clock: Callable[[], float] = time.time,
                 accounts: Optional[Callable[[], Any]] = None) -> None:
        self.settings = settings
        self.engine = engine
        self.clock = clock
        self.intents = load_intents(settings.domain_path)
        self._choices: Optional[Tuple[float, Dict[str, List[str]]]] = None
        self.support = support.SupportDesk(accounts or self._account_store, settings.webhook_token,
                                           self.run, self._support_page)
        self.privacy = privacy.PrivacyDesk(accounts or self._account_store, engine, self.run, self._privacy_page)
        self.links = links.LinksDesk(lambda: self.support.accounts, self.run, self._links_page)

    def _account_store(self) -> Any:
        """The account store's dependencies (support requests), from ``ACCOUNTS_DB_URL``."""
        from accounts.db import make_session_factory
        from accounts.deps import Deps

        return Deps(session_factory=make_session_factory(self.settings.accounts_db_url or None))

    @staticmethod
    def _privacy_page(title: str, body: Any, lead: auth.SignedIn) -> web.Response:
        return html_response(views.layout(title, body, email=lead.email, csrf=lead.csrf_token, active="privacy"))

    @staticmethod
    def _links_page(title: str, body: Any, lead: auth.SignedIn) -> web.Response:
        return html_response(views.layout(title, body, email=lead.email, csrf=lead.csrf_token, active="links"))

    @staticmethod
    def _support_page(title: str, body: Any, lead: auth.SignedIn) -> web.Response:
        return html_response(views.layout(title, body, email=lead.email, csrf=lead.csrf_token, active="support"))

    # ------------------------------------------------------------------ plumbing

    async def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run blocking database work in a worker thread."""
        return await asyncio.to_thread(fn, *args, **kwargs)

    def read(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with read_transaction(self.engine) as conn:
            return fn(conn, *args, **kwargs)

    def write(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with write_transaction(self.engine) as conn:
            return fn(conn, *args, **kwargs)

    def _cookie(self, response: web.StreamResponse, name: str, value: str, *, max_age: Optional[int] = None,
                path: str = "/") -> None:
        response.set_cookie(name, value, httponly=True, samesite="Strict", path=path, max_age=max_age,
                            secure=self.settings.secure_cookies or None)

    # ------------------------------------------------------------------ middlewares

    @web.middleware
    async def security_headers(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as error:
            if error.status >= 400 and error.content_type != "text/html" and not request.path.startswith("/static/"):
                error.text = str(views.error_page(error.status, error.reason))
                error.content_type = "text/html"
            response = error
            response.headers.update(SECURITY_HEADERS)
            raise
        response.headers.update(SECURITY_HEADERS)
        return response

    @web.middleware
    async def authenticate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Resolve the session; send everyone else to the sign-in page."""
        if request.path in TOKEN_PATHS:
            request["lead"] = None  # the handler checks its own token; no session, no CSRF
            return await handler(request)
        token = request.cookies.get(SESSION_COOKIE)
        signed_in = await self.run(self.read, auth.load_session, token, now=self.clock()) if token else None
        request["lead"] = signed_in
        if signed_in is None and request.path not in PUBLIC_PATHS:
            if request.method in SAFE_METHODS and not request.path.startswith("/static/"):
                target = views.url("/login", [("next", request.path_qs)])
                raise web.HTTPFound(target)
            raise web.HTTPUnauthorized(text="Sign in first.")
        if request.method not in SAFE_METHODS and request.path != "/login":
            await self._check_csrf(request, signed_in)
        return await handler(request)

    async def _check_csrf(self, request: web.Request, signed_in: auth.SignedIn) -> None:
        origin = request.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc != request.host:
            raise web.HTTPForbidden(text="Cross-site request refused.")
        sent = request.headers.get("X-CSRF-Token")
        if sent is None and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            sent = (await request.post()).get("csrf_token")
        if not isinstance(sent, str) or not hmac.compare_digest(sent, signed_in.csrf_token):
            raise web.HTTPForbidden(text="The form expired: reload the page and try again.")

    # ------------------------------------------------------------------ sign-in

    async def healthz(self, _request: web.Request) -> web.Response:
        try:
            await self.run(self.read, lambda conn: conn.execute(sa.text("SELECT 1")).scalar())
        except sa.exc.SQLAlchemyError:
            return web.json_response({"status": "database unavailable"}, status=503)
        return web.json_response({"status": "ok"})

    async def login_form(self, request: web.Request) -> web.StreamResponse:
        next_path = safe_local_path(request.query.get("next"), "/conversations")
        if request["lead"] is not None:
            raise web.HTTPFound(next_path)
        token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
        response = html_response(views.login_page(login_csrf=token, next_path=next_path))
        self._cookie(response, LOGIN_CSRF_COOKIE, token, path="/login")
        return response

    def _sign_in(self, email: str, password: str, address: str) -> Tuple[str, Any]:
        now = self.clock()
        with read_transaction(self.engine) as conn:
            wait = auth.seconds_until_allowed(conn, email, address, now=now)
            found = auth.find_lead(conn, email) if not wait else None
        if wait:
            return "limited", wait
        if found is None:
            auth.burn_password_check(password)
            ok = False
        else:
            ok = auth.verify_password(password, found.password_hash) and not found.disabled
        with write_transaction(self.engine) as conn:
            if not ok:
                auth.record_failure(conn, email, address, now=now)
                return "failed", None
            auth.clear_failures(conn, email)
            lifetime = self.settings.session_hours * 3600
            return "ok", auth.start_session(conn, found.id, now=now, lifetime_seconds=lifetime)

    async def login(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        cookie_token = request.cookies.get(LOGIN_CSRF_COOKIE) or ""
        sent = form.get("csrf_token")
        next_path = safe_local_path(form.get("next") if isinstance(form.get("next"), str) else None,
                                    "/conversations")
        email = str(form.get("email") or "")[:254]
        password = str(form.get("password") or "")[:auth.MAX_PASSWORD_CHARS]
        if not cookie_token or not isinstance(sent, str) or not hmac.compare_digest(sent, cookie_token):
            token = secrets.token_urlsafe(32)
            response = html_response(views.login_page(
                login_csrf=token, next_path=next_path, email=email,
                error="The sign-in form expired. Please try again."), status=403)
            self._cookie(response, LOGIN_CSRF_COOKIE, token, path="/login")
            return response
        address = auth.client_address(request.remote, request.headers.getall("X-Forwarded-For", []),
                                      self.settings.trusted_proxies)
        outcome, value = await self.run(self._sign_in, email, password, address)
        if outcome == "ok":
            response = web.HTTPFound(next_path)
            self._cookie(response, SESSION_COOKIE, value, max_age=int(self.settings.session_hours * 3600))
            response.del_cookie(LOGIN_CSRF_COOKIE, path="/login")
            logger.info("A lead signed in.")
            raise response
        if outcome == "limited":
            minutes = max(1, (value + 59) // 60)
            error, status = (f"Too many failed sign-ins. Try again in {minutes} minute"
                             f"{'s' if minutes != 1 else ''}."), 429
        else:
            error, status = "Wrong e-mail or password.", 401
        response = html_response(views.login_page(login_csrf=cookie_token, next_path=next_path, email=email,
                                                  error=error), status=status)
        if outcome == "limited":
            response.headers["Retry-After"] = str(value)
        return response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        lead: auth.SignedIn = request["lead"]
        await self.run(self.write, auth.end_session, lead.token_hash)
        response = web.HTTPFound("/login")
        response.del_cookie(SESSION_COOKIE, path="/")
        raise response

    # ------------------------------------------------------------------ conversations

    def _cached_choices(self, conn: Any) -> Dict[str, List[str]]:
        now = time.monotonic()
        if self._choices is None or now - self._choices[0] > CHOICES_TTL_SECONDS:
            self._choices = (now, queries.choices(conn))
        return self._choices[1]

    def _list(self, conn: Any, filters: queries.Filters, sort: str, page: int, per_page: int) -> Tuple[Any, Any]:
        return (queries.list_conversations(conn, filters, sort=sort, page=page, per_page=per_page),
                self._cached_choices(conn))

    async def conversations(self, request: web.Request) -> web.StreamResponse:
        lead: auth.SignedIn = request["lead"]
        filters, errors = queries.Filters.parse(request.query)
        sort = request.query.get("sort") if request.query.get("sort") in queries.SORTS else queries.DEFAULT_SORT
        page = _int(request.query.get("page"), 1, 1, 10 ** 6)
        per_page = _int(request.query.get("per_page"), queries.PER_PAGE_DEFAULT, 1, queries.PER_PAGE_MAX)
        result, choices = await self.run(self.read, self._list, filters, sort, page, per_page)
        return html_response(views.conversations_page(result=result, filters=filters, errors=errors, sort=sort,
                                                      choices=choices, email=lead.email, csrf=lead.csrf_token,
                                                      retention_days=self.settings.retention_days))

    async def transcript(self, request: web.Request) -> web.StreamResponse:
        lead: auth.SignedIn = request["lead"]
        sender_id = request.query.get("id", "")
        t = await self.run(self.read, queries.load_transcript, sender_id,
                           low_confidence=self.settings.low_confidence)
        if t is None:
            raise web.HTTPNotFound(reason="No such conversation")
        choices = await self.run(self.read, self._cached_choices)
        back = safe_local_path(request.query.get("back"), "/conversations", "/conversations")
        requests_of = await self.support.conversation_requests(sender_id)
        here = views.url("/conversation", [("id", sender_id), ("back", back)])
        return html_response(views.transcript_page(
            t=t, back=back, csrf=lead.csrf_token, email=lead.email, known_tags=choices["tags"],
            flash=DONE_MESSAGES.get(request.query.get("done", "")),
            support=support.conversation_section(requests_of, csrf=lead.csrf_token, back=here)))

    async def _review_action(self, request: web.Request, action: Callable[..., Any], field: str,
                             done: str) -> web.StreamResponse:
        lead: auth.SignedIn = request["lead"]
        form = await request.post()
        sender_id = str(form.get("id") or "")
        value = str(form.get(field) or "")
        back = safe_local_path(str(form.get("back") or ""), "/conversations", "/conversations")
        try:
            await self.run(self.write, action, sender_id, value, lead_id=lead.lead_id, now=self.clock())
        except review.NotFound:
            raise web.HTTPNotFound(reason="No such conversation")
        except review.ReviewError as error:
            t = await self.run(self.read, queries.load_transcript, sender_id,
                               low_confidence=self.settings.low_confidence)
            if t is None:
                raise web.HTTPNotFound(reason="No such conversation")
            return html_response(views.transcript_page(
                t=t, back=back, csrf=lead.csrf_token, email=lead.email, known_tags=[],
                error=str(error)), status=400)
        if field == "tag":
            self._choices = None
        raise web.HTTPFound(views.url("/conversation", [("id", sender_id), ("back", back), ("done", done)]))

    async def set_status(self, request: web.Request) -> web.StreamResponse:
        return await self._review_action(request, review.set_status, "status", "status")

    async def add_tag(self, request: web.Request) -> web.StreamResponse:
        return await self._review_action(request, review.add_tag, "tag", "tag")

    async def remove_tag(self, request: web.Request) -> web.StreamResponse:
        return await self._review_action(request, review.remove_tag, "tag", "untag")

    async def add_note(self, request: web.Request) -> web.StreamResponse:
        return await self._review_action(request, review.add_note, "body", "note")

    # ------------------------------------------------------------------ exports

    async def export(self, request: web.Request) -> web.StreamResponse:
        as_csv = request.path.endswith(".csv")
        filters, _errors = queries.Filters.parse(request.query)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M")
        name = f"conversations-{stamp}.{'csv' if as_csv else 'jsonl'}"
        response = web.StreamResponse(headers={
            "Content-Type": "text/csv; charset=utf-8" if as_csv else "application/x-ndjson; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        })
        response.headers.update(SECURITY_HEADERS)
        await response.prepare(request)
        cutoff = self.clock()
        after = None
        if as_csv:
            await response.write(_csv_line(queries.EXPORT_COLUMNS).encode("utf-8"))
        while True:
            batch = await self.run(self.read, queries.export_batch, filters, after=after, cutoff=cutoff,
                                   limit=EXPORT_BATCH, with_messages=not as_csv)
            chunk = []
            for row in batch.rows:
                record = queries.export_record(row, batch.intents.get(row.sender_id, []))
                if as_csv:
                    chunk.append(_csv_line([_csv_cell(record[c]) for c in queries.EXPORT_COLUMNS]))
                else:
                    record["messages"] = batch.messages.get(row.sender_id, [])
                    chunk.append(json.dumps(record, ensure_ascii=False) + "\n")
            if chunk:
                await response.write("".join(chunk).encode("utf-8"))
            if len(batch.rows) < EXPORT_BATCH:
                break
            after = batch.last_key
        await response.write_eof()
        return response

    # ------------------------------------------------------------------ NLU inbox

    def _inbox(self, conn: Any, view: str, threshold: float, page: int) -> Tuple[Any, Dict[str, int]]:
        result = queries.inbox(conn, threshold=threshold, view=view, page=page)
        counts = {v: (result.total if v == view else queries.inbox(conn, threshold=threshold, view=v,
                                                                     per_page=1).total)
                  for v in queries.INBOX_VIEWS}
        return result, counts

    def _known_intents(self) -> List[str]:
        if self.intents:
            return self.intents
        with read_transaction(self.engine) as conn:
            return [i for i in queries.choices(conn)["intents"] if i != "nlu_fallback"]

    async def inbox(self, request: web.Request) -> web.StreamResponse:
        lead: auth.SignedIn = request["lead"]
        view = request.query.get("view") if request.query.get("view") in queries.INBOX_VIEWS else queries.PENDING
        try:
            threshold = float(request.query.get("threshold") or self.settings.low_confidence)
        except ValueError:
            threshold = self.settings.low_confidence
        threshold = min(1.0, max(0.05, threshold))
        page = _int(request.query.get("page"), 1, 1, 10 ** 6)
        result, counts = await self.run(self.read, self._inbox, view, threshold, page)
        intents = await self.run(self._known_intents)
        return html_response(views.inbox_page(result=result, view=view, threshold=threshold, intents=intents,
                                              counts=counts, csrf=lead.csrf_token, email=lead.email,
                                              flash=DONE_MESSAGES.get(request.query.get("done", ""))))

    async def label(self, request: web.Request) -> web.StreamResponse:
        lead: auth.SignedIn = request["lead"]
        form = await request.post()
        back = safe_local_path(str(form.get("back") or ""), "/nlu-inbox", "/nlu-inbox")
        try:
            event_id = int(str(form.get("event_id") or ""))
        except ValueError:
            raise web.HTTPBadRequest(reason="No message given")
        intents = await self.run(self._known_intents)
        try:
            outcome = await self.run(self.write, review.label_message, event_id, str(form.get("label") or ""),
                                     known_intents=intents, lead_id=lead.lead_id, now=self.clock())
        except review.NotFound:
            raise web.HTTPNotFound(reason="No such message")
        except review.ReviewError as error:
            raise web.HTTPBadRequest(reason=str(error))
        separator = "&" if "?" in back else "?"
        raise web.HTTPFound(f"{back}{separator}done={outcome}")

    async def nlu_export(self, request: web.Request) -> web.StreamResponse:
        include_confirmed = request.query.get("include") == "confirmed"
        examples = await self.run(self.read, queries.nlu_examples, include_confirmed=include_confirmed)
        now = datetime.now(timezone.utc)
        body = queries.nlu_yaml(examples, generated_at=now)
        return web.Response(text=body, content_type="text/yaml", charset="utf-8", headers={
            "Content-Disposition": f'attachment; filename="nlu-from-review-{now:%Y%m%d}.yml"',
            "Cache-Control": "no-store"})

    # ------------------------------------------------------------------ dashboard

    async def dashboard(self, request: web.Request) -> web.StreamResponse:
        lead: auth.SignedIn = request["lead"]
        today = datetime.fromtimestamp(self.clock(), tz=timezone.utc).date()
        errors: List[str] = []
        date_to = queries.parse_date(request.query.get("to", ""), "To", errors) or today
        date_from = queries.parse_date(request.query.get("from", ""), "From", errors) or date_to - timedelta(days=29)
        if date_from > date_to:
            date_from, date_to = date_to, date_from
        if (date_to - date_from).days >= MAX_DASHBOARD_DAYS:
            date_from = date_to - timedelta(days=MAX_DASHBOARD_DAYS - 1)
        d = await self.run(self.read, queries.dashboard, date_from, date_to)
        return html_response(views.dashboard_page(d=d, csrf=lead.csrf_token, email=lead.email))

    # ------------------------------------------------------------------ admin: leads

    async def _require_admin(self, request: web.Request) -> auth.SignedIn:
        """The signed-in admin; 403 for a lead."""
        signed_in: auth.SignedIn = request["lead"]
        role = await self.run(self.read, admin.role_of, signed_in.lead_id)
        if role != admin.ADMIN:
            raise web.HTTPForbidden(reason="Only admins manage leads")
        return signed_in

    async def _leads_page(self, signed_in: auth.SignedIn, *, flash: Optional[str] = None,
                          error: Optional[str] = None, status: int = 200) -> web.Response:
        leads = await self.run(self.read, admin.list_leads)
        audit = await self.run(self.read, admin.audit_log)
        return html_response(views.leads_page(leads=leads, audit=audit, csrf=signed_in.csrf_token,
                                              email=signed_in.email, flash=flash, error=error), status=status)

    async def leads(self, request: web.Request) -> web.StreamResponse:
        signed_in = await self._require_admin(request)
        return await self._leads_page(signed_in, flash=ADMIN_DONE.get(request.query.get("done", "")))

    async def lead_action(self, request: web.Request) -> web.StreamResponse:
        """Create, disable, re-enable a lead or reset their password (``/admin/leads/<action>``)."""
        signed_in = await self._require_admin(request)
        form = await request.post()
        email = str(form.get("email") or "")[:254]
        password = str(form.get("password") or "")[:auth.MAX_PASSWORD_CHARS]
        actor = admin.Actor(signed_in.lead_id, signed_in.email)
        now, action = self.clock(), request.path.rsplit("/", 1)[-1]
        try:
            if action == "create":
                await self.run(self.write, admin.create, actor, email, password, now=now)
                done = "created"
            elif action in ("disable", "enable"):
                changed = await self.run(self.write, admin.set_disabled, actor, email, action == "disable", now=now)
                done = f"{action}d" if changed else "unchanged"
            else:
                await self.run(self.write, admin.reset_password, actor, email, password, now=now)
                done = "reset"
        except auth.LeadError as error:
            return await self._leads_page(signed_in, error=str(error), status=400)
        logger.info("Admin action %s on a lead.", action)
        raise web.HTTPFound(views.url("/admin/leads", [("done", done)]))

    async def index(self, _request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/conversations")


CSV_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any) -> Any:
    """A CSV cell; text that a spreadsheet would run as a formula is prefixed with '."""
    if isinstance(value, list):
        value = " ".join(str(v) for v in value)
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(CSV_FORMULA_START):
        return "'" + value
    return value


def _csv_line(cells: Sequence[Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(cells)
    return buffer.getvalue()


def create_app(settings: ConsoleSettings, engine: Engine, *, clock: Callable[[], float] = time.time,
               accounts: Optional[Callable[[], Any]] = None) -> web.Application:
    """Build the console for ``settings`` on ``engine`` (whose tables must exist).

    ``accounts`` builds the account store's :class:`accounts.deps.Deps` on first
    use (default: from ``settings.accounts_db_url``).
    """
    console = Console(settings, engine, clock, accounts)
    app = web.Application(middlewares=[console.security_headers, console.authenticate],
                          client_max_size=64 * 1024)
    r = app.router
    r.add_get("/", console.index)
    r.add_get("/healthz", console.healthz)
    r.add_get("/login", console.login_form)
    r.add_post("/login", console.login)
    r.add_post("/logout", console.logout)
    r.add_get("/conversations", console.conversations)
    r.add_get("/conversations/export.csv", console.export)
    r.add_get("/conversations/export.jsonl", console.export)
    r.add_get("/conversation", console.transcript)
    r.add_post("/conversation/status", console.set_status)
    r.add_post("/conversation/tags", console.add_tag)
    r.add_post("/conversation/tags/remove", console.remove_tag)
    r.add_post("/conversation/notes", console.add_note)
    r.add_get("/nlu-inbox", console.inbox)
    r.add_post("/nlu-inbox/label", console.label)
    r.add_get("/nlu-inbox/export.yml", console.nlu_export)
    r.add_get("/dashboard", console.dashboard)
    r.add_get("/support-requests", console.support.list_page)
    r.add_post("/support-requests/retry", console.support.retry)
    r.add_post("/support-requests/release", console.support.release)
    r.add_post(support.WEBHOOK_PATH, console.support.webhook)
    r.add_get("/privacy", console.privacy.form)
    r.add_post("/privacy/export", console.privacy.export)
    r.add_post("/privacy/erase", console.privacy.erase)
    r.add_get(links.PAGE_PATH, console.links.list_page)
    r.add_post(links.REVOKE_PATH, console.links.revoke)
    r.add_get("/admin/leads", console.leads)
    for action in ("create", "disable", "enable", "reset-password"):
        r.add_post(f"/admin/leads/{action}", console.lead_action)
    r.add_static("/static/", STATIC_DIR)
    return app


def prepare_database(engine: Engine) -> None:
    """Create the tracker store's and the console's tables (and columns) if they are missing."""
    create_schema_when_reachable(engine, console_metadata)
