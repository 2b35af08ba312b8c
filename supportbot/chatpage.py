"""The plain chat page: a web page where a person chats with the assistant.

Serves ``static/`` and relays messages to the Rasa REST channel from the same
origin, so the browser needs no CORS and never talks to Rasa directly. Each
browser gets a random, HttpOnly session cookie; the conversation's sender id is
derived from it, so a page cannot choose or guess another visitor's
conversation, and the cookie itself never reaches Rasa or its tracker store.

It also serves the website widget page at ``/widget`` (supportbot/widget.py).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from pathlib import Path
from typing import Any, Dict, List

import aiohttp
from aiohttp import web

from supportbot.log_redaction import install as install_log_redaction
from supportbot.settings import Settings, load_settings
from supportbot.tfa_enrollment import add_tfa_routes
from supportbot.widget import add_widget_routes

logger = logging.getLogger("supportbot.chatpage")

STATIC_DIR = Path(__file__).resolve().parent / "static"
SESSION_COOKIE = "chat_session"
MAX_MESSAGE_CHARS = 2000
RASA_TIMEOUT_SECONDS = 30
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: https:; style-src 'self'; "
        "script-src 'self'; connect-src 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def sender_id_for(session_token: str) -> str:
    """The conversation id of a browser session: a one-way digest of its cookie."""
    return "web-" + hashlib.sha256(session_token.encode()).hexdigest()[:32]


def _bot_messages(rasa_reply: Any) -> List[Dict[str, Any]]:
    """Keep only the fields the page renders from Rasa's REST reply."""
    if not isinstance(rasa_reply, list):
        raise ValueError("unexpected reply from the assistant")
    kept = []
    for message in rasa_reply:
        if not isinstance(message, dict):
            continue
        item = {key: message[key] for key in ("text", "image", "buttons") if key in message}
        if item:
            kept.append(item)
    return kept


@web.middleware
async def security_headers(request: web.Request, handler: Any) -> web.StreamResponse:
    """Add a strict Content-Security-Policy and friends to every response.

    A handler that sets its own header (the widget page's wider policy) keeps it.
    """
    response = await handler(request)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


async def index(request: web.Request) -> web.StreamResponse:
    """The chat page; starts a browser session if there is none."""
    response = web.FileResponse(STATIC_DIR / "chat.html")
    if SESSION_COOKIE not in request.cookies:
        response.set_cookie(
            SESSION_COOKIE, secrets.token_urlsafe(32),
            httponly=True, samesite="Strict", path="/",
        )
    return response


async def healthz(_request: web.Request) -> web.Response:
    """Liveness probe."""
    return web.json_response({"status": "ok"})


async def post_message(request: web.Request) -> web.Response:
    """Relay one message of the visitor to Rasa and return the assistant's replies."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return web.json_response({"error": "Reload the page to start a chat."}, status=401)
    try:
        body = await request.json()
    except ValueError:
        return web.json_response({"error": "Send JSON: {\"message\": \"...\"}."}, status=400)
    message = body.get("message") if isinstance(body, dict) else None
    if not isinstance(message, str) or not message.strip():
        return web.json_response({"error": "The message is empty."}, status=400)
    if len(message) > MAX_MESSAGE_CHARS:
        return web.json_response(
            {"error": f"Please keep messages under {MAX_MESSAGE_CHARS} characters."},
            status=413,
        )
    settings: Settings = request.app["settings"]
    session: aiohttp.ClientSession = request.app["http"]
    payload = {"sender": sender_id_for(token), "message": message}
    try:
        async with session.post(
            f"{settings.rasa_url}/webhooks/rest/webhook", json=payload
        ) as reply:
            reply.raise_for_status()
            messages = _bot_messages(await reply.json())
    except (aiohttp.ClientError, ValueError, TimeoutError) as error:
        logger.error("The assistant could not be reached: %s", type(error).__name__)
        return web.json_response(
            {"error": "The assistant is not available right now. Please try again in a moment."},
            status=502,
        )
    return web.json_response({"messages": messages})


async def _open_http(app: web.Application) -> None:
    app["http"] = aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=RASA_TIMEOUT_SECONDS)
    )


async def _close_http(app: web.Application) -> None:
    await app["http"].close()


def create_app(settings: Settings) -> web.Application:
    """Build the chat page application for ``settings``."""
    app = web.Application(middlewares=[security_headers], client_max_size=64 * 1024)
    app["settings"] = settings
    app.on_startup.append(_open_http)
    app.on_cleanup.append(_close_http)
    app.router.add_get("/", index)
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/api/messages", post_message)
    app.router.add_static("/static/", STATIC_DIR)
    add_widget_routes(app, settings)
    add_tfa_routes(app)  # TFA enrolment + "not me" pages (supportbot/tfa_enrollment.py)
    return app


def main() -> None:
    """Serve the chat page on ``WEB_HOST:WEB_PORT``."""
    settings = load_settings()
    install_log_redaction()
    logging.basicConfig(level=settings.log_level)
    web.run_app(create_app(settings), host=settings.web_host, port=settings.web_port,
                print=None)


if __name__ == "__main__":
    main()
