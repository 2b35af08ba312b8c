"""The console's chat-links page: a lead lists an account's chat links and revokes one.

* ``GET /links?account=<id or primary e-mail>``: every chat link of the
  account (channel, chat user id, member, created, expires, the factors that
  made it, active / revoked / expired), newest first, with a "Revoke" button
  per active link. Without ``account`` the page shows only the search form;
  an unknown account is answered 404 with the value looked for.
* ``POST /links/revoke`` (CSRF like every console form; fields ``link_id``,
  ``account``, ``key``): revokes through
  :func:`accounts.channel_links.revoke_link_by_staff`, audited in the account
  store with the lead as actor (``console:<lead e-mail>``), then shows the
  account's page again. ``key`` is drawn when the page is rendered, so a
  form sent twice revokes once (the second answer replays the first).

The page reads and changes links only through the account domain.
"""

from __future__ import annotations

import logging
import secrets
import threading
from typing import Any, Callable, Optional

from aiohttp import web

from accounts.channel_links import (
    EMAIL_AND_APP,
    EMAIL_ONLY,
    LINK_ACTIVE,
    MAX_ROW_ID,
    AccountLinksView,
    StaffLinkView,
    account_links,
    revoke_link_by_staff,
)
from accounts.deps import Deps
from accounts.results import Reason, Refused
from console.html import Markup, join, render, url
from console.support import fmt_datetime

logger = logging.getLogger("console")

PAGE_PATH = "/links"
REVOKE_PATH = "/links/revoke"
#: Longest account reference (an e-mail address) and form key accepted.
MAX_ACCOUNT_CHARS = 320
MAX_KEY_CHARS = 64
FACTOR_LABELS = {EMAIL_ONLY: "e-mailed code", EMAIL_AND_APP: "e-mailed code + authenticator app"}
DONE_MESSAGES = {
    "revoked": "Link revoked: that chat no longer acts for the account.",
    "not_active": "That link was no longer active (already revoked or expired); nothing changed.",
}


def account_page_url(account: Any) -> str:
    """The chat-links page of an account (id or primary e-mail)."""
    return url(PAGE_PATH, [("account", account)])


def _csrf(token: str) -> Markup:
    return render('<input type="hidden" name="csrf_token" value="{t}">', t=token)


def _search_form(account: str) -> Markup:
    return render(
        '<form method="get" action="/links" class="row" id="links-search">'
        '<label>Account id or primary e-mail <input type="text" name="account" value="{a}" maxlength="320" '
        'required></label> <button type="submit">Show links</button></form>', a=account)


def _revoke_form(link_id: int, account_id: int, csrf: str) -> Markup:
    return render(
        '<form method="post" action="/links/revoke" class="inline">{csrf}'
        '<input type="hidden" name="link_id" value="{id}"><input type="hidden" name="account" value="{acc}">'
        '<input type="hidden" name="key" value="{key}"><button type="submit" class="danger">Revoke</button></form>',
        csrf=_csrf(csrf), id=link_id, acc=account_id, key=secrets.token_urlsafe(16))


def _state_label(v: StaffLinkView) -> str:
    if v.revoked_at is not None:
        return f"revoked {fmt_datetime(v.revoked_at)}"
    if v.dormant_because:
        return f"active, but acts for nobody now: {v.dormant_because}"
    return v.state


def links_table(view: AccountLinksView, *, csrf: str) -> Markup:
    """The account's links, one row each (``data-link`` carries the id, ``data-state`` the state)."""
    rows = join(render(
        '<tr data-link="{id}" data-state="{state}"><td>{channel}</td><td><code>{user}</code></td><td>{member}</td>'
        '<td>{created}</td><td>{expires}</td><td>{factors}</td>'
        '<td><span class="badge badge--link-{state}">{state_label}</span></td><td>{action}</td></tr>',
        id=v.link_id, state=v.state, channel=v.channel, user=v.channel_user_id, member=v.member_email,
        created=fmt_datetime(v.created_at), expires=fmt_datetime(v.expires_at),
        factors=FACTOR_LABELS.get(v.authenticators, v.authenticators),
        state_label=_state_label(v),
        action=_revoke_form(v.link_id, view.account_id, csrf) if v.state == LINK_ACTIVE else "",
    ) for v in view.links)
    if not view.links:
        rows = Markup('<tr><td colspan="8" class="empty">This account has no chat links.</td></tr>')
    return render(
        '<div class="table-wrap"><table class="links"><thead><tr><th>Channel</th><th>Chat user id</th>'
        '<th>Member</th><th>Created</th><th>Expires</th><th>Linked with</th><th>State</th><th></th></tr></thead>'
        '<tbody>{rows}</tbody></table></div>', rows=rows)


def links_body(*, account: str, view: Optional[AccountLinksView], csrf: str, flash: Markup = Markup(""),
               not_found: bool = False) -> Markup:
    """The page: the search form, then the account's links or why there are none."""
    if view is not None:
        result = render('<h2 id="account">Account {id} · {email} ({status})</h2>{table}',
                        id=view.account_id, email=view.primary_email, status=view.account_status,
                        table=links_table(view, csrf=csrf))
    elif not_found:
        result = render('<p class="flash flash--error" id="unknown-account" role="status">No account has the id '
                        'or primary e-mail “{a}”.</p>', a=account)
    else:
        result = Markup("")
    return render(
        '<h1>Chat links</h1>{flash}<p class="lede">The chats (Slack, Telegram, the website widget) that act for '
        'an account, how they were linked, and until when. Revoking a link stops that chat from acting for the '
        'account at once; the customer can link it again with a new e-mailed code.</p>{form}{result}',
        flash=flash, form=_search_form(account), result=result)


class LinksDesk:
    """Handlers of the chat-links page.

    Args:
        accounts: Builds the account store's Deps (on first use).
        run: Runs blocking work in a worker thread (the console's ``run``).
        page: Wraps a body in the console's layout (``title, body, lead`` → response).
    """

    def __init__(self, accounts: Callable[[], Deps], run: Callable[..., Any],
                 page: Callable[..., web.Response]) -> None:
        self._make_accounts = accounts
        self._accounts: Optional[Deps] = None
        self._lock = threading.Lock()
        self.run = run
        self.page = page

    @property
    def accounts(self) -> Deps:
        """The account store's dependencies (built on first use)."""
        with self._lock:
            if self._accounts is None:
                self._accounts = self._make_accounts()
            return self._accounts

    async def list_page(self, request: web.Request) -> web.StreamResponse:
        """``GET /links[?account=<id or primary e-mail>]``."""
        lead = request["lead"]
        account = request.query.get("account", "").strip()[:MAX_ACCOUNT_CHARS]
        done = request.query.get("done", "")
        flash = render('<p class="flash flash--ok" id="done" role="status">{m}</p>', m=DONE_MESSAGES[done]) \
            if done in DONE_MESSAGES else Markup("")
        if not account:
            return self.page("Chat links", links_body(account="", view=None, csrf=lead.csrf_token), lead)
        found = await self.run(account_links, self.accounts, account)
        if isinstance(found, Refused):
            response = self.page("Chat links", links_body(account=account, view=None, csrf=lead.csrf_token,
                                                          not_found=True), lead)
            response.set_status(404)
            return response
        return self.page("Chat links", links_body(account=account, view=found, csrf=lead.csrf_token,
                                                  flash=flash), lead)

    async def revoke(self, request: web.Request) -> web.StreamResponse:
        """``POST /links/revoke``: revoke one active link, then show the account's links."""
        lead = request["lead"]
        form = await request.post()
        link_id, account, form_key = (str(form.get(k) or "").strip() for k in ("link_id", "account", "key"))
        if not link_id.isdigit() or not 0 < int(link_id) <= MAX_ROW_ID or not form_key \
                or len(form_key) > MAX_KEY_CHARS:
            raise web.HTTPBadRequest(reason="No link given")
        result = await self.run(revoke_link_by_staff, self.accounts, int(link_id), staff=f"console:{lead.email}",
                                idempotency_key=f"console:revoke_link:{lead.lead_id}:{form_key}")
        if isinstance(result, Refused) and result.reason != Reason.LINK_NOT_FOUND:
            raise web.HTTPBadRequest(reason="This form was used for another link: reload the page")
        done = "revoked" if result.ok else "not_active"
        logger.info("A lead revoked chat link %s: %s.", link_id, done)
        target = url(PAGE_PATH, [("account", account[:MAX_ACCOUNT_CHARS]), ("done", done)])
        raise web.HTTPFound(target)
