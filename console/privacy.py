"""The console's personal-data page: a lead exports or erases one customer (GDPR art. 15, 17, 20).

``GET /privacy`` shows the form (e-mail, account id, or chat channel and user id).
``POST /privacy/export`` downloads everything held as one JSON file.
``POST /privacy/erase`` first answers with a confirmation page saying what
would be erased; only its own form (``confirm=erase``) erases. Both are
audited in the account store with the lead as actor (``console:<lead>``);
the work is :mod:`supportbot.privacy`'s, the same as the command line's.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Awaitable, Callable, Dict, Optional, Tuple

from aiohttp import web
from sqlalchemy.engine import Engine

from console.html import Markup, render
from supportbot.privacy import CHANNELS, Selector, erase_customer, export_customer, preview_customer

logger = logging.getLogger(__name__)

#: Longest identifier accepted in the form.
MAX_FIELD = 320


def _csrf(token: str) -> Markup:
    return render('<input type="hidden" name="csrf_token" value="{token}">', token=token)


def _selector_fields(selector: Selector) -> Markup:
    values = {"email": selector.email or "", "account_id": "" if selector.account_id is None else selector.account_id,
              "channel": selector.channel or "", "channel_user": selector.channel_user_id or ""}
    return Markup("").join(render('<input type="hidden" name="{name}" value="{value}">', name=k, value=v)
                           for k, v in values.items() if v != "")


def form_body(*, csrf: str, error: Optional[str] = None) -> Markup:
    """The page's form: one way of naming the customer, then export or erase."""
    channels = Markup("").join(render('<option value="{c}">{c}</option>', c=c) for c in CHANNELS)
    return render(
        '<h1>Personal data</h1>{error}'
        '<p class="lede">Export everything held about one customer (account, members, audit, support requests, '
        'conversations) as JSON, or erase their conversations and personal data. Name the customer one way.</p>'
        '<form method="post" class="stack" id="privacy-form">{csrf}'
        '<label>E-mail <input type="email" name="email" maxlength="320"></label>'
        '<label>or account id <input type="number" name="account_id" min="1"></label>'
        '<label>or chat <select name="channel"><option value="">-</option>{channels}</select> '
        'user id <input type="text" name="channel_user" maxlength="200"></label>'
        '<div class="row"><button formaction="/privacy/export">Export as JSON</button> '
        '<button formaction="/privacy/erase" class="danger">Erase&hellip;</button></div></form>',
        error=render('<p class="flash error">{e}</p>', e=error) if error else Markup(""),
        csrf=_csrf(csrf), channels=channels)


def confirm_body(selector: Selector, preview: Dict[str, Any], *, csrf: str) -> Markup:
    """What the erasure would do, and the one button that does it."""
    if not preview["found"]:
        return render('<h1>Personal data</h1><p id="nothing">Nothing is held about this {who}.</p>'
                      '<p><a href="/privacy">Back</a></p>', who=selector.describe())
    account = (f"account {preview['account_id']} ("
               + ("closed: its own records will be pseudonymised" if preview["account_closed"]
                  else "open: the account itself stays") + ")") if preview["account_id"] else "no account"
    return render(
        '<h1>Erase this customer?</h1><p id="preview">{account}; {n} conversation(s) and every tag, note and '
        'review of them; support-request transcripts, chat links and e-mails. This cannot be undone.</p>'
        '<form method="post" action="/privacy/erase">{csrf}{fields}'
        '<input type="hidden" name="confirm" value="erase"><button class="danger">Erase now</button> '
        '<a href="/privacy">Cancel</a></form>',
        account=account, n=preview["conversations"], csrf=_csrf(csrf), fields=_selector_fields(selector))


def done_body(result: Dict[str, Any]) -> Markup:
    """The erasure's outcome, in counts."""
    return render('<h1>Erased</h1><p id="erased">{c} conversation(s) and {e} event(s) removed; account store: '
                  '{store}. Pseudonym in the audit log: <code>{p}</code>.</p><p><a href="/privacy">Back</a></p>',
                  c=result["conversations"]["conversations"], e=result["conversations"]["events"],
                  store=", ".join(f"{k} {v}" for k, v in sorted(result["account_store"].items())),
                  p=result["pseudonym"])


def parse_selector(form: Any) -> Tuple[Optional[Selector], Optional[str]]:
    """The customer named in a form, or why the form is not usable."""
    email = (form.get("email") or "").strip()[:MAX_FIELD]
    account = (form.get("account_id") or "").strip()
    channel = (form.get("channel") or "").strip()
    user = (form.get("channel_user") or "").strip()[:MAX_FIELD]
    given = [bool(email), bool(account), bool(channel or user)]
    if sum(given) != 1:
        return None, "Name the customer one way: an e-mail, an account id, or a chat and its user id."
    if account:
        if not account.isdigit():
            return None, "The account id is a number."
        return Selector(account_id=int(account)), None
    if channel or user:
        if channel not in CHANNELS or not user:
            return None, "Choose the chat and give its user id."
        return Selector(channel=channel, channel_user_id=user), None
    return Selector(email=email), None


class PrivacyDesk:
    """Handlers of the personal-data page."""

    def __init__(self, accounts: Callable[[], Any], tracker: Engine,
                 run: Callable[..., Awaitable[Any]], page: Callable[[str, Markup, Any], web.Response]) -> None:
        """Args:
            accounts: Builds the account store's Deps (on first use).
            tracker: The tracker database's engine.
            run: Runs blocking work off the event loop.
            page: Renders a body in the console's frame for a lead.
        """
        self._make_accounts = accounts
        self._accounts: Any = None
        self.tracker = tracker
        self.run = run
        self.page = page

    @property
    def accounts(self) -> Any:
        if self._accounts is None:
            self._accounts = self._make_accounts()
        return self._accounts

    async def form(self, request: web.Request) -> web.StreamResponse:
        """``GET /privacy``."""
        lead = request["lead"]
        return self.page("Personal data", form_body(csrf=lead.csrf_token), lead)

    async def _selector(self, request: web.Request) -> Selector:
        selector, error = parse_selector(await request.post())
        if selector is None:
            lead = request["lead"]
            raise web.HTTPBadRequest(body=str(self.page("Personal data", form_body(csrf=lead.csrf_token,
                                                                                 error=error), lead).body),
                                     content_type="text/html")
        return selector

    async def export(self, request: web.Request) -> web.StreamResponse:
        """``POST /privacy/export``: the JSON file."""
        lead = request["lead"]
        selector = await self._selector(request)
        document = await self.run(export_customer, self.accounts, self.tracker, selector,
                                  actor=f"console:{lead.email}")
        logger.info("personal data of a %s exported by a lead", selector.describe())
        return web.Response(body=json.dumps(document, indent=2, sort_keys=True, default=str).encode(),
                            content_type="application/json",
                            headers={"Content-Disposition": 'attachment; filename="personal-data.json"'})

    async def erase(self, request: web.Request) -> web.StreamResponse:
        """``POST /privacy/erase``: the confirmation page, or (``confirm=erase``) the erasure."""
        lead = request["lead"]
        selector = await self._selector(request)
        if (await request.post()).get("confirm") != "erase":
            preview = await self.run(preview_customer, self.accounts, self.tracker, selector)
            return self.page("Erase personal data", confirm_body(selector, preview, csrf=lead.csrf_token), lead)
        result = await self.run(erase_customer, self.accounts, self.tracker, selector,
                                actor=f"console:{lead.email}")
        if not result["found"]:
            return self.page("Personal data", confirm_body(selector, {"found": False}, csrf=lead.csrf_token), lead)
        return self.page("Erased", done_body(result), lead)
