"""Portal tokens: how the website tells the assistant who is signed in.

The portal (which knows who is signed in) issues a short-lived token signed
with HMAC-SHA256 under a secret it shares with the assistant
(``PORTAL_TOKEN_SECRET``). The chat channels verify it and take the customer's
identity from its claims, never from anything the visitor types or sends as
metadata.

Claims: ``iss`` = ``PORTAL_TOKEN_ISSUER`` (default ``portal``), ``aud`` =
``support-assistant``, ``sub`` = the account id, ``email`` = the signed-in
member's email, ``iat``, ``exp`` (at most ``MAX_LIFETIME`` after ``iat``) and
a unique ``jti``.

Demo sign-in (the widget page's "sign in as any account", local demos only)
issues tokens with the issuer :data:`DEMO_ISSUER`. A verifier accepts them
only where :func:`demo_sign_in_enabled` holds: ``WIDGET_DEMO_LOGIN=1``, the
portal secret is the development secret ``make run`` created in ``var/``
(:func:`development_secret`), and ``WEB_HOST`` is a loopback address. With a
real secret, or on a public interface, demo tokens identify nobody.

``python -m supportbot.portal_token --email clean@demo.example`` prints a
token for local testing (it needs ``PORTAL_TOKEN_SECRET``; the account id is
looked up in the account store by its primary email, or given with
``--account``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hmac
import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Optional

import jwt

from supportbot.settings import PROJECT_ROOT

#: Message metadata key under which channels put a verified customer
#: (``PortalIdentity.as_metadata()`` plus the channel); nothing else may set it.
VERIFIED_IDENTITY_KEY = "verified_identity"
AUDIENCE = "support-assistant"
DEFAULT_ISSUER = "portal"
#: Issuer of demo sign-in tokens; rejected unless demo sign-in is enabled.
DEMO_ISSUER = "demo-sign-in"
#: Where ``make run`` keeps the development portal secret (git-ignored, owner-only).
DEV_PORTAL_SECRET_FILE = PROJECT_ROOT / "var" / "dev_portal_token_secret"
ALGORITHM = "HS256"
MAX_LIFETIME = dt.timedelta(hours=12)
DEFAULT_LIFETIME = dt.timedelta(hours=1)
MIN_SECRET_BYTES = 32
LEEWAY_SECONDS = 30

Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    """The current time, timezone-aware UTC."""
    return dt.datetime.now(dt.timezone.utc)


class InvalidPortalToken(Exception):
    """The token is missing, forged, expired or malformed. The message is safe to log."""


@dataclass(frozen=True)
class PortalIdentity:
    """A customer verified by a portal token."""

    account_id: str
    email: str
    expires_at: dt.datetime
    token_id: str

    def as_metadata(self) -> dict:
        """The identity as message metadata for Rasa (no token, no secret)."""
        return {
            "account_id": self.account_id,
            "email": self.email,
            "source": "portal_token",
            "expires_at": self.expires_at.isoformat(),
        }


@dataclass(frozen=True)
class PortalTokenVerifier:
    """Verifies portal tokens with a shared secret."""

    secret: str
    issuer: str = DEFAULT_ISSUER
    clock: Clock = utc_now
    accepts_demo_tokens: bool = False

    def __post_init__(self) -> None:
        if len(self.secret.encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"PORTAL_TOKEN_SECRET must be at least {MIN_SECRET_BYTES} bytes")
        if self.issuer == DEMO_ISSUER:
            raise ValueError(f"PORTAL_TOKEN_ISSUER may not be {DEMO_ISSUER!r}, the demo sign-in's issuer")

    def issue(self, account_id: str, email: str,
              lifetime: dt.timedelta = DEFAULT_LIFETIME, *, demo: bool = False) -> str:
        """A signed token for ``account_id`` / ``email`` (what the portal does; ``demo``: demo sign-in's)."""
        if lifetime > MAX_LIFETIME:
            raise ValueError("token lifetime too long")
        now = self.clock()
        claims = {
            "iss": DEMO_ISSUER if demo else self.issuer, "aud": AUDIENCE, "sub": str(account_id),
            "email": email.strip().lower(), "iat": int(now.timestamp()),
            "exp": int((now + lifetime).timestamp()), "jti": secrets.token_hex(16),
        }
        return jwt.encode(claims, self.secret, algorithm=ALGORITHM)

    def verify(self, token: Optional[str]) -> PortalIdentity:
        """The identity in ``token``; raises :class:`InvalidPortalToken` if it is not valid."""
        if not token or not isinstance(token, str):
            raise InvalidPortalToken("no token")
        try:
            claims = jwt.decode(
                token, self.secret, algorithms=[ALGORITHM], audience=AUDIENCE,
                issuer=[self.issuer, DEMO_ISSUER] if self.accepts_demo_tokens else self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["iss", "exp", "iat", "sub", "email", "jti"], "verify_exp": False},
            )
        except jwt.PyJWTError as error:
            raise InvalidPortalToken(type(error).__name__) from None
        now = self.clock().timestamp()
        issued, expires = claims["iat"], claims["exp"]
        if not isinstance(issued, int) or not isinstance(expires, int):
            raise InvalidPortalToken("malformed times")
        if expires + LEEWAY_SECONDS < now:
            raise InvalidPortalToken("expired")
        if issued - LEEWAY_SECONDS > now or expires - issued > MAX_LIFETIME.total_seconds():
            raise InvalidPortalToken("bad lifetime")
        email = claims["email"]
        if not isinstance(email, str) or "@" not in email:
            raise InvalidPortalToken("malformed email")
        return PortalIdentity(
            account_id=str(claims["sub"]), email=email.lower(),
            expires_at=dt.datetime.fromtimestamp(expires, dt.timezone.utc),
            token_id=str(claims["jti"]),
        )


def development_secret(path: Path = DEV_PORTAL_SECRET_FILE, *, create: bool = False) -> Optional[str]:
    """The development portal secret in ``var/`` (created with ``create``); None if there is none."""
    if create and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(48))
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (an interface to listen on) is reachable from this machine only."""
    host = host.strip().strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _flag(value: Optional[str]) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def demo_sign_in_refusal(environ: Optional[Mapping[str, str]] = None,
                         dev_secret_file: Path = DEV_PORTAL_SECRET_FILE) -> Optional[str]:
    """Why demo sign-in is off (None when it is on): it needs the flag, the development secret, loopback."""
    env = os.environ if environ is None else environ
    if not _flag(env.get("WIDGET_DEMO_LOGIN")):
        return "WIDGET_DEMO_LOGIN is off"
    secret, development = env.get("PORTAL_TOKEN_SECRET") or "", development_secret(dev_secret_file)
    if not development or not hmac.compare_digest(secret.encode(), development.encode()):
        return "PORTAL_TOKEN_SECRET is not the development secret in var/"
    if not is_loopback_host(env.get("WEB_HOST") or "127.0.0.1"):
        return "WEB_HOST is not a loopback address"
    return None


def demo_sign_in_enabled(environ: Optional[Mapping[str, str]] = None,
                         dev_secret_file: Path = DEV_PORTAL_SECRET_FILE) -> bool:
    """Whether demo sign-in may run: ``WIDGET_DEMO_LOGIN=1``, the development secret, a loopback ``WEB_HOST``."""
    return demo_sign_in_refusal(environ, dev_secret_file) is None


def verifier_from_env(environ: Optional[Mapping[str, str]] = None,
                      clock: Clock = utc_now) -> Optional[PortalTokenVerifier]:
    """The verifier configured by ``PORTAL_TOKEN_SECRET``; None when it is not set.

    It accepts demo sign-in tokens only when :func:`demo_sign_in_enabled`.
    """
    env = os.environ if environ is None else environ
    secret = env.get("PORTAL_TOKEN_SECRET")
    if not secret:
        return None
    return PortalTokenVerifier(secret, env.get("PORTAL_TOKEN_ISSUER", DEFAULT_ISSUER), clock,
                               accepts_demo_tokens=demo_sign_in_enabled(env))


def main() -> None:
    """Print a portal token for local testing."""
    parser = argparse.ArgumentParser(description="Issue a portal token for local testing.")
    parser.add_argument("--account", help="account id (default: looked up by --email)")
    parser.add_argument("--email", required=True, help="the member's email")
    parser.add_argument("--minutes", type=int, default=60)
    args = parser.parse_args()
    verifier = verifier_from_env()
    if verifier is None:
        raise SystemExit("Set PORTAL_TOKEN_SECRET first.")
    account = args.account or _account_of(args.email)
    print(verifier.issue(account, args.email, dt.timedelta(minutes=args.minutes)))


def _account_of(email: str) -> str:
    """The id of the account whose primary email is ``email`` (ACCOUNTS_DB_URL)."""
    import sqlalchemy as sa

    from accounts.db import make_session_factory
    from accounts.models import Account

    with make_session_factory()() as session:
        account_id = session.execute(sa.select(Account.id).where(
            Account.primary_email == email.strip().lower())).scalar_one_or_none()
    if account_id is None:
        raise SystemExit(f"No account has the primary email {email}; pass --account.")
    return str(account_id)


if __name__ == "__main__":
    main()
