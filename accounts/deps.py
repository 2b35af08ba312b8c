"""Injected dependencies of the operations: session factory, clock, tokens, outbox, settings.

Operations never read the wall clock, call :mod:`secrets` or open an engine
themselves; they get a :class:`Deps` object, so tests control time and tokens
without sleeping or patching::

    deps = Deps(session_factory=make_session_factory(url), clock=FrozenClock(...))
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

from sqlalchemy.orm import sessionmaker

from accounts.outbox import DbOutbox, Outbox
from accounts.security import numeric_code, recovery_code, totp_secret
from accounts.settings import Settings

#: A clock returns the current time as an aware UTC datetime.
Clock = Callable[[], datetime]

#: A token generator returns a fresh, unguessable, URL-safe string.
TokenGenerator = Callable[[], str]

#: A code generator returns a fresh one-time code of at least 6 digits.
CodeGenerator = Callable[[], str]


def utc_now() -> datetime:
    """Return the current time as an aware UTC datetime (the default clock)."""
    return datetime.now(timezone.utc)


def secret_token() -> str:
    """Return 32 random bytes, URL-safe base64 encoded (the default token generator)."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Actor:
    """The verified person acting: an account and the e-mail of one of its members.

    Identity is verified elsewhere (login, TFA); never build an Actor from
    what a user typed in a chat.

    Attributes:
        account_id: The account the actor acts on.
        member_email: E-mail address of the acting member.
    """

    account_id: int
    member_email: str

    def label(self) -> str:
        """Return the actor as written in audit events."""
        return f"member:{self.member_email.strip().lower()}"


@dataclass(frozen=True)
class Deps:
    """Everything an operation needs from outside.

    Attributes:
        session_factory: Factory from :func:`accounts.db.make_session_factory`.
        clock: Returns the current aware UTC time.
        tokens: Returns a fresh secret token (invitation, reset links).
        outbox: Writes customer notifications inside the operation's transaction.
        settings: Tunable rules (grace period, TTLs, rate limits, portal URL).
        codes: Returns a fresh e-mailed one-time code (6 random digits).
        recovery_codes: Returns a fresh TFA recovery code.
        totp_secrets: Returns a fresh base32 TOTP secret.
    """

    session_factory: sessionmaker
    clock: Clock = utc_now
    tokens: TokenGenerator = secret_token
    outbox: Outbox = field(default_factory=DbOutbox)
    settings: Settings = field(default_factory=Settings)
    codes: CodeGenerator = numeric_code
    recovery_codes: TokenGenerator = recovery_code
    totp_secrets: TokenGenerator = totp_secret

    def now(self) -> datetime:
        """Return the clock's time, checking that it is aware UTC.

        Raises:
            ValueError: If the clock returned a naive datetime.
        """
        value = self.clock()
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("the clock must return an aware datetime")
        return value.astimezone(timezone.utc)
