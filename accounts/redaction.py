"""Masking secrets before text or data is stored, logged or shown to staff.

The one home of redaction: the tracker store (:mod:`supportbot.redaction`),
the log-record factory (:mod:`supportbot.log_redaction`), support requests,
the outbox, mail and helpdesk errors and the lost-TFA support context all use it. It
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

# One pattern set for every layer. Every rule runs in time linear in the text
# (tested on 100,000-character adversarial inputs): quantifiers that can repeat
# without bound either consume a whole run of their characters from a position
# a look-behind pins to the run's start, or are bounded; look-aheads are bounded.
# Rules start with a character (class), the look-behind after it, so the regex
# engine skips ahead to candidates instead of trying every position.
# A rule that needs a decision about a whole run (a long random-looking string,
# a link with a secret in it) matches the run and decides in a function.

_RUN = "A-Za-z0-9_-"  # characters of keys, codes and tokens
_HAS_DIGIT = re.compile(r"\d")
_HAS_LETTER = re.compile(r"[A-Za-z]")

#: JSON Web Tokens (portal tokens and the like).
_JWT = re.compile(rf"eyJ(?<![{_RUN}]eyJ)[{_RUN}]{{5,}}\.[{_RUN}]{{5,}}\.[{_RUN}]{{5,}}")
#: A whole link; masked from ``http`` on when it carries a token or code.
_LINK = re.compile(r"https?://\S+", re.IGNORECASE)
_LINK_SECRET_WORDS = re.compile(r"token|code|reset|invit|secret|enroll|not-me", re.IGNORECASE)
#: Query parameters carrying secrets in request lines ("GET /tfa/enroll?token=...").
_QUERY_SECRET = re.compile(r"(?<=[?&])(?:token|code|secret|key|otp)=[^&\s\"']+", re.IGNORECASE)
#: Recovery codes: ABCD-EFGH-2345-JKLM, DEMO-RECOVERY-01, abcd-ef23 (upper case,
#: or with a digit, or in the 4x4 shape), typed with spaces too (ABCD EFGH 2345
#: JKLM, abcd efgh 2345 jklm, DEMO RECOVERY 01); not words such as
#: "site-packages" or "follow-up", nor the local part of an e-mail address.
_RECOVERY_CODE = re.compile(  # the first character, then: not inside a word or after an "@"
    r"[A-Za-z0-9](?<![@\w][A-Za-z0-9])(?:"
    r"[A-Za-z0-9]{3,15}(?:-[A-Za-z0-9]{2,16}){1,3}"
    r"|[A-Za-z0-9]{3}(?:[ -][A-Za-z0-9]{4}){3}"
    r"|(?<=[A-Z0-9])[A-Z0-9]{3,11}(?: [A-Z0-9]{2,12}){2,3}"
    r")(?!\w)(?![\w.+-]{0,64}@)"
)
_GROUP_SEPARATOR = re.compile(r"[ -]")
_UPPER_GROUP = re.compile(r"[A-Z0-9]+")
_LETTER_GROUP = re.compile(r"[A-Za-z]{4}")


def _is_recovery_code(candidate: str) -> bool:
    """Whether a candidate of 2-4 groups (see :data:`_RECOVERY_CODE`) is shaped like a recovery code."""
    groups = _GROUP_SEPARATOR.split(candidate)
    has_digit = _HAS_DIGIT.search(candidate) is not None
    has_letter = _HAS_LETTER.search(candidate) is not None
    all_upper = all(_UPPER_GROUP.fullmatch(g) for g in groups)
    four_by_four = len(groups) == 4 and all(len(g) == 4 for g in groups)
    if four_by_four and (has_digit or all_upper):
        return True  # ABCD-EFGH-2345-JKLM, abcd efgh 2345 jklm, ABCD EFGH JKMN PQRS, a card number
    if not has_letter:
        return False  # dates and digit groups: the digit rules decide
    if " " not in candidate:  # DEMO-RECOVERY-01, abcd-ef23, abcd-efgh-jkmn-pqrs
        return all_upper or has_digit or (four_by_four and all(_LETTER_GROUP.fullmatch(g) for g in groups))
    return all_upper and has_digit and len(groups) >= 3  # DEMO RECOVERY 01


def _mask_recovery_codes(text: str) -> str:
    return _RECOVERY_CODE.sub(lambda m: MASK if _is_recovery_code(m.group()) else m.group(), text)


#: One-time codes: 6 to 10 digits, not part of an amount or a version.
_DIGIT_CODE = re.compile(r"\d(?<!\d\d)(?<!\d[.,]\d)\d{5,9}(?!\d)(?![.,]\d)")
#: Codes typed in groups: "123 456", "123-4567", "12 34 56", "1 2 3 4 5 6". Not
#: applied to log lines, where "200 392" (a status and a size) is far more
#: common than a typed code.
_SPLIT_CODE = re.compile(  # the first digit, then: not after a digit or a decimal point
    r"\d(?<!\d\d)(?<!\d[.,]\d)(?:\d{2,4}[ -]\d{3,5}|\d[ -]\d{2}[ -]\d{2}|(?:[ -]\d){5,9})(?!\d)(?![.,]\d)"
)
#: A whole run of key characters, judged by :func:`_is_key_like`.
_KEY_RUN = re.compile(rf"[{_RUN}](?<![{_RUN}][{_RUN}])[{_RUN}]{{11,}}")
_BASE32 = re.compile(r"[A-Z2-7]{16,}")
_UPPER_CODE = re.compile(r"[A-Z0-9-]{12,}")
#: "password is ...", "pw: ...".
_PASSWORD = re.compile(r"(?i)\b(pass(?:word)?|pwd|pw)\b(\s{0,8}(?:is|:|=)\s{0,8})\S+")


def _is_key_like(run: str, min_length: int) -> bool:
    """Whether a run of key characters looks random: an API key, a secret, a code without dashes."""
    if len(run) >= min_length and _HAS_DIGIT.search(run) and _HAS_LETTER.search(run):
        return True  # random-looking mix of letters and digits (16 for customers, 20 in bot messages)
    if min_length > 16:
        return False
    return bool(_BASE32.fullmatch(run)  # a TOTP secret, a recovery code of letters only
                or (_UPPER_CODE.fullmatch(run) and _HAS_DIGIT.search(run) and _HAS_LETTER.search(run)))


def _mask_key_runs(text: str, min_length: int) -> str:
    return _KEY_RUN.sub(lambda m: MASK if _is_key_like(m.group(), min_length) else m.group(), text)


def _mask_secret_links(text: str) -> str:
    return _LINK.sub(lambda m: MASK if _LINK_SECRET_WORDS.search(m.group(), 4) else m.group(), text)


def redact_tokens(text: str) -> str:
    """``text`` with tokens, secret links and long key-like strings masked (for bot messages).

    The assistant's own messages never contain codes; only tokens and links are
    masked there, so references such as SR-000002 and invoice numbers stay readable.
    """
    if not text:
        return text
    text = _JWT.sub(MASK, text)
    text = _mask_secret_links(text)
    text = _QUERY_SECRET.sub(MASK, text)
    return _mask_key_runs(text, min_length=20)


def redact_text(text: str, split_codes: bool = True) -> str:
    """``text`` with codes, tokens and passwords replaced by ``[redacted]``.

    ``split_codes=False`` leaves digit groups such as "200 392" alone (for logs).
    """
    if not text:
        return text
    redacted = _JWT.sub(MASK, text)
    redacted = _mask_secret_links(redacted)
    redacted = _QUERY_SECRET.sub(MASK, redacted)
    redacted = _mask_recovery_codes(redacted)
    redacted = _DIGIT_CODE.sub(MASK, redacted)
    redacted = _mask_key_runs(redacted, min_length=16)
    if split_codes:
        redacted = _SPLIT_CODE.sub(MASK, redacted)
    return _PASSWORD.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", redacted)


def redact_value(value: Any) -> Any:
    """Redact every string inside a JSON-like value (lists, tuples and mappings, recursively).

    Used on the conversation attached to a lost-TFA support request, among others.
    """
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, (list, tuple)):
        return [redact_value(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): redact_value(v) for k, v in value.items()}
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
