"""Masking secrets in free text before it is stored or shown to staff.

Customers paste one-time codes, recovery codes, tokens and links into chats.
:func:`redact_text` replaces anything that looks like one with ``[redacted]``
so that support requests, transcripts and logs never carry it. It errs on the
side of masking: a 6-digit order number is masked too.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "[redacted]"

_PATTERNS = [
    # JSON Web Tokens (portal tokens and the like)
    re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}"),
    # links with a token or code in them
    re.compile(r"https?://\S*(?:token|code|reset|invit|secret)\S*", re.IGNORECASE),
    # recovery codes such as ABCD-1234 or DEMO-RECOVERY-01
    re.compile(r"\b[A-Za-z0-9]{4,}(?:-[A-Za-z0-9]{2,}){1,3}\b(?=[^@]*$|\s)"),
    # one-time codes: 6 to 10 digits, possibly split by a space or dash (123 456)
    re.compile(r"(?<![\d.,])\d{3,5}[ -]?\d{3,5}(?![\d.,])"),
    # long random-looking strings (API keys, secrets)
    re.compile(r"\b(?=[A-Za-z0-9_-]*\d)(?=[A-Za-z0-9_-]*[A-Za-z])[A-Za-z0-9_-]{20,}\b"),
    # "password is ..." / "pw: ..."
    re.compile(r"(?i)\b(pass(?:word)?|pwd|pw)\b(\s*(?:is|:|=)\s*)\S+"),
]


def redact_text(text: str) -> str:
    """``text`` with codes, tokens and passwords replaced by ``[redacted]``."""
    if not text:
        return text
    redacted = text
    for pattern in _PATTERNS[:-1]:
        redacted = pattern.sub(MASK, redacted)
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
