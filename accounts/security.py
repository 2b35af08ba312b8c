"""Small helpers for secrets and e-mail addresses.

Tokens and codes are stored only as SHA-256 hex digests (:func:`hash_secret`).
Plain SHA-256 (no salt, no stretching) is adequate because every stored secret
is random with at least 128 bits of entropy; passwords are never hashed here
(the identity provider owns them).
"""

from __future__ import annotations

import hashlib
import re

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
