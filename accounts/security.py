"""Small helpers for secrets and e-mail addresses.

Tokens and codes are stored only as SHA-256 hex digests (:func:`hash_secret`).
Plain SHA-256 (no salt, no stretching) is adequate because every stored secret
is random with at least 128 bits of entropy; passwords are never hashed here
(the identity provider owns them).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

_EMAIL_RE = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)

MAX_EMAIL_LENGTH = 254


def hash_secret(value: str) -> str:
    """Return the SHA-256 hex digest of a token or code.

    Args:
        value: The raw secret.

    Returns:
        64 lowercase hex characters.
    """
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def normalize_email(email: str) -> str:
    """Return an e-mail address trimmed and lower-cased (the form we store).

    Args:
        email: Address as typed.

    Returns:
        The normalised address.
    """
    return email.strip().lower()


def is_valid_email(email: str) -> bool:
    """Check the practical shape of an address (``local@domain.tld``), not its existence.

    Args:
        email: Address, normalised or not.

    Returns:
        True if the address is well-formed.
    """
    email = email.strip()
    return len(email) <= MAX_EMAIL_LENGTH and bool(_EMAIL_RE.match(email))


# --------------------------------------------------------------------------- codes
#: Letters and digits of recovery codes (no 0, 1, I, O): 32 symbols, 5 bits each.
RECOVERY_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
ONE_TIME_CODE_DIGITS = 6


def numeric_code() -> str:
    """Return a random 6-digit one-time code (the default code generator)."""
    return f"{secrets.randbelow(10 ** ONE_TIME_CODE_DIGITS):0{ONE_TIME_CODE_DIGITS}d}"


def recovery_code() -> str:
    """Return a random recovery code ``XXXX-XXXX-XXXX-XXXX`` (80 bits; the default generator)."""
    symbols = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(16))
    return "-".join(symbols[i : i + 4] for i in range(0, 16, 4))


def totp_secret() -> str:
    """Return a random base32 TOTP secret of 160 bits (RFC 4226), the default generator."""
    return base64.b32encode(secrets.token_bytes(20)).decode("ascii")


def salted_hash(salt: str, value: str) -> str:
    """Return the SHA-256 hex digest of ``salt:value`` (short one-time codes).

    A per-code salt keeps identical codes from having identical hashes; a
    6-digit code stays guessable offline, which is why codes live 10 minutes.

    Args:
        salt: Random per-row salt.
        value: The raw code.

    Returns:
        64 lowercase hex characters.
    """
    return hash_secret(f"{salt}:{value}")


def same_secret(expected_hash: str, actual_hash: str) -> bool:
    """Compare two hex digests in constant time.

    Args:
        expected_hash: The stored digest.
        actual_hash: The digest of what was submitted.

    Returns:
        True if equal.
    """
    return hmac.compare_digest(expected_hash.encode("ascii"), actual_hash.encode("ascii"))


def normalize_code(code: str) -> str:
    """Return a typed code without whitespace, upper-cased (``"123 456"`` -> ``"123456"``).

    Args:
        code: As typed.

    Returns:
        The normalised code.
    """
    return "".join(str(code).split()).upper()
