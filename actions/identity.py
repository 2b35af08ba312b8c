"""Who is chatting: only identities our channels verified.

Channels put a verified customer under the ``verified_identity`` key of each
message's metadata (channels/rest.py, channels/socketio.py), from a signed
portal token. Nothing a user types (slots, entities, ``/intent{...}``
messages) can set it. Actions read it from the latest message only, so a
token that expired mid-conversation stops authorising operations.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Dict, Optional

from rasa_sdk import Tracker

from accounts.deps import Actor

VERIFIED_IDENTITY_KEY = "verified_identity"
TRUSTED_SOURCES = ("portal_token",)


@dataclass(frozen=True)
class Customer:
    """A verified customer: the account and the signed-in member's email."""

    account_id: int
    email: str
    channel: str

    @property
    def actor(self) -> Actor:
        """The customer as the account domain's acting member."""
        return Actor(account_id=self.account_id, member_email=self.email)


def _latest_user_event(tracker: Tracker) -> Optional[Dict[str, Any]]:
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            return event
    return None


def verified_customer(tracker: Tracker, now: Optional[dt.datetime] = None) -> Optional[Customer]:
    """The verified customer behind the latest message, or None if anonymous."""
    event = _latest_user_event(tracker)
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


def latest_message_id(tracker: Tracker) -> str:
    """The id of the latest user message (part of operations' idempotency keys)."""
    event = _latest_user_event(tracker) or {}
    return str(event.get("message_id") or event.get("timestamp") or "none")
