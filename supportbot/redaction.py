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


# Slots that hold one-time codes, recovery codes or similar while a form checks
# them. Their values, and the customer messages that filled them, are never
# stored (see redact_tracker_events).
SECRET_SLOTS = frozenset({
    "step_up_code", "email_code", "recovery_code", "link_code", "verification_code", "link_app_code",
})


def _mask_user_event(event: dict) -> dict:
    masked = dict(event, text=MASK)
    parse_data = dict(event.get("parse_data") or {})
    if parse_data:
        parse_data["text"] = MASK
        parse_data.pop("text_tokens", None)
        masked["parse_data"] = parse_data
    return masked


def redact_tracker_events(events: list, secret_slots: frozenset = SECRET_SLOTS) -> list:
    """Tracker events (``Event.as_dict()``) as they may be stored: no secrets in them.

    * a slot in ``secret_slots`` keeps its name but loses its value;
    * a customer message that filled a secret slot (a secret slot is set after it
      in the same batch) is replaced by ``[redacted]``, text and parse data;
    * every other customer message has codes and tokens masked, and the
      assistant's messages have tokens and secret links masked.

    Returns one event per input event, in order (stores count events).
    """
    redacted = []
    pending_user_index = None
    for event in events:
        kind = event.get("event")
        if kind == "user":
            pending_user_index = len(redacted)
            text = event.get("text") or ""
            clean = redact_text(text)
            if clean != text:
                event = dict(event, text=clean)
                if event.get("parse_data"):
                    event["parse_data"] = dict(event["parse_data"], text=clean)
            redacted.append(event)
        elif kind == "slot" and event.get("name") in secret_slots:
            if event.get("value") is not None:
                event = dict(event, value=MASK)
                if pending_user_index is not None:
                    redacted[pending_user_index] = _mask_user_event(redacted[pending_user_index])
            redacted.append(event)
        elif kind == "bot" and event.get("text"):
            redacted.append(dict(event, text=redact_tokens(event["text"])))
        else:
            redacted.append(event)
    return redacted
