"""Support leads, passwords, sessions and sign-in rate limiting.

* Passwords are hashed with scrypt (``hashlib.scrypt``, N=2^15, r=8, p=1: about
  32 MB and tens of milliseconds per hash) and a random salt; the parameters are
  stored with the hash, so they can be raised later without breaking old hashes.
* A session is a random token in an HttpOnly, SameSite=Strict cookie; the
  database keeps only its SHA-256, the lead, a CSRF token and the expiry.
* Failed sign-ins are counted per account and per client address over 15
  minutes. An account is never locked: from its 5th failure on, the next
  attempt waits a progressive delay after the latest failure (2 minutes,
  doubling, at most 5), so a stranger's guesses slow a lead down but never shut
  them out for long. An address gets 30 failures per 15 minutes. During a wait
  sign-in is refused with the seconds to wait, even with the right password.
  The e-mail is stored only as a SHA-256 digest.
* The client address is the connection's peer; ``X-Forwarded-For`` counts
  only when the peer is one of the configured proxies
  (``CONSOLE_TRUSTED_PROXIES``, :func:`client_address`).

Functions take a connection and ``now`` (unix time) so tests control time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
import secrets
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Optional, Sequence, Union

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from console.models import lead, login_failure, session

SCRYPT_N = 2 ** 15
SCRYPT_R = 8
SCRYPT_P = 1
SCRYPT_DKLEN = 32
SCRYPT_MAXMEM = 64 * 1024 * 1024
SALT_BYTES = 16

MIN_PASSWORD_CHARS = 12
MAX_PASSWORD_CHARS = 1024
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}\.[^@\s]{2,}$")

FAILURE_WINDOW_SECONDS = 15 * 60
#: Failures of an account (within the window) before delays start.
MAX_FAILURES_PER_ACCOUNT = 5
#: The delay after the 5th failure, doubled for each further one, capped.
ACCOUNT_DELAY_BASE_SECONDS = 120
ACCOUNT_DELAY_MAX_SECONDS = 5 * 60
MAX_FAILURES_PER_ADDRESS = 30

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


class LeadError(ValueError):
    """A lead cannot be created as asked (message is for the person at the keyboard)."""


def normalize_email(email: str) -> str:
    """Trimmed, lower-case e-mail address."""
    return email.strip().lower()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str) -> str:
    """Hash ``password`` as ``scrypt$N$r$p$salt$hash`` (base64 parts)."""
    salt = secrets.token_bytes(SALT_BYTES)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R,
                            p=SCRYPT_P, dklen=SCRYPT_DKLEN, maxmem=SCRYPT_MAXMEM)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches the stored hash (constant-time comparison)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(password.encode("utf-8"), salt=base64.b64decode(salt), n=int(n),
                                r=int(r), p=int(p), dklen=len(expected), maxmem=SCRYPT_MAXMEM)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


def burn_password_check(password: str) -> None:
    """Spend the time of a real check, so unknown e-mails answer as slowly as known ones."""
    verify_password(password, _dummy_hash())


def check_new_password(password: str) -> None:
    """Raise :class:`LeadError` if ``password`` is not acceptable for a lead."""
    if len(password) < MIN_PASSWORD_CHARS:
        raise LeadError(f"The password must have at least {MIN_PASSWORD_CHARS} characters.")
    if len(password) > MAX_PASSWORD_CHARS:
        raise LeadError(f"The password must have at most {MAX_PASSWORD_CHARS} characters.")


def create_lead(conn: Connection, email: str, password: str, *, now: float,
                reset_password: bool = False) -> int:
    """Add a support lead (or set a new password for an existing one).

    Args:
        conn: Connection inside a write transaction.
        email: The lead's e-mail address (their sign-in name).
        password: The new password (at least 12 characters).
        now: Current unix time.
        reset_password: Replace the password of an existing lead instead of failing.

    Returns:
        The lead's id.

    Raises:
        LeadError: Invalid e-mail or password, or the lead exists and ``reset_password`` is off.
    """
    address = normalize_email(email)
    if not EMAIL_RE.match(address):
        raise LeadError(f"{email!r} is not an e-mail address.")
    check_new_password(password)
    existing = conn.execute(sa.select(lead.c.id).where(lead.c.email == address)).scalar()
    if existing is not None:
        if not reset_password:
            raise LeadError(f"A lead {address} exists already (use --reset-password to change it).")
        conn.execute(lead.update().where(lead.c.id == existing)
                     .values(password_hash=hash_password(password), disabled=False))
        conn.execute(session.delete().where(session.c.lead_id == existing))
        return int(existing)
    result = conn.execute(lead.insert().values(
        email=address, password_hash=hash_password(password), created_at=now, disabled=False))
    return int(result.inserted_primary_key[0])


@dataclass(frozen=True)
class Lead:
    """A support lead, as sign-in sees them."""

    id: int
    email: str
    password_hash: str
    disabled: bool


def find_lead(conn: Connection, email: str) -> Optional[Lead]:
    """The lead with ``email``, or None."""
    row = conn.execute(sa.select(lead).where(lead.c.email == normalize_email(email))).first()
    return Lead(row.id, row.email, row.password_hash, bool(row.disabled)) if row else None


def _account_bucket(email: str) -> str:
    return "account:" + hashlib.sha256(normalize_email(email).encode()).hexdigest()


def _address_bucket(address: str) -> str:
    return "address:" + (address or "unknown")[:90]


def account_delay_seconds(failures: int) -> int:
    """The wait after an account's latest failure, given its failures in the window (0 below 5)."""
    if failures < MAX_FAILURES_PER_ACCOUNT:
        return 0
    doublings = min(failures - MAX_FAILURES_PER_ACCOUNT, 16)
    return min(ACCOUNT_DELAY_MAX_SECONDS, ACCOUNT_DELAY_BASE_SECONDS * 2 ** doublings)


def _failure_times(conn: Connection, bucket: str, since: float, limit: int) -> list:
    return [row.at for row in conn.execute(
        sa.select(login_failure.c.at)
        .where(login_failure.c.bucket == bucket, login_failure.c.at > since)
        .order_by(login_failure.c.at.desc())
        .limit(limit)
    )]


def seconds_until_allowed(conn: Connection, email: str, address: str, *, now: float) -> int:
    """0 if a sign-in may be tried now, else how many seconds to wait.

    The account waits :func:`account_delay_seconds` after its latest failure;
    the address waits until the oldest of its last 30 failures leaves the window.
    """
    since = now - FAILURE_WINDOW_SECONDS
    wait = 0
    account = _failure_times(conn, _account_bucket(email), since, MAX_FAILURES_PER_ACCOUNT + 16)
    if account:
        wait = max(0, int(account[0] + account_delay_seconds(len(account)) - now + 0.999))
    address_times = _failure_times(conn, _address_bucket(address), since, MAX_FAILURES_PER_ADDRESS)
    if len(address_times) >= MAX_FAILURES_PER_ADDRESS:
        # The oldest of the last 30 failures must leave the window.
        wait = max(wait, int(address_times[-1] + FAILURE_WINDOW_SECONDS - now) + 1)
    return wait


def parse_trusted_proxies(value: Optional[str]) -> tuple:
    """Networks from ``CONSOLE_TRUSTED_PROXIES`` (comma-separated addresses or CIDRs); raises ValueError."""
    networks = []
    for part in (value or "").split(","):
        if part.strip():
            try:
                networks.append(ipaddress.ip_network(part.strip(), strict=False))
            except ValueError:
                raise ValueError(f"CONSOLE_TRUSTED_PROXIES: {part.strip()!r} is not an address or network") from None
    return tuple(networks)


def _is_trusted(address: str, proxies: Iterable[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip.version == net.version and ip in net for net in proxies)


def client_address(peer: Optional[str], forwarded_for: Sequence[str], trusted_proxies: Sequence[Network]) -> str:
    """The address a sign-in is counted against.

    The connection's ``peer``, unless it is a trusted proxy: then the nearest
    ``X-Forwarded-For`` entry (read from the right) that is not a trusted proxy
    itself. Entries a client wrote further left are never believed.

    Args:
        peer: The TCP peer (``request.remote``).
        forwarded_for: Every ``X-Forwarded-For`` header value, in order.
        trusted_proxies: From :func:`parse_trusted_proxies`.
    """
    address = peer or "unknown"
    if not _is_trusted(address, trusted_proxies):
        return address
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop, trusted_proxies):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return address  # garbage from the proxy chain: count it against the proxy
        address = hop
    return address


def record_failure(conn: Connection, email: str, address: str, *, now: float) -> None:
    """Count one failed sign-in against the account and the client address."""
    conn.execute(login_failure.insert(), [
        {"bucket": _account_bucket(email), "at": now},
        {"bucket": _address_bucket(address), "at": now},
    ])
    conn.execute(login_failure.delete().where(login_failure.c.at < now - 2 * FAILURE_WINDOW_SECONDS))


def clear_failures(conn: Connection, email: str) -> None:
    """Forget the account's failures after a successful sign-in."""
    conn.execute(login_failure.delete().where(login_failure.c.bucket == _account_bucket(email)))


def token_digest(token: str) -> str:
    """SHA-256 of a session token, as stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(conn: Connection, lead_id: int, *, now: float, lifetime_seconds: float) -> str:
    """Create a session for ``lead_id`` and return the token for the cookie."""
    token = secrets.token_urlsafe(32)
    conn.execute(session.delete().where(session.c.expires_at < now))
    conn.execute(session.insert().values(
        token_hash=token_digest(token), lead_id=lead_id, csrf_token=secrets.token_urlsafe(32),
        created_at=now, expires_at=now + lifetime_seconds))
    return token


@dataclass(frozen=True)
class SignedIn:
    """The lead behind a valid session."""

    lead_id: int
    email: str
    csrf_token: str
    token_hash: str


def load_session(conn: Connection, token: Optional[str], *, now: float) -> Optional[SignedIn]:
    """The signed-in lead of a session cookie, or None if missing, unknown or expired."""
    if not token or len(token) > 200:
        return None
    digest = token_digest(token)
    row = conn.execute(
        sa.select(session.c.lead_id, session.c.csrf_token, session.c.expires_at, lead.c.email,
                  lead.c.disabled)
        .join(lead, lead.c.id == session.c.lead_id)
        .where(session.c.token_hash == digest)
    ).first()
    if row is None or row.expires_at <= now or row.disabled:
        return None
    return SignedIn(row.lead_id, row.email, row.csrf_token, digest)


def end_session(conn: Connection, token_hash: str) -> None:
    """Delete a session (sign-out)."""
    conn.execute(session.delete().where(session.c.token_hash == token_hash))
