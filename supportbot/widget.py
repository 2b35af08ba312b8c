"""The website widget page: a stand-in portal page with the rasa-webchat widget.

The chat page server (supportbot/chatpage.py) serves, all from this machine:

* ``/widget``: the page (``static/widget.html``, ``static/widget.js``), whose
  widget talks Socket.IO straight to Rasa's ``channels.socketio`` channel;
* ``/widget/webchat.js``: rasa-webchat's bundle from ``web/node_modules``
  (installed by ``make web`` with ``npm ci``), with its Google Fonts
  ``@import`` removed so the page loads nothing from outside;
* ``/widget/config``: where the socket is, where the page exchanges the
  portal token for a one-time connect ticket (channels/socketio.py; the token
  itself never goes in the socket URL) and whether demo sign-in is on;
* ``/widget/demo-login`` (only registered with ``WIDGET_DEMO_LOGIN=1``, the
  development portal secret and a loopback ``WEB_HOST``; its tokens carry the
  demo issuer, which verifiers reject everywhere else): a stand-in for
  the portal's sign-in that issues a portal token for any account id and
  e-mail typed in. It lets anyone act as any account: local demos only.

In production the portal's own page embeds the widget the same way and passes
the token it issued; ``/widget`` then only matters for anonymous FAQ chats.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional
from urllib.parse import urlsplit

from aiohttp import web

from supportbot.portal_token import PortalTokenVerifier, demo_sign_in_refusal, verifier_from_env
from supportbot.settings import PROJECT_ROOT, Settings

logger = logging.getLogger("supportbot.widget")

STATIC_DIR = Path(__file__).resolve().parent / "static"
BUNDLE_PATH = PROJECT_ROOT / "web" / "node_modules" / "rasa-webchat" / "lib" / "index.js"
DEMO_TOKEN_LIFETIME = dt.timedelta(hours=1)
# CSS @import of anything not on this server (the bundle imports a Google font).
_EXTERNAL_IMPORT = re.compile(rb"@import url\((?:https?:)?//[^)]*\);?")
_ACCOUNT_ID = re.compile(r"^[0-9]{1,18}$")


def _flag(value: Optional[str]) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class WidgetSettings:
    """Where the widget connects and whether the demo sign-in is on."""

    socket_url: str
    socket_path: str
    demo_login: bool
    verifier: Optional[PortalTokenVerifier]

    @property
    def content_security_policy(self) -> str:
        """The page may reach this server and the Socket.IO server, nothing else."""
        parts = urlsplit(self.socket_url)
        ws_scheme = "wss" if parts.scheme == "https" else "ws"
        socket_origins = f"{parts.scheme}://{parts.netloc} {ws_scheme}://{parts.netloc}"
        return (
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data: https:; font-src 'self' data:; "
            f"connect-src 'self' {socket_origins}; frame-ancestors 'none'; "
            "base-uri 'none'; form-action 'self'"
        )


def widget_settings(settings: Settings,
                    environ: Optional[Mapping[str, str]] = None) -> WidgetSettings:
    """``WIDGET_SOCKET_URL`` (default: the Rasa server), ``WIDGET_DEMO_LOGIN`` and the portal secret."""
    env = os.environ if environ is None else environ
    verifier = verifier_from_env(env)
    demo_login = _flag(env.get("WIDGET_DEMO_LOGIN"))
    refusal = demo_sign_in_refusal(env)
    if demo_login and (refusal or verifier is None):
        logger.warning("WIDGET_DEMO_LOGIN is on but %s: demo sign-in stays off.",
                       refusal or "PORTAL_TOKEN_SECRET is not set")
        demo_login = False
    if demo_login:
        logger.warning("WIDGET_DEMO_LOGIN is on: anyone who can open the widget page can "
                       "chat as any account. Local demos only.")
    return WidgetSettings(
        socket_url=(env.get("WIDGET_SOCKET_URL") or settings.rasa_url).rstrip("/"),
        socket_path="/socket.io/",
        demo_login=demo_login,
        verifier=verifier,
    )


def offline_bundle(path: Path = BUNDLE_PATH) -> bytes:
    """rasa-webchat's bundle without CSS imports from other servers."""
    bundle = _EXTERNAL_IMPORT.sub(b"", path.read_bytes())
    if b"fonts.googleapis.com" in bundle:
        raise ValueError(f"{path} still refers to Google Fonts after clean-up")
    return bundle


async def widget_page(request: web.Request) -> web.StreamResponse:
    """The portal stand-in page with the widget."""
    config: WidgetSettings = request.app["widget"]
    response = web.FileResponse(STATIC_DIR / "widget.html")
    response.headers["Content-Security-Policy"] = config.content_security_policy
    return response


async def widget_config(request: web.Request) -> web.Response:
    """What widget.js needs to start the widget."""
    config: WidgetSettings = request.app["widget"]
    return web.json_response({
        "socketUrl": config.socket_url,
        "socketPath": config.socket_path,
        "ticketUrl": f"{config.socket_url}/webhooks/socketio/ticket",
        "demoLogin": config.demo_login,
    })


async def webchat_bundle(request: web.Request) -> web.Response:
    """rasa-webchat, read once, served from this server."""
    cache = request.app["webchat_cache"]
    bundle = cache.get("bundle")
    if bundle is None:
        try:
            bundle = offline_bundle()
        except FileNotFoundError:
            logger.error("%s is missing: run `make web` (npm ci in web/).", BUNDLE_PATH)
            return web.Response(status=503, text="// The chat widget is not installed: run `make web`.",
                                content_type="application/javascript")
        cache["bundle"] = bundle
    return web.Response(body=bundle, content_type="application/javascript",
                        headers={"Cache-Control": "no-cache"})


async def demo_login(request: web.Request) -> web.Response:
    """Issue a portal token for the account id and e-mail posted (demo sign-in only)."""
    config: WidgetSettings = request.app["widget"]
    if not config.demo_login or config.verifier is None:
        raise web.HTTPNotFound()
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {}
    account_id = str(body.get("account_id", "")).strip()
    email = str(body.get("email", "")).strip().lower()
    if not _ACCOUNT_ID.match(account_id) or "@" not in email or len(email) > 254:
        return web.json_response({"error": "Enter an account number and an e-mail address."},
                                 status=400)
    token = config.verifier.issue(account_id, email, DEMO_TOKEN_LIFETIME, demo=True)
    return web.json_response({"token": token, "account_id": account_id, "email": email})


def add_widget_routes(app: web.Application, settings: Settings) -> None:
    """Mount the widget page and its helpers on the chat page ``app``."""
    app["widget"] = widget_settings(settings)
    app["webchat_cache"] = {}
    app.router.add_get("/widget", widget_page)
    app.router.add_get("/widget/config", widget_config)
    app.router.add_get("/widget/webchat.js", webchat_bundle)
    if app["widget"].demo_login:  # off: the route does not exist at all
        app.router.add_post("/widget/demo-login", demo_login)
