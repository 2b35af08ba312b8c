"""Masking secrets before text or data is stored, logged or shown to staff.

The one home of redaction: the tracker store (:mod:`supportbot.redaction`),
the log-record factory (:mod:`supportbot.log_redaction`), support requests,
the outbox, mail errors and the lost-TFA support context all use it. It
imports nothing from the rest of the project, so every layer can.

Customers paste one-time codes, recovery codes, tokens and links into chats.
:func:`redact_text` replaces anything that looks like one with ``[redacted]``.
It errs on the side of masking: a 6-digit order number is masked too.
"""

from __future__ import annotations

import re
from typing import Any, Dict, Iterable, Mapping

MASK = "[redacted]"

#: Payload keys starting with this prefix hold values that must never be logged.
SECRET_PREFIX = "secret_"

#: Key names that must never appear in audit details or non-secret payload fields.
FORBIDDEN_KEYS = frozenset({"token", "raw_token", "password", "new_password", "code", "recovery_code", "secret", "totp_secret"})

_PATTERNS = [
    # JSON Web Tokens (portal tokens and the like)
    re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}"),
    # links with a token or code in them
    re.compile(r"https?://\S*(?:token|code|reset|invit|secret)\S*", re.IGNORECASE),
    # query parameters carrying secrets in request lines ("GET /tfa/enroll?token=...")
    re.compile(r"(?<=[?&])(?:token|code|secret|key|otp)=[^&\s\"']+", re.IGNORECASE),
    # recovery codes such as ABCD-EFGH-2345-JKLM, DEMO-RECOVERY-01, abcd-ef23 (upper
    # case, or with a digit, or in the 4x4 shape), not words like "site-packages"
    re.compile(r"\b(?:[A-Z0-9]{4,}(?:-[A-Z0-9]{2,}){1,3}"
               r"|(?=[A-Za-z0-9-]*\d)[A-Za-z0-9]{4,}(?:-[A-Za-z0-9]{2,}){1,3}"
               r"|[A-Za-z]{4}-[A-Za-z]{4}-[A-Za-z]{4}-[A-Za-z]{4})\b(?=[^@]*$|\s)"),
    # one-time codes: 6 to 10 digits
    re.compile(r"(?<!\d)(?<!\d[.,])\d{6,10}(?!\d)(?![.,]\d)"),
    # long random-looking strings (API keys, secrets)
    re.compile(r"\b(?=[A-Za-z0-9_-]*\d)(?=[A-Za-z0-9_-]*[A-Za-z])[A-Za-z0-9_-]{20,}\b"),
    # "password is ..." / "pw: ..."
    re.compile(r"(?i)\b(pass(?:word)?|pwd|pw)\b(\s*(?:is|:|=)\s*)\S+"),
]


# The assistant's own messages never contain codes; only tokens and links are
# masked there, so references such as SR-000002 and invoice numbers stay readable.
_TOKEN_PATTERNS = _PATTERNS[:3] + [_PATTERNS[5]]


def redact_tokens(text: str) -> str:
    """``text`` with tokens, secret links and key-like strings masked (for bot messages)."""
    if not text:
        return text
    for pattern in _TOKEN_PATTERNS:
        text = pattern.sub(MASK, text)
    return text


# Codes typed in two halves ("123 456"). Not applied to log lines, where
# "200 392" (an HTTP status and a size) is far more common than a typed code.
_SPLIT_CODE = re.compile(r"(?<!\d)(?<!\d[.,])\d{3,5}[ -]\d{3,5}(?!\d)(?![.,]\d)")


def redact_text(text: str, split_codes: bool = True) -> str:
    """``text`` with codes, tokens and passwords replaced by ``[redacted]``.

    ``split_codes=False`` leaves digit groups such as "200 392" alone (for logs).
    """
    if not text:
        return text
    redacted = text
    for pattern in _PATTERNS[:-1]:
        redacted = pattern.sub(MASK, redacted)
    if split_codes:
        redacted = _SPLIT_CODE.sub(MASK, redacted)
    return _PATTERNS[-1].sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", redacted)


def redact_value(value: Any) -> Any:
    """Redact every string inside a JSON-like value."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, list):
        return [redact_value(v) for v in value]
    if isinstance(value, dict):
        return {k: redact_value(v) for k, v in value.items()}
    return value


_RECOVERY_CONTEXT_PATTERNS = (
    re.compile(r"https?://\S*(?:token|code|secret|enroll|not-me)\S*", re.IGNORECASE),
    re.compile(r"(?<=[?&])(?:token|code|secret|otp)=[^&\s\"']+", re.IGNORECASE),
    re.compile(r"\b[A-Za-z0-9]{4,}(?:-[A-Za-z0-9]{2,}){2,3}\b"),  # recovery codes: 3-4 groups
    re.compile(r"(?<!\d)\d{3,5}[ -]?\d{3,5}(?!\d)"),
    re.compile(r"\b(?=[A-Za-z0-9_-]*\d)(?=[A-Za-z0-9_-]*[A-Za-z])[A-Za-z0-9_-]{16,}\b"),
    re.compile(r"\b[A-Z2-7]{16,}\b"),
    re.compile(r"(?i)\b(?:pass(?:word)?|pwd|pw)\b\s*(?:is|:|=)\s*\S+"),
)


def scrub_secrets(value: Any) -> Any:
    """Return a JSON-like value with code-, token- and password-like text masked.

    Used on the conversation attached to a lost-TFA support request.

    Args:
        value: String, list or mapping (recursively).

    Returns:
        A scrubbed copy.
    """
    if isinstance(value, str):
        for pattern in _RECOVERY_CONTEXT_PATTERNS:
            value = pattern.sub(MASK, value)
        return value
    if isinstance(value, (list, tuple)):
        return [scrub_secrets(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): scrub_secrets(v) for k, v in value.items()}
    return value


def is_secret_key(key: Any) -> bool:
    """Whether a mapping key names a secret (``password``, ``token``, ``secret_*``...)."""
    lowered = str(key).lower()
    return lowered in FORBIDDEN_KEYS or lowered.startswith(SECRET_PREFIX)


def redact_secret_keys(data: Mapping[str, Any]) -> Dict[str, Any]:
    """Return ``data`` with secret-looking keys' values replaced by ``[redacted]``, recursively.

    Args:
        data: JSON-like mapping (support request context, for instance).

    Returns:
        A redacted copy.
    """
    out: Dict[str, Any] = {}
    for key, value in data.items():
        if is_secret_key(key):
            out[str(key)] = MASK
        elif isinstance(value, Mapping):
            out[str(key)] = redact_secret_keys(value)
        else:
            out[str(key)] = value
    return out


def redact_payload(payload: Mapping[str, Any]) -> Dict[str, Any]:
    """Return a copy of an outbox payload without its ``secret_*`` fields (safe to log).

    Args:
        payload: An outbox payload.

    Returns:
        The payload minus keys starting with :data:`SECRET_PREFIX`.
    """
    return {k: v for k, v in payload.items() if not k.startswith(SECRET_PREFIX)}


def mask_known_secrets(text: str, secrets: Iterable[Any]) -> str:
    """Replace every known secret value found in ``text`` by ``[redacted]``.

    Args:
        text: An error description or log text.
        secrets: Values that must not appear (short ones are ignored).

    Returns:
        The cleaned text.
    """
    for secret in secrets:
        value = "" if secret is None else str(secret)
        if len(value) >= 4:
            text = text.replace(value, MASK)
    return text
