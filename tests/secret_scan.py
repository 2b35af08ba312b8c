"""Scans for secrets in stored data and logs that match whole tokens only.

A 6-digit code is a substring of about one SHA-256 hex digest in 16,000 and of
any float timestamp's fraction once in a million: a plain ``code in text``
fails by chance. Here a secret counts as found only where it stands as a
token of its own: not inside a run of letters, digits, ``_`` or ``-`` (hex
digests, base64 tokens, UUIDs, ids), and not right after ``<digit>.`` (the
fraction of a timestamp or duration). A secret written out in a message,
JSON value, URL query or log line ("code 123456", ``"123456"``,
``token=abc...``) is still found.
"""

from __future__ import annotations

import re
from typing import Iterable, List

_WORD = r"A-Za-z0-9_\-"


def _pattern(secret: str) -> "re.Pattern[str]":
    return re.compile(rf"(?<![{_WORD}])(?<![0-9]\.){re.escape(secret)}(?![{_WORD}])")


def contains_secret(text: str, secret: str) -> bool:
    """True when ``secret`` stands in ``text`` as a whole token (see the module docstring)."""
    if not secret:
        raise ValueError("an empty secret matches everything")
    return _pattern(secret).search(text) is not None


def leaked(text: str, secrets: Iterable[str]) -> List[str]:
    """The ``secrets`` that stand in ``text`` as whole tokens (empty: none leaked)."""
    return [secret for secret in secrets if contains_secret(text, secret)]
