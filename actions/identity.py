"""Who is chatting: only identities our channels verified.

Two sources, nothing else:

* a portal token: channels put the verified customer under the
  ``verified_identity`` key of each message's metadata (channels/rest.py,
  channels/socketio.py);
* a channel link: a Slack or Telegram user (metadata ``channel_user``, set by
  the channel after checking the platform's signature) or a website widget
  session that proved access to the account's primary email with a one-time
  code (accounts/channel_links.py).

Nothing a user types (slots, entities, ``/intent{...}`` messages) can set
either. Actions read them for the latest message only, so an expired token or
a revoked link stops authorising operations at once, and only when Rasa signed
that message's claims for this conversation (supportbot/action_claims.py):
a made-up tracker sent straight to the action server identifies nobody.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

from rasa_sdk import Tracker

from accounts.deps import Actor
from supportbot.action_claims import MissingClaimsKey, key_from_env, verified_user_event
from supportbot.portal_token import VERIFIED_IDENTITY_KEY

logger = logging.getLogger(__name__)

TRUSTED_SOURCES = ("portal_token",)


# Channels whose users can link their chat identity with an emailed code. The
# REST channel is not one: its sender ids are chosen by the caller.
LINKABLE_CHANNELS = ("slack", "telegram", "socketio")


@dataclass(frozen=True)
class Customer:
    """A verified customer: the account and the signed-in member's email."""

    account_id: int
    email: str
    channel: str
    source: str = "portal_token"

    @property
    def actor(self) -> Actor:
        """The customer as the account domain's acting member."""
        return Actor(account_id=self.account_id, member_email=self.email)


def _latest_user_event(tracker: Tracker) -> Optional[Dict[str, Any]]:
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            return event
    return None


def _signed_latest_user_event(tracker: Tracker, now: Optional[dt.datetime] = None) -> Optional[Dict[str, Any]]:
    """The latest user event if Rasa signed its claims for this conversation, else None."""
    try:
        key = key_from_env()
    except MissingClaimsKey as error:
        logger.error("%s: nobody can be identified.", error)
        return None
    return verified_user_event(tracker.sender_id, tracker.events, key, now)


def verified_customer(tracker: Tracker, now: Optional[dt.datetime] = None) -> Optional[Customer]:
    """The verified customer behind the latest message, or None if anonymous."""
    event = _signed_latest_user_event(tracker, now)
    metadata = (event or {}).get("metadata") or {}
    claims = metadata.get(VERIFIED_IDENTITY_KEY)
    if not isinstance(claims, dict) or claims.get("source") not in TRUSTED_SOURCES:
        return None
    try:
        account_id = int(claims["account_id"])
        email = str(claims["email"]).strip().lower()
        expires_at = dt.datetime.fromisoformat(str(claims["expires_at"]))
    except (KeyError, TypeError, ValueError):
        return None
    if expires_at <= (now or dt.datetime.now(dt.timezone.utc)) or "@" not in email:
        return None
    return Customer(account_id=account_id, email=email,
                    channel=str(claims.get("channel") or event.get("input_channel") or "unknown"))


def in_shared_channel(tracker: Tracker) -> bool:
    """True when the latest message was written where others read along (a Slack channel)."""
    user = ((_latest_user_event(tracker) or {}).get("metadata") or {}).get("channel_user")
    return isinstance(user, dict) and bool(user.get("shared"))


def chat_identity(tracker: Tracker) -> Optional[Tuple[str, str]]:
    """(channel, channel user id) of a chat user who could link their account, if any.

    None in a shared channel: a link, and any account detail, acts only in
    direct messages.
    """
    event = _signed_latest_user_event(tracker) or {}
    user = (event.get("metadata") or {}).get("channel_user")
    if isinstance(user, dict) and user.get("shared"):
        return None
    if isinstance(user, dict) and user.get("channel") in LINKABLE_CHANNELS and user.get("channel_user_id"):
        return str(user["channel"]), str(user["channel_user_id"])
    if event.get("input_channel") == "socketio" and tracker.sender_id:
        return "socketio", tracker.sender_id
    return None


async def identify(tracker: Tracker) -> Optional[Customer]:
    """The verified customer behind the latest message: portal token, then channel link."""
    customer = verified_customer(tracker)
    if customer is not None:
        return customer
    identity = chat_identity(tracker)
    if identity is None:
        return None
    from accounts.channel_links import find_linked_actor
    from actions.account_store import call_domain

    actor = await call_domain(find_linked_actor, *identity)
    if actor is None:
        return None
    return Customer(account_id=actor.account_id, email=actor.member_email,
                    channel=identity[0], source="channel_link")


def latest_message_id(tracker: Tracker) -> str:
    """The id of the latest user message (part of operations' idempotency keys)."""
    event = _latest_user_event(tracker) or {}
    return str(event.get("message_id") or event.get("timestamp") or "none")
