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
* without a token the caller is anonymous: their sender id is namespaced with
  ``anon-`` so it can never address a verified customer's conversation;
* messages longer than ``MAX_MESSAGE_CHARS`` (default 2000) are not passed on: the
  answer is a chat reply asking for shorter messages.
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

from supportbot.portal_token import (
    VERIFIED_IDENTITY_KEY,
    InvalidPortalToken,
    PortalIdentity,
    verifier_from_env,
)

logger = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGE_CHARS = 2000


def verified_sender_id(prefix: str, identity: PortalIdentity) -> str:
    """The conversation id of a verified customer on one channel."""
    digest = hashlib.sha256(f"{identity.account_id}:{identity.email}".encode()).hexdigest()
    return f"{prefix}-{digest[:32]}"


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

    def __init__(self, max_message_chars: Optional[int] = None) -> None:
        self.max_message_chars = max_message_chars or int(
            os.environ.get("MAX_MESSAGE_CHARS", DEFAULT_MAX_MESSAGE_CHARS)
        )
        self.verifier = verifier_from_env()

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> "VerifiedRestInput":
        credentials = credentials or {}
        return cls(credentials.get("max_message_chars"))

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
            if len(text) > self.max_message_chars:
                # A chat reply, not an HTTP error: the customer reads it in the chat.
                return response.json([{"recipient_id": sender, "text": too_long_reply(
                    len(text), self.max_message_chars)}])
            try:
                identity = self._identify(request)
            except InvalidPortalToken as error:
                logger.warning("REST message refused: invalid portal token (%s)", error)
                return response.json({"error": "invalid or expired portal token"}, status=401)
            if identity is None:
                sender_id, metadata = f"anon-{sender[:64]}", {}
            else:
                sender_id = verified_sender_id("rest", identity)
                metadata = {VERIFIED_IDENTITY_KEY: dict(identity.as_metadata(), channel="rest")}
            collector = CollectingOutputChannel()
            try:
                await on_new_message(
                    UserMessage(text, collector, sender_id, input_channel=self.name(),
                                metadata=metadata)
                )
            except Exception:  # noqa: BLE001 - reported to the caller, not swallowed
                logger.exception("REST message could not be handled (sender %s)", sender_id)
                return response.json(
                    {"error": "the assistant could not handle this message; please try again"},
                    status=500,
                )
            return response.json(collector.messages)

        return webhook
