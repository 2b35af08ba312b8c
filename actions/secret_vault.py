"""Secrets a form needs for more than one turn, kept only in the action server's memory.

The tracker store never keeps secret slot values (supportbot/redaction.py), so
a form that needs two secrets from two messages (a recovery code, then an
emailed code) cannot read the first one back from the tracker. The first is
parked here, in this process only, for a few minutes, keyed by conversation;
the slot holds a placeholder. Several action servers behind a load balancer
would need sticky routing per conversation or a shared encrypted store.
"""

from __future__ import annotations

import threading
import time
from typing import Dict, Optional, Tuple

TTL_SECONDS = 15 * 60
MAX_ENTRIES = 10_000

_lock = threading.Lock()
_entries: Dict[Tuple[str, str], Tuple[float, str]] = {}


def park(conversation: str, name: str, secret: str) -> None:
    """Keep ``secret`` for this conversation for a few minutes."""
    now = time.monotonic()
    with _lock:
        for key in [k for k, (expires, _) in _entries.items() if expires < now]:
            del _entries[key]
        if len(_entries) >= MAX_ENTRIES:
            del _entries[min(_entries, key=lambda k: _entries[k][0])]
        _entries[(conversation, name)] = (now + TTL_SECONDS, secret)


def take(conversation: str, name: str) -> Optional[str]:
    """The parked secret, removed from memory; None if absent or expired."""
    with _lock:
        expires, secret = _entries.pop((conversation, name), (0.0, ""))
    return secret if expires >= time.monotonic() and secret else None
