"""The REST channel, with identity only from a verified portal token.

Rasa's stock ``RestInput`` passes whatever ``metadata`` and ``input_channel``
the client sends into the tracker, so any caller could claim to be any
customer. This channel replaces it (same URL: ``/webhooks/rest/webhook``):

* client ``metadata`` and ``input_channel`` are ignored;
* a portal token (see supportbot/portal_token.py), sent as
  ``Authorization: Bearer <token>`` or as the message's ``metadata.token``, is
  verified; a valid token puts the customer under the ``verified_identity``
  metadata key and binds the conversation to them (the sender id is derived
  from the verified claims); an invalid one gets 401;
* without a token the caller is anonymous, and their conversation is scoped
  to their address: its id is ``anon-`` + a digest of the client address and
  the ``sender`` (:func:`anonymous_sender_id`), so it can never address a
  verified customer's conversation, nobody at another address can write into
  it by sending the same ``sender``, and the id stored and shown in the review
  console reveals neither. Behind a proxy the address is the proxy's unless
  Sanic is told to trust ``X-Forwarded-For`` (``SANIC_PROXIES_COUNT``);
* messages longer than ``MAX_MESSAGE_CHARS`` (default 2000) are not passed on: the
  answer is a chat reply asking for shorter messages;
* a sender over ``CHAT_MESSAGES_PER_MINUTE``, or an address over
  ``CHAT_ADDRESS_MESSAGES_PER_MINUTE`` (channels/rate_limit.py; counted in
  Redis by every instance when ``REDIS_URL`` is set), gets the reply
  :data:`~channels.rate_limit.SLOW_DOWN` (HTTP 200, a chat message) and the
  message never reaches the assistant;
* a message with an id (the client's optional ``message_id``, else the
  ``X-Request-Id`` nginx sets, which its retry on another instance keeps) runs
  once: a retry gets the replies of the first run (channels/idempotency.py).
"""

from __future__ import annotations

import hashlib
import logging
import os
from typing import Any, Awaitable, Callable, Dict, Optional, Text

from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from rasa.core.channels.rest import RestInput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from channels.idempotency import MAX_MESSAGE_ID_CHARS, IdempotentTurns, Replies, tracker_lookup
from channels.rate_limit import (
    SLOW_DOWN,
    Limiter,
    RateLimiter,
    RedisRateLimiter,
    address_limiter,
    sender_limiter,
)
from supportbot.portal_token import (
    VERIFIED_IDENTITY_KEY,
    InvalidPortalToken,
    PortalIdentity,
    verifier_from_env,
)

logger = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGE_CHARS = 2000
#: Header with the id nginx gives each request (kept when it retries on the next instance).
REQUEST_ID_HEADER = "X-Request-Id"


def verified_sender_id(prefix: str, identity: PortalIdentity) -> str:
    """The conversation id of a verified customer on one channel."""
    digest = hashlib.sha256(f"{identity.account_id}:{identity.email}".encode()).hexdigest()
    return f"{prefix}-{digest[:32]}"


def anonymous_sender_id(sender: str, address: str) -> str:
    """The conversation id of an anonymous REST ``sender`` calling from ``address``."""
    digest = hashlib.sha256(f"{address}\n{sender}".encode()).hexdigest()
    return f"anon-{digest[:32]}"


def client_address(request: Request) -> str:
    """The caller's address: the proxied client's when Sanic trusts the proxy, else the peer's."""
    return request.remote_addr or request.ip or "unknown"
def too_long_reply(length: int, limit: int) -> str:
    """The chat reply to a message over the length limit."""
    return (f"Sorry, that message is too long for me ({length} characters; I can read up to {limit}). "
            "Could you send your main question first, in a shorter message?")


def _bearer_token(request: Request) -> Optional[str]:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class VerifiedRestInput(RestInput):
    """REST input channel that trusts only portal tokens for identity."""

    @classmethod
    def name(cls) -> Text:
        return "rest"

    def __init__(self, max_message_chars: Optional[int] = None,
                 turns: Optional[IdempotentTurns] = None,
                 sender_limiter: Optional[Limiter] = None,
                 address_limiter: Optional[Limiter] = None) -> None:
        self.max_message_chars = max_message_chars or int(
            os.environ.get("MAX_MESSAGE_CHARS", DEFAULT_MAX_MESSAGE_CHARS)
        )
        self.verifier = verifier_from_env()
        self.turns = turns or IdempotentTurns()
        self.sender_limiter = sender_limiter or RateLimiter(0)
        self.address_limiter = address_limiter or RateLimiter(0)

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> "VerifiedRestInput":
        credentials = credentials or {}
        return cls(credentials.get("max_message_chars"), sender_limiter=sender_limiter(),
                   address_limiter=address_limiter())

    async def within_rate_limits(self, sender_id: str, address: str) -> bool:
        """Count one message of ``sender_id`` from ``address``; False when either is over its limit."""
        sender_ok = await self.sender_limiter.take(sender_id)
        address_ok = await self.address_limiter.take(address)
        return sender_ok and address_ok

    def _identify(self, request: Request) -> Optional[PortalIdentity]:
        """The verified customer of this request, None if anonymous.

        Raises:
            InvalidPortalToken: a token was sent but is not valid.
        """
        metadata = request.json.get("metadata") if isinstance(request.json, dict) else None
        token = _bearer_token(request) or (
            metadata.get("token") if isinstance(metadata, dict) else None)
        if token is None:
            return None
        if self.verifier is None:
            raise InvalidPortalToken("portal tokens are not configured")
        return self.verifier.verify(token)

    def blueprint(
        self, on_new_message: Callable[[UserMessage], Awaitable[Any]]
    ) -> Blueprint:
        """The stock REST channel's routes, with identity and size checks first."""
        webhook = Blueprint(f"verified_rest_{id(self)}", __name__)

        @webhook.listener("before_server_stop")
        async def close_clients(_app: Any, _loop: Any) -> None:
            await self.turns.claims.close()
            for limiter in (self.sender_limiter, self.address_limiter):
                if isinstance(limiter, RedisRateLimiter):
                    await limiter.close()

        @webhook.route("/", methods=["GET"])
        async def health(_request: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            body = request.json if isinstance(request.json, dict) else None
            if body is None:
                return response.json({"error": "send a JSON object"}, status=400)
            text, sender = body.get("message"), body.get("sender")
            if not isinstance(text, str) or not isinstance(sender, str) or not sender:
                return response.json({"error": "'sender' and 'message' are required strings"}, status=400)
            message_id = body.get("message_id") or request.headers.get(REQUEST_ID_HEADER) or None
            if message_id is not None and (not isinstance(message_id, str)
                                           or len(message_id) > MAX_MESSAGE_ID_CHARS):
                return response.json({"error": f"'message_id' must be a string of at most "
                                               f"{MAX_MESSAGE_ID_CHARS} characters"}, status=400)
            try:
                identity = self._identify(request)
            except InvalidPortalToken as error:
                logger.warning("REST message refused: invalid portal token (%s)", error)
                return response.json({"error": "invalid or expired portal token"}, status=401)
            address = client_address(request)
            if identity is None:
                sender_id, metadata = anonymous_sender_id(sender, address), {}
            else:
                sender_id = verified_sender_id("rest", identity)
                metadata = {VERIFIED_IDENTITY_KEY: dict(identity.as_metadata(), channel="rest")}
            if len(text) > self.max_message_chars:
                # A chat reply, not an HTTP error: the customer reads it in the chat.
                return response.json([{"recipient_id": sender_id, "text": too_long_reply(
                    len(text), self.max_message_chars)}])
            if not await self.within_rate_limits(sender_id, address):
                logger.warning("REST message refused: over the message rate limit (sender %s)",
                               sender_id)
                return response.json([{"recipient_id": sender_id, "text": SLOW_DOWN}])

            async def turn() -> Replies:
                collector = CollectingOutputChannel()
                await on_new_message(UserMessage(text, collector, sender_id, input_channel=self.name(),
                                                 metadata=metadata, message_id=message_id))
                return collector.messages

            try:
                if message_id is None:
                    replies = await turn()
                else:
                    replies = await self.turns.run(sender_id, message_id, tracker_lookup(request.app), turn)
            except Exception:  # noqa: BLE001 - reported to the caller, not swallowed
                logger.exception("REST message could not be handled (sender %s)", sender_id)
                return response.json(
                    {"error": "the assistant could not handle this message; please try again"},
                    status=500,
                )
            return response.json(replies)

        return webhook
