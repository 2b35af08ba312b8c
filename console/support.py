"""Support requests in the console: delivery status, retry, release, and the helpdesk webhook.

Support requests live in the account store (``ACCOUNTS_DB_URL``), not in the
tracker database; this module reads and changes them only through the
account domain (:mod:`accounts.helpdesk_dispatch`,
:mod:`accounts.support_requests`).

* ``GET /support-requests``: every request with its status, delivery status,
  attempts, last error, helpdesk ticket, creation and release, filtered by
  delivery status, each linked to its conversation.
* ``POST /support-requests/retry``: put a request the helpdesk rejected back
  in the delivery queue (CSRF like every console form).
* ``POST /support-requests/release``: "Give back to the assistant": the
  customer's next message is answered by the assistant again (CSRF).
* ``POST /helpdesk/webhook``: the helpdesk says an agent solved or released a
  ticket. Authenticated with ``Authorization: Bearer HELPDESK_WEBHOOK_TOKEN``
  (compared in constant time), not with a session, so it is the one POST
  without a CSRF token. Body (JSON)::

      {"request_id": 42, "status": "solved"}
      {"external_id": "SR-000042", "status": "solved"}

  ``status`` ``solved`` or ``closed`` releases the conversation and marks the
  request resolved; ``released`` releases it only; any other status is
  acknowledged and ignored (``"released": false``). Answers: 200 with
  ``{"request_id", "reference", "released", "already_released", "released_at"}``
  (a repeated call changes nothing and says ``already_released``), 400 for a
  malformed body, 401 without the right token, 404 for an unknown request,
  503 when ``HELPDESK_WEBHOOK_TOKEN`` is not set.
"""

from __future__ import annotations

import hmac
import logging
import threading
from datetime import datetime
from typing import Any, Callable, List, Optional, Sequence

from aiohttp import web

from accounts.deps import Deps
from accounts.helpdesk_dispatch import SupportRequestDelivery, list_support_requests, requeue_support_requests
from accounts.models import DELIVERY_STATUSES
from accounts.support_requests import UnknownSupportRequest, parse_reference, release_support_request
from console.html import Markup, join, render, url

logger = logging.getLogger("console")

WEBHOOK_PATH = "/helpdesk/webhook"
#: Helpdesk statuses that end the hand-over: (release, also mark the request resolved).
RELEASE_STATUSES = {"solved": True, "closed": True, "released": False}
MAX_STATUS_CHARS = 32
LIST_LIMIT = 200
DONE_MESSAGES = {
    "released": "The conversation is given back to the assistant: it answers the customer's next message.",
    "already_released": "This conversation had already been given back to the assistant.",
    "requeued": "Delivery will be tried again within a few seconds.",
    "nothing_to_retry": "Nothing to retry: the request is not marked failed.",
}


def fmt_datetime(value: Optional[datetime]) -> str:
    """``2024-06-30 14:05 UTC`` of an aware datetime, or a dash."""
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else "-"


def bearer_matches(header: Optional[str], token: str) -> bool:
    """Whether an ``Authorization`` header carries ``Bearer <token>`` (constant-time comparison)."""
    if not token or not header:
        return False
    scheme, _, sent = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(sent.strip().encode(), token.encode())


# --------------------------------------------------------------------------- HTML


def _csrf(token: str) -> Markup:
    return render('<input type="hidden" name="csrf_token" value="{t}">', t=token)


def request_actions(r: SupportRequestDelivery, *, csrf: str, back: str) -> Markup:
    """The retry and release buttons a request offers."""
    parts: List[Markup] = []
    hidden = render('<input type="hidden" name="request_id" value="{id}"><input type="hidden" name="back" '
                    'value="{back}">', id=r.id, back=back)
    if r.delivery_status == "failed" or r.messages_failed:
        parts.append(render('<form method="post" action="/support-requests/retry" class="inline">{csrf}{hidden}'
                            '<button type="submit">Retry delivery</button></form>',
                            csrf=_csrf(csrf), hidden=hidden))
    if r.released_at is None and r.conversation:
        parts.append(render('<form method="post" action="/support-requests/release" class="inline">{csrf}{hidden}'
                            '<button type="submit">Give back to the assistant</button></form>',
                            csrf=_csrf(csrf), hidden=hidden))
    return join(parts, " ")


def _released(r: SupportRequestDelivery) -> Markup:
    if r.released_at is None:
        return Markup("-")
    return render('{at}<br><span class="byline">by {by}</span>', at=fmt_datetime(r.released_at), by=r.released_by)


def _ticket(r: SupportRequestDelivery) -> Markup:
    if not r.helpdesk_ticket_id:
        return Markup("-")
    if r.helpdesk_url and r.helpdesk_url.startswith(("https://", "http://")):
        return render('<a href="{href}" rel="noopener noreferrer">{id}</a>', href=r.helpdesk_url,
                      id=r.helpdesk_ticket_id)
    return render("{id}", id=r.helpdesk_ticket_id)


def request_rows(rows: Sequence[SupportRequestDelivery], *, csrf: str, back: str,
                 with_conversation: bool = True) -> Markup:
    """Table rows of support requests (``data-request`` carries the id)."""
    out = []
    for r in rows:
        conversation = (render('<a href="{href}">open conversation</a>', href=url("/conversation", [("id", r.conversation)]))
                        if r.conversation else Markup("-"))
        error = r.last_error or ""
        if r.messages_failed:
            error = f"{error} ({r.messages_failed} message(s) rejected)".strip()
        out.append(render(
            '<tr data-request="{id}"><td><b>{ref}</b><br><span class="byline">{reason}</span></td>'
            '<td>{status}</td><td><span class="badge badge--delivery-{delivery}">{delivery}</span></td>'
            '<td class="num">{attempts}</td><td class="error">{error}</td><td>{ticket}</td>'
            '<td>{created}</td><td>{released}</td>{conv}<td>{actions}</td></tr>',
            id=r.id, ref=r.reference, reason=r.reason, status=r.status, delivery=r.delivery_status,
            attempts=r.attempts, error=error or "-", ticket=_ticket(r), created=fmt_datetime(r.created_at),
            released=_released(r),
            conv=render("<td>{c}</td>", c=conversation) if with_conversation else Markup(""),
            actions=request_actions(r, csrf=csrf, back=back),
        ))
    return join(out)


def _table(rows: Sequence[SupportRequestDelivery], *, csrf: str, back: str, with_conversation: bool) -> Markup:
    head = ("<th>Request</th><th>Status</th><th>Delivery</th><th class=\"num\">Attempts</th><th>Last error</th>"
            "<th>Helpdesk ticket</th><th>Created</th><th>Released</th>"
            + ("<th>Conversation</th>" if with_conversation else "") + "<th></th>")
    body = request_rows(rows, csrf=csrf, back=back, with_conversation=with_conversation)
    if not rows:
        body = Markup(f'<tr><td colspan="{10 if with_conversation else 9}" class="empty">No support requests.</td></tr>')
    return render('<div class="table-wrap"><table class="support-requests"><thead><tr>{head}</tr></thead>'
                  '<tbody>{body}</tbody></table></div>', head=Markup(head), body=body)


def support_requests_body(rows: Sequence[SupportRequestDelivery], *, delivery: Optional[str], csrf: str,
                          flash: Markup) -> Markup:
    """The content of the support-requests page."""
    back = url("/support-requests", [("delivery", delivery)])
    tabs = join(
        render('<a href="{href}"{cur}>{label}</a>', href=url("/support-requests", [("delivery", value)]),
               label=label, cur=Markup(' aria-current="page"') if value == delivery else "")
        for value, label in [(None, "All"), *((s, s.capitalize()) for s in DELIVERY_STATUSES)]
    )
    return render(
        '<h1>Support requests</h1>{flash}<p class="lede">Requests the assistant handed to a person, and where '
        'their delivery to the helpdesk stands. Rejected deliveries can be retried; a conversation the '
        'assistant paused can be given back to it.</p><nav class="tabs" aria-label="Delivery status">{tabs}</nav>'
        '{table}{more}',
        flash=flash, tabs=tabs, table=_table(rows, csrf=csrf, back=back, with_conversation=True),
        more=(render('<p class="byline">Only the newest {n} are shown.</p>', n=LIST_LIMIT)
              if len(rows) >= LIST_LIMIT else ""),
    )


def conversation_section(rows: Optional[Sequence[SupportRequestDelivery]], *, csrf: str, back: str) -> Markup:
    """The support requests of one conversation, for its transcript page."""
    if rows is None:
        return Markup('<section class="support-requests-of"><h2>Support requests</h2>'
                      '<p class="flash flash--error">The account store is not reachable: support requests '
                      'cannot be shown right now.</p></section>')
    if not rows:
        return Markup("")
    return render('<section class="support-requests-of"><h2>Support requests</h2>{table}</section>',
                  table=_table(rows, csrf=csrf, back=back, with_conversation=False))


# --------------------------------------------------------------------------- handlers


class SupportDesk:
    """Handlers of the support-request pages and the helpdesk webhook.

    Args:
        accounts: The account store's dependencies, or a function building them
            on first use (no engine is created before a request needs one).
        webhook_token: ``HELPDESK_WEBHOOK_TOKEN`` (empty: the webhook answers 503).
        run: Runs blocking work in a worker thread (the console's ``run``).
        page: Wraps a body in the console's layout (``title, body, lead`` → response).
    """

    def __init__(self, accounts: Callable[[], Deps], webhook_token: str,
                 run: Callable[..., Any], page: Callable[..., web.Response]) -> None:
        self._make_accounts = accounts
        self._accounts: Optional[Deps] = None
        self._lock = threading.Lock()
        self.webhook_token = webhook_token
        self.run = run
        self.page = page

    @property
    def accounts(self) -> Deps:
        """The account store's dependencies (built on first use)."""
        with self._lock:
            if self._accounts is None:
                self._accounts = self._make_accounts()
            return self._accounts

    async def conversation_requests(self, sender_id: str) -> Optional[List[SupportRequestDelivery]]:
        """The support requests of a conversation; None when the account store cannot be read."""
        try:
            return await self.run(lambda: list_support_requests(self.accounts, conversation=sender_id))
        except Exception:  # noqa: BLE001 - the transcript is still shown, with a notice
            logger.exception("could not read the support requests of a conversation")
            return None

    async def list_page(self, request: web.Request) -> web.StreamResponse:
        """``GET /support-requests[?delivery=pending|delivered|failed]``."""
        lead = request["lead"]
        delivery = request.query.get("delivery") or None
        if delivery is not None and delivery not in DELIVERY_STATUSES:
            raise web.HTTPBadRequest(reason="Unknown delivery status")
        rows = await self.run(lambda: list_support_requests(self.accounts, delivery_status=delivery,
                                                            limit=LIST_LIMIT))
        done = request.query.get("done", "")
        flash = render('<p class="flash flash--ok" role="status">{m}</p>', m=DONE_MESSAGES[done]) \
            if done in DONE_MESSAGES else Markup("")
        body = support_requests_body(rows, delivery=delivery, csrf=lead.csrf_token, flash=flash)
        return self.page("Support requests", body, lead)

    async def _form_request_id(self, request: web.Request) -> tuple:
        form = await request.post()
        ident = parse_reference(str(form.get("request_id") or ""))
        if ident is None:
            raise web.HTTPBadRequest(reason="No support request given")
        back = str(form.get("back") or "")
        if not back.startswith(("/support-requests", "/conversation")) or back.startswith("//") or "\\" in back:
            back = "/support-requests"
        return ident, back

    @staticmethod
    def _redirect(back: str, done: str) -> web.HTTPFound:
        separator = "&" if "?" in back else "?"
        return web.HTTPFound(f"{back}{separator}done={done}")

    async def release(self, request: web.Request) -> web.StreamResponse:
        """``POST /support-requests/release``: "Give back to the assistant"."""
        lead = request["lead"]
        ident, back = await self._form_request_id(request)
        try:
            outcome = await self.run(release_support_request, self.accounts, ident,
                                     released_by=f"console:{lead.email}", via="console")
        except UnknownSupportRequest:
            raise web.HTTPNotFound(reason="No such support request")
        logger.info("Support request %s given back to the assistant from the console.", outcome.reference)
        raise self._redirect(back, "already_released" if outcome.already_released else "released")

    async def retry(self, request: web.Request) -> web.StreamResponse:
        """``POST /support-requests/retry``: requeue a rejected delivery."""
        ident, back = await self._form_request_id(request)
        count = await self.run(requeue_support_requests, self.accounts, [ident])
        raise self._redirect(back, "requeued" if count else "nothing_to_retry")

    async def webhook(self, request: web.Request) -> web.StreamResponse:
        """``POST /helpdesk/webhook``: the helpdesk releases (solves) a ticket."""
        if not self.webhook_token:
            return web.json_response({"error": "webhook not configured"}, status=503)
        if not bearer_matches(request.headers.get("Authorization"), self.webhook_token):
            logger.warning("Helpdesk webhook call refused: missing or wrong token.")
            return web.json_response({"error": "unauthorized"}, status=401,
                                     headers={"WWW-Authenticate": 'Bearer realm="helpdesk-webhook"'})
        try:
            payload = await request.json()
        except ValueError:
            return _bad("the body must be a JSON object")
        if not isinstance(payload, dict):
            return _bad("the body must be a JSON object")
        given = [(k, payload[k]) for k in ("request_id", "external_id") if payload.get(k) not in (None, "")]
        if not given:
            return _bad("request_id or external_id is required")
        idents = {parse_reference(v) for _, v in given}
        if None in idents:
            return _bad(f"{given[0][0] if parse_reference(given[0][1]) is None else given[-1][0]} is not a "
                        "support request id or reference (42 or SR-000042)")
        if len(idents) > 1:
            return _bad("request_id and external_id name different requests")
        status = payload.get("status")
        if not isinstance(status, str) or not status.strip() or len(status) > MAX_STATUS_CHARS:
            return _bad("status is required (solved, closed or released)")
        status = status.strip().lower()
        ident = idents.pop()
        if status not in RELEASE_STATUSES:
            return web.json_response({"request_id": ident, "released": False,
                                      "ignored": f"status {status!r} does not release the conversation"})
        try:
            outcome = await self.run(release_support_request, self.accounts, ident, released_by="helpdesk",
                                     resolve=RELEASE_STATUSES[status], via="helpdesk_webhook")
        except UnknownSupportRequest:
            return web.json_response({"error": "unknown support request", "request_id": ident}, status=404)
        logger.info("Support request %s released by the helpdesk (%s).", outcome.reference, status)
        return web.json_response({
            "request_id": outcome.support_request_id, "reference": outcome.reference, "released": True,
            "already_released": outcome.already_released, "released_at": outcome.released_at.isoformat(),
            "status": outcome.status,
        })


def _bad(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)
