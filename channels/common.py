"""What the Socket.IO, Slack and Telegram channels share.

* The only identity an action may trust is metadata key ``verified_identity``,
  which our channels set from a verified portal token. Chat platforms' own
  user ids go under ``channel_user``: they say who wrote on Slack or Telegram,
  not which customer account that is (linking them is a later issue).
* Every channel refuses messages longer than ``MAX_MESSAGE_CHARS``.
* A channel whose secrets are not in the environment still mounts its routes,
  and they answer 503 "channel not configured", so the server starts with any
  subset of channels configured.
"""

from __future__ import annotations

import logging
import os
from http import HTTPStatus
from typing import Any, Dict, Iterable, Mapping, Optional

from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from supportbot.portal_token import VERIFIED_IDENTITY_KEY  # noqa: F401  (re-exported for the channels)

logger = logging.getLogger(__name__)

CHANNEL_USER_KEY = "channel_user"
DEFAULT_MAX_MESSAGE_CHARS = 2000


def env_value(name: str, environ: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """The stripped value of environment variable ``name``; None when unset or blank."""
    env = os.environ if environ is None else environ
    value = (env.get(name) or "").strip()
    return value or None


def max_message_chars(environ: Optional[Mapping[str, str]] = None) -> int:
    """The longest message a channel accepts (``MAX_MESSAGE_CHARS``, default 2000)."""
    value = env_value("MAX_MESSAGE_CHARS", environ)
    limit = int(value) if value else DEFAULT_MAX_MESSAGE_CHARS
    if limit <= 0:
        raise ValueError("MAX_MESSAGE_CHARS must be a positive number")
    return limit


def too_long_text(limit: int) -> str:
    """What a customer reads when their message is over ``limit`` characters."""
    return f"Sorry, that message is too long. Please keep messages under {limit} characters."


def channel_user_metadata(channel: str, channel_user_id: Any,
                          shared: bool = False) -> Dict[str, Dict[str, Any]]:
    """Message metadata naming the chat platform's user (not a verified customer).

    ``shared``: the message was written where others read along (a Slack
    channel, not a direct message); a channel link never acts there.
    """
    user: Dict[str, Any] = {"channel": channel, "channel_user_id": str(channel_user_id)}
    if shared:
        user["shared"] = True
    return {CHANNEL_USER_KEY: user}


def not_configured_blueprint(name: str, channel: str, missing: Iterable[str]) -> Blueprint:
    """Routes of a channel without its secrets: every request gets a clear 503."""
    missing = sorted(missing)
    message = (f"channel not configured: the {channel} channel needs the environment "
               f"variable(s) {', '.join(missing)}")
    logger.warning("The %s channel is off: set %s to turn it on.", channel, ", ".join(missing))
    blueprint = Blueprint(name, __name__)

    async def not_configured(_request: Request, path: str = "") -> HTTPResponse:
        return response.json({"error": message}, status=HTTPStatus.SERVICE_UNAVAILABLE)

    blueprint.add_route(not_configured, "/", methods=["GET", "POST"])
    blueprint.add_route(not_configured, "/<path:path>", methods=["GET", "POST"])
    return blueprint
