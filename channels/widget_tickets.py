"""Credentials of the website widget that never travel in a URL or name a conversation.

Two kinds, both made and checked by the Socket.IO channel (channels/socketio.py):

* **Connect tickets.** A browser cannot set headers on rasa-webchat's socket,
  and a portal token in the socket URL ends up in proxy access logs. The page
  exchanges the token (in a POST body) for a connect ticket and puts that in
  the URL instead: the ticket is encrypted and authenticated (Fernet, key
  derived from ``PORTAL_TOKEN_SECRET``, so any Rasa instance can read it), says
  nothing readable about the customer, lives ``TICKET_SECONDS`` and is
  accepted once (per process, or once across instances with ``REDIS_URL``).
* **Anonymous sessions.** A visitor without a token holds a signed,
  expiring session key (``webanon-...``). Its conversation id is a one-way
  digest of that key, so what the tracker store, the review console and its
  exports show cannot be used to resume the session, and a channel link made
  in that session acts only for the browser that holds the key.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import re
import secrets
from typing import Any, Callable, Optional

from cryptography.fernet import Fernet, InvalidToken

from channels.dedup import RecentIds, SeenIds
from supportbot.portal_token import PortalIdentity, PortalTokenVerifier, utc_now

Clock = Callable[[], dt.datetime]

TICKET_SECONDS = 60
DEFAULT_SESSION_HOURS = 12
ANONYMOUS_PREFIX = "webanon"
_SESSION_KEY = re.compile(rf"^{ANONYMOUS_PREFIX}-([0-9a-f]{{32}})-([0-9a-f]{{1,12}})-([0-9a-f]{{32}})$")


class InvalidTicket(Exception):
    """The connect ticket is forged, expired, malformed or already used. Safe to log."""


def _derived_key(secret: bytes, purpose: bytes) -> bytes:
    return hmac.new(secret, purpose, hashlib.sha256).digest()


class ConnectTickets:
    """Issues and redeems the widget's one-time connect tickets."""

    def __init__(self, key: bytes, seen: Optional[SeenIds] = None, clock: Clock = utc_now,
                 lifetime_seconds: int = TICKET_SECONDS) -> None:
        self._fernet = Fernet(base64.urlsafe_b64encode(_derived_key(key, b"widget-connect-ticket")))
        self._seen = seen or RecentIds(ttl_seconds=2 * lifetime_seconds)
        self._clock = clock
        self.lifetime_seconds = lifetime_seconds

    @classmethod
    def for_verifier(cls, verifier: PortalTokenVerifier, seen: Optional[SeenIds] = None,
                     clock: Clock = utc_now) -> "ConnectTickets":
        """Keyed from the portal secret, so every Rasa instance reads the others' tickets."""
        return cls(verifier.secret.encode(), seen, clock)

    def issue(self, identity: PortalIdentity) -> str:
        """A ticket for ``identity``, valid for ``lifetime_seconds`` and one connection."""
        claims = {"a": identity.account_id, "e": identity.email, "j": identity.token_id,
                  "x": int(identity.expires_at.timestamp())}
        now = int(self._clock().timestamp())
        return self._fernet.encrypt_at_time(json.dumps(claims).encode(), now).decode()

    async def redeem(self, ticket: Any) -> PortalIdentity:
        """The identity in ``ticket``, which can never be redeemed again.

        Raises:
            InvalidTicket: forged, expired, malformed, used, or the identity expired.
            channels.dedup.DedupUnavailable: the shared memory of used tickets is unreachable.
        """
        if not isinstance(ticket, str) or not ticket or len(ticket) > 1024:
            raise InvalidTicket("malformed connect ticket")
        now = self._clock()
        try:
            claims = json.loads(self._fernet.decrypt_at_time(
                ticket.encode(), self.lifetime_seconds, int(now.timestamp())))
            identity = PortalIdentity(
                account_id=str(claims["a"]), email=str(claims["e"]),
                expires_at=dt.datetime.fromtimestamp(int(claims["x"]), dt.timezone.utc),
                token_id=str(claims["j"]))
        except (InvalidToken, ValueError, KeyError, TypeError):
            raise InvalidTicket("forged or expired connect ticket") from None
        if identity.expires_at <= now:
            raise InvalidTicket("the portal token behind the connect ticket has expired")
        if not await self._seen.claim("ticket:" + hashlib.sha256(ticket.encode()).hexdigest()):
            raise InvalidTicket("connect ticket already used")
        return identity


class AnonymousSessions:
    """Issues and checks the signed, expiring session keys of anonymous widget visitors."""

    def __init__(self, key: bytes, clock: Clock = utc_now,
                 lifetime: dt.timedelta = dt.timedelta(hours=DEFAULT_SESSION_HOURS)) -> None:
        self._key = key
        self._clock = clock
        self.lifetime = lifetime

    @classmethod
    def for_verifier(cls, verifier: Optional[PortalTokenVerifier], clock: Clock = utc_now,
                     lifetime: dt.timedelta = dt.timedelta(hours=DEFAULT_SESSION_HOURS)
                     ) -> "AnonymousSessions":
        """Keyed from the portal secret, so keys survive a restart; else a random key."""
        if verifier is None:
            return cls(secrets.token_bytes(32), clock, lifetime)
        return cls(_derived_key(verifier.secret.encode(), b"widget-anonymous-session"), clock,
                   lifetime)

    def _signature(self, nonce: str, issued: str) -> str:
        return hmac.new(self._key, f"{nonce}-{issued}".encode(), hashlib.sha256).hexdigest()[:32]

    def new(self) -> str:
        """A fresh session key for a visitor (only the visitor's browser keeps it)."""
        nonce, issued = secrets.token_hex(16), format(int(self._clock().timestamp()), "x")
        return f"{ANONYMOUS_PREFIX}-{nonce}-{issued}-{self._signature(nonce, issued)}"

    def is_valid(self, session_key: Any) -> bool:
        """True if ``session_key`` is one this server issued and it has not expired."""
        match = _SESSION_KEY.match(session_key) if isinstance(session_key, str) else None
        if not match:
            return False
        nonce, issued, signature = match.groups()
        if not hmac.compare_digest(signature, self._signature(nonce, issued)):
            return False
        issued_at = dt.datetime.fromtimestamp(int(issued, 16), dt.timezone.utc)
        return issued_at <= self._clock() < issued_at + self.lifetime


def anonymous_conversation_id(session_key: str) -> str:
    """The conversation of an anonymous session: a one-way digest of its key."""
    return f"{ANONYMOUS_PREFIX}-{hashlib.sha256(session_key.encode()).hexdigest()[:32]}"
