"""The website widget's Socket.IO channel (rasa-webchat), bound to verified customers.

Rasa's stock ``SocketIOInput`` never delivers replies with session persistence
on (it does not await ``enter_room``), checks a JWT only at connect and then
forgets it, lets the client choose its session id (and so whose conversation
it writes to) and stores any metadata the client sends. This channel replaces
it at the same path (``/socket.io``):

* **Token, never in a URL**: the portal token (supportbot/portal_token.py)
  comes with the connection as ``auth={"token": ...}`` (the Socket.IO CONNECT
  packet, a body). rasa-webchat cannot set ``auth``: its page first posts the
  token to ``POST /webhooks/socketio/ticket`` and puts the one-time, 60-second
  connect ticket it gets (channels/widget_tickets.py) in the socket URL as
  ``ticket``. A ``token`` in the URL, a token that does not verify and a
  forged, expired or used ticket all refuse the connection. Every message is
  checked again, with the token from its ``customData`` (or the expiry of the
  connection's identity): an expired token is refused, a token of another
  customer drops the connection.
* **Conversation**: a verified customer's sender id is derived from the
  verified claims (``web-`` + digest), never from the client's session id,
  and every tab of that customer joins it. A visitor without a token gets a
  signed session key (``webanon-``, ``WIDGET_SESSION_HOURS``) that only their
  browser keeps; the conversation id is a digest of it, so the id the tracker
  store and the review console show cannot resume the session, nor act
  through a channel link made in it.
* **Metadata**: the client's metadata is dropped. Messages of a verified
  customer carry ``verified_identity`` (the token's claims, never the token).
* **Origin**: required; the engine.io handshake and the connect handler both
  refuse an ``Origin`` not in ``WIDGET_ALLOWED_ORIGINS``, and the connect
  handler and the ticket route refuse a request without one.
* **Size and rate**: messages over ``MAX_MESSAGE_CHARS`` get a polite refusal
  and never reach the assistant; engine.io drops packets over
  ``MAX_PACKET_BYTES``; a connection over ``CHAT_MESSAGES_PER_MINUTE``
  (channels/rate_limit.py) is asked to slow down.

The channel keeps connections in memory: several Rasa instances need sticky
sessions (and a shared tracker store).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Dict, Iterable, List, Mapping, Optional, Text, Tuple
from urllib.parse import parse_qs

from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from rasa.core.channels.socketio import SocketBlueprint, SocketIOOutput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from socketio import AsyncServer
from socketio.exceptions import ConnectionRefusedError as SocketConnectionRefused

from channels.common import (
    VERIFIED_IDENTITY_KEY,
    env_value,
    max_message_chars,
    too_long_text,
)
from channels.dedup import DedupUnavailable, recent_ids
from channels.rate_limit import SLOW_DOWN, RateLimiter, message_limiter
from channels.rest import verified_sender_id
from channels.widget_tickets import (
    DEFAULT_SESSION_HOURS,
    AnonymousSessions,
    ConnectTickets,
    InvalidTicket,
    anonymous_conversation_id,
)
from supportbot.portal_token import (
    InvalidPortalToken,
    PortalIdentity,
    PortalTokenVerifier,
    utc_now,
    verifier_from_env,
)

logger = logging.getLogger(__name__)

CHANNEL_NAME = "socketio"
VERIFIED_PREFIX = "web"
MAX_PACKET_BYTES = 64 * 1024
TOKEN_FIELD = "token"
TICKET_FIELD = "ticket"
_BARE_URL = re.compile(r"(?<![(<\[])\bhttps?://[^\s<>()\[\]]+[^\s<>()\[\].,;:!?'\"]")

SIGN_IN_AGAIN = "Your sign-in has expired. Please reload the page to sign in again."
SESSION_NOT_STARTED = "The chat is still connecting. Please try again in a moment."


def default_allowed_origins(environ: Optional[Mapping[str, str]] = None) -> List[str]:
    """The chat page's own origins (``WEB_HOST``/``WEB_PORT``), on 127.0.0.1 and localhost."""
    host = env_value("WEB_HOST", environ) or "127.0.0.1"
    port = env_value("WEB_PORT", environ) or "8080"
    origins = [f"http://127.0.0.1:{port}", f"http://localhost:{port}"]
    if host not in ("127.0.0.1", "localhost", "0.0.0.0", "::"):
        origins.append(f"http://{host}:{port}")
    return origins


def allowed_origins_from_env(environ: Optional[Mapping[str, str]] = None) -> List[str]:
    """``WIDGET_ALLOWED_ORIGINS`` (comma-separated), or the chat page's origins."""
    value = env_value("WIDGET_ALLOWED_ORIGINS", environ)
    if not value:
        return default_allowed_origins(environ)
    return [origin.strip().rstrip("/") for origin in value.split(",") if origin.strip()]


def linkify(text: str) -> str:
    """Wrap bare http(s) URLs as Markdown autolinks, which the widget renders as links."""
    return _BARE_URL.sub(lambda match: f"<{match.group(0)}>", text)


class PortalSocketIOOutput(SocketIOOutput):
    """Replies in the shapes rasa-webchat renders, to every tab of the conversation."""

    async def send_text_message(self, recipient_id: Text, text: Text, **kwargs: Any) -> None:
        """Text, one widget message per paragraph; bare links become clickable."""
        for part in text.strip().split("\n\n"):
            await self._send_message(recipient_id, {"text": linkify(part)})

    async def send_text_with_buttons(self, recipient_id: Text, text: Text,
                                     buttons: List[Dict[Text, Any]], **kwargs: Any) -> None:
        """Buttons as quick replies (only the latest set can be clicked, once).

        A button with a ``url`` cannot be a quick reply: the message then uses
        the widget's persistent ``buttons``, where a URL button is a link.
        """
        parts = text.strip().split("\n\n") or [text]
        for part in parts[:-1]:
            await self._send_message(recipient_id, {"text": linkify(part)})
        if any(button.get("url") for button in buttons):
            choices = [
                {"type": "web_url", "title": b["title"], "url": b["url"]} if b.get("url")
                else {"type": "postback", "title": b["title"], "payload": b["payload"]}
                for b in buttons
            ]
            await self._send_message(recipient_id, {"text": linkify(parts[-1]), "buttons": choices})
            return
        await self.send_quick_replies(recipient_id, parts[-1], buttons)

    async def send_quick_replies(self, recipient_id: Text, text: Text,
                                 quick_replies: List[Dict[Text, Any]], **kwargs: Any) -> None:
        """Quick replies: choices that disappear once one is picked."""
        choices = [
            {"content_type": "text", "title": reply["title"], "payload": reply["payload"]}
            for reply in quick_replies
        ]
        await self._send_message(recipient_id, {"text": linkify(text), "quick_replies": choices})

    async def send_custom_json(self, recipient_id: Text, json_message: Dict[Text, Any],
                               **kwargs: Any) -> None:
        """Custom payloads go to the conversation's room as they are."""
        await self._send_message(recipient_id, json_message)


@dataclass
class Connection:
    """What the server knows about one socket: who it is and which conversation."""

    identity: Optional[PortalIdentity]
    token: Optional[str]
    sender_id: Optional[str] = None


def _query_value(environ: Mapping[str, Any], name: str) -> Optional[str]:
    values = parse_qs(environ.get("QUERY_STRING", "")).get(name)
    return values[0] if values else None


def session_hours_from_env(environ: Optional[Mapping[str, str]] = None) -> int:
    """``WIDGET_SESSION_HOURS``: how long an anonymous visitor's session key lasts (default 12)."""
    value = env_value("WIDGET_SESSION_HOURS", environ)
    hours = int(value) if value else DEFAULT_SESSION_HOURS
    if hours <= 0:
        raise ValueError("WIDGET_SESSION_HOURS must be a positive number")
    return hours


class PortalSocketIOInput(InputChannel):
    """Socket.IO input channel for the website widget; see the module docstring."""

    @classmethod
    def name(cls) -> Text:
        return CHANNEL_NAME

    def __init__(
        self,
        verifier: Optional[PortalTokenVerifier],
        allowed_origins: Iterable[str],
        max_chars: int,
        user_message_evt: Text = "user_uttered",
        bot_message_evt: Text = "bot_uttered",
        namespace: Optional[Text] = None,
        socketio_path: Text = "/socket.io",
        metadata_key: Text = "customData",
        anonymous_sessions: Optional[AnonymousSessions] = None,
        tickets: Optional[ConnectTickets] = None,
        limiter: Optional[RateLimiter] = None,
    ) -> None:
        self.verifier = verifier
        self.allowed_origins = [origin.rstrip("/") for origin in allowed_origins]
        self.max_chars = max_chars
        self.user_message_evt = user_message_evt
        self.bot_message_evt = bot_message_evt
        self.namespace = namespace
        self.socketio_path = socketio_path
        self.metadata_key = metadata_key
        self.anonymous = anonymous_sessions or AnonymousSessions.for_verifier(verifier)
        self.tickets = tickets or (ConnectTickets.for_verifier(verifier) if verifier else None)
        self.limiter = limiter or RateLimiter(0)
        self.sio: Optional[AsyncServer] = None

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> "PortalSocketIOInput":
        """Non-secret settings from credentials.yml; the portal secret and limits from the environment."""
        credentials = credentials or {}
        if credentials.get("session_persistence") is False:
            logger.warning("session_persistence: false is ignored: the widget channel always "
                           "keeps a customer's conversation across reloads and tabs.")
        verifier = verifier_from_env()
        if verifier is None:
            logger.warning("PORTAL_TOKEN_SECRET is not set: the widget serves anonymous "
                           "visitors only and refuses every portal token.")
        return cls(
            verifier=verifier,
            allowed_origins=allowed_origins_from_env(),
            max_chars=max_message_chars(),
            anonymous_sessions=AnonymousSessions.for_verifier(
                verifier, lifetime=dt.timedelta(hours=session_hours_from_env())),
            tickets=ConnectTickets.for_verifier(verifier, recent_ids("widget-ticket"))
            if verifier else None,
            limiter=message_limiter(),
            user_message_evt=credentials.get("user_message_evt", "user_uttered"),
            bot_message_evt=credentials.get("bot_message_evt", "bot_uttered"),
            namespace=credentials.get("namespace"),
            socketio_path=credentials.get("socketio_path", "/socket.io"),
            metadata_key=credentials.get("metadata_key", "customData"),
        )

    def get_output_channel(self) -> Optional[OutputChannel]:
        """The output channel for replies outside a socket event (None before start-up)."""
        return PortalSocketIOOutput(self.sio, self.bot_message_evt) if self.sio else None

    # --- checks -------------------------------------------------------------

    def origin_allowed(self, origin: Optional[str]) -> bool:
        """The Origin must be sent and listed (a client without one is refused)."""
        if not origin:
            return False
        return "*" in self.allowed_origins or origin.rstrip("/") in self.allowed_origins

    def identify(self, token: Optional[str]) -> Optional[PortalIdentity]:
        """The customer of ``token``; None without a token.

        Raises:
            InvalidPortalToken: the token is forged, expired or cannot be checked.
        """
        if not token:
            return None
        if self.verifier is None:
            raise InvalidPortalToken("portal tokens are not configured")
        return self.verifier.verify(token)

    def session_for(self, connection: Connection, requested: Any) -> Tuple[str, str]:
        """(session id for the client, conversation id) of a ``session_request``.

        A customer's conversation is derived from the verified claims, whatever
        the client asks for. An anonymous visitor resumes the session key they
        hold if this server signed it and it has not expired, else gets a new
        one; their conversation id is a digest of the key, never the key.
        """
        if connection.identity is not None:
            sender_id = verified_sender_id(VERIFIED_PREFIX, connection.identity)
            return sender_id, sender_id
        key = str(requested) if self.anonymous.is_valid(requested) else self.anonymous.new()
        return key, anonymous_conversation_id(key)

    async def identify_connection(self, environ: Mapping[str, Any],
                                  auth: Any) -> Tuple[Optional[PortalIdentity], Optional[str]]:
        """The customer of a new connection and their token, from ``auth`` or a connect ticket.

        Raises:
            InvalidPortalToken: a token in the URL, or a token that does not verify.
            InvalidTicket: a connect ticket that is forged, expired or used.
        """
        if _query_value(environ, TOKEN_FIELD):
            raise InvalidPortalToken("portal token in the socket URL")
        auth = auth if isinstance(auth, dict) else {}
        ticket = auth.get(TICKET_FIELD) or _query_value(environ, TICKET_FIELD)
        if ticket:
            if self.tickets is None:
                raise InvalidTicket("portal tokens are not configured")
            return await self.tickets.redeem(ticket), None
        token = auth.get(TOKEN_FIELD)
        return self.identify(token), token

    # --- routes and events --------------------------------------------------

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        """The Socket.IO server, mounted at ``socketio_path``, and a health route."""
        sio = AsyncServer(
            async_mode="sanic",
            cors_allowed_origins=self._engineio_origin_check,
            max_http_buffer_size=MAX_PACKET_BYTES,
        )
        self.sio = sio
        blueprint = SocketBlueprint(sio, self.socketio_path, "portal_socketio_webhook", __name__)
        output = PortalSocketIOOutput(sio, self.bot_message_evt)
        namespace = self.namespace

        @blueprint.route("/", methods=["GET"])
        async def health(_request: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @blueprint.route("/ticket", methods=["POST"])
        async def ticket(request: Request) -> HTTPResponse:
            return await self._issue_ticket(request)

        @blueprint.listener("before_server_stop")
        async def close_sockets(_app: Any, _loop: Any) -> None:
            # Widgets see the server leave at once and reconnect when it is back.
            if sio.eio.sockets:  # engine.io fails on an empty set of sockets
                await sio.eio.disconnect()
            await sio.shutdown()

        @sio.on("connect", namespace=namespace)
        async def connect(sid: str, environ: Dict[str, Any], auth: Optional[Dict] = None) -> None:
            if not self.origin_allowed(environ.get("HTTP_ORIGIN")):
                logger.warning("Widget connection refused: origin not allowed")
                raise SocketConnectionRefused("origin not allowed")
            try:
                identity, token = await self.identify_connection(environ, auth)
            except InvalidPortalToken as error:
                logger.warning("Widget connection refused: invalid portal token (%s)", error)
                raise SocketConnectionRefused("invalid or expired portal token") from None
            except InvalidTicket as error:
                logger.warning("Widget connection refused: %s", error)
                raise SocketConnectionRefused("invalid or expired connect ticket") from None
            except DedupUnavailable:
                raise SocketConnectionRefused("the chat is unavailable, try again") from None
            await sio.save_session(sid, Connection(identity, token), namespace=namespace)

        @sio.on("disconnect", namespace=namespace)
        async def disconnect(sid: str) -> None:
            self.limiter.forget(sid)

        @sio.on("session_request", namespace=namespace)
        async def session_request(sid: str, data: Any = None) -> None:
            connection: Connection = await sio.get_session(sid, namespace=namespace)
            requested = data.get("session_id") if isinstance(data, dict) else None
            session_id, sender_id = self.session_for(connection, requested)
            if connection.sender_id and connection.sender_id != sender_id:
                await sio.leave_room(sid, connection.sender_id, namespace=namespace)
            connection.sender_id = sender_id
            await sio.save_session(sid, connection, namespace=namespace)
            await sio.enter_room(sid, sender_id, namespace=namespace)
            await sio.emit("session_confirm", {"session_id": session_id}, room=sid,
                           namespace=namespace)

        @sio.on(self.user_message_evt, namespace=namespace)
        async def handle_message(sid: str, data: Any = None) -> None:
            connection: Connection = await sio.get_session(sid, namespace=namespace)
            if not isinstance(data, dict) or not isinstance(data.get("message"), str):
                return
            text = data["message"]
            if not text.strip():
                return
            if connection.sender_id is None:
                await self._tell(sid, SESSION_NOT_STARTED)
                return
            if len(text) > self.max_chars:
                await self._tell(sid, too_long_text(self.max_chars))
                return
            if not self.limiter.allow(sid):
                logger.warning("Widget message refused: over the message rate limit")
                await self._tell(sid, SLOW_DOWN)
                return
            metadata = await self._message_metadata(sid, connection, data.get(self.metadata_key))
            if metadata is None:
                return
            await on_new_message(UserMessage(
                text, output, connection.sender_id, input_channel=self.name(), metadata=metadata,
            ))

        return blueprint

    async def _tell(self, sid: str, text: str) -> None:
        """A message to one socket only (not the conversation's other tabs)."""
        await self.sio.emit(self.bot_message_evt, {"text": text}, room=sid,
                            namespace=self.namespace)

    async def _message_metadata(self, sid: str, connection: Connection,
                                custom_data: Any) -> Optional[Dict[str, Any]]:
        """The trusted metadata of one message; None (after telling the client) to refuse it."""
        sent_token = custom_data.get(TOKEN_FIELD) if isinstance(custom_data, dict) else None
        if connection.identity is None:
            if sent_token:
                logger.warning("Widget message refused: token sent on an anonymous connection")
                await self._tell(sid, "Please reload the page to chat as a signed-in customer.")
                return None
            return {}
        try:
            identity = self.identify(sent_token or connection.token) \
                if (sent_token or connection.token) else self._unexpired(connection.identity)
        except InvalidPortalToken as error:
            logger.info("Widget message refused: portal token no longer valid (%s)", error)
            await self._tell(sid, SIGN_IN_AGAIN)
            return None
        if (identity.account_id, identity.email) != (
                connection.identity.account_id, connection.identity.email):
            logger.warning("Widget connection dropped: a message carried another customer's token")
            await self.sio.disconnect(sid, namespace=self.namespace)
            return None
        if sent_token and sent_token != connection.token:
            connection.token = sent_token  # the portal refreshed it: same customer, later expiry
            await self.sio.save_session(sid, connection, namespace=self.namespace)
        return {VERIFIED_IDENTITY_KEY: dict(identity.as_metadata(), channel=CHANNEL_NAME)}

    @staticmethod
    def _unexpired(identity: PortalIdentity) -> PortalIdentity:
        """A ticket connection's identity while its portal token would still be valid."""
        if identity.expires_at <= utc_now():
            raise InvalidPortalToken("the portal token has expired")
        return identity

    async def _issue_ticket(self, request: Request) -> HTTPResponse:
        """``POST /ticket`` with body ``{"token": ...}`` from an allowed page: a connect ticket.

        The body is sent as ``text/plain`` (a CORS "simple" request, no
        preflight); the answer carries ``Access-Control-Allow-Origin``.
        """
        origin = request.headers.get("Origin")
        if not self.origin_allowed(origin):
            return response.json({"error": "origin not allowed"}, status=403)
        cors = {"Access-Control-Allow-Origin": origin, "Vary": "Origin",
                "Cache-Control": "no-store"}
        try:
            body = json.loads(request.body or b"null")
        except ValueError:
            body = None
        token = body.get(TOKEN_FIELD) if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            return response.json({"error": "send {\"token\": ...}"}, status=400, headers=cors)
        try:
            identity = self.identify(token)
            if self.tickets is None:
                raise InvalidPortalToken("portal tokens are not configured")
        except InvalidPortalToken as error:
            logger.warning("Widget ticket refused: invalid portal token (%s)", error)
            return response.json({"error": "invalid or expired portal token"}, status=401,
                                 headers=cors)
        return response.json({"ticket": self.tickets.issue(identity),
                              "expires_in": self.tickets.lifetime_seconds}, headers=cors)

    def _engineio_origin_check(self, origin: Optional[str],
                               _environ: Optional[Dict[str, Any]] = None) -> bool:
        # A callable, not the list: engine.io takes an empty list as "no check".
        return self.origin_allowed(origin)
