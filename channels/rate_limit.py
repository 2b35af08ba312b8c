"""How many messages a chat connection, sender or address may send: token buckets in this process.

Each key (a Socket.IO connection, a REST sender, a client address) has a
bucket of ``per_minute`` messages that refills continuously; a message takes
one. An empty bucket means the customer reads :data:`SLOW_DOWN` instead of an
answer (a chat reply, not an HTTP error). The buckets live in one process: with
several Rasa instances each one counts its own share (sticky sessions keep a
widget connection on one instance).

Settings (supportbot/settings.py): ``CHAT_MESSAGES_PER_MINUTE`` (per
connection or sender, default 30) and ``CHAT_ADDRESS_MESSAGES_PER_MINUTE``
(per client address, REST only, default 300); ``0`` turns a limit off.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Callable, Hashable, Mapping, Optional, Tuple

from channels.common import env_value

DEFAULT_MESSAGES_PER_MINUTE = 30
DEFAULT_ADDRESS_MESSAGES_PER_MINUTE = 300
MAX_KEYS = 100_000
SLOW_DOWN = ("You're sending messages faster than I can answer. "
             "Please wait a moment, then send your message again.")


class RateLimiter:
    """Token buckets of ``per_minute`` messages per key; ``per_minute`` 0 never limits."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = MAX_KEYS) -> None:
        if per_minute < 0:
            raise ValueError("a rate limit cannot be negative")
        self.per_minute = per_minute
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: "OrderedDict[Hashable, Tuple[float, float]]" = OrderedDict()

    def allow(self, key: Hashable) -> bool:
        """Take one message from ``key``'s bucket; False when it is empty."""
        if self.per_minute == 0:
            return True
        now = self._clock()
        tokens, last = self._buckets.pop(key, (float(self.per_minute), now))
        tokens = min(float(self.per_minute), tokens + (now - last) * self.per_minute / 60.0)
        allowed = tokens >= 1.0
        self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
        while len(self._buckets) > self._max_keys:  # least recently used first
            self._buckets.popitem(last=False)
        return allowed

    def forget(self, key: Hashable) -> None:
        """Drop ``key``'s bucket (its connection closed)."""
        self._buckets.pop(key, None)


def _per_minute(name: str, default: int, environ: Optional[Mapping[str, str]]) -> int:
    value = env_value(name, environ)
    limit = int(value) if value else default
    if limit < 0:
        raise ValueError(f"{name} cannot be negative")
    return limit


def message_limiter(environ: Optional[Mapping[str, str]] = None) -> RateLimiter:
    """Per connection or sender: ``CHAT_MESSAGES_PER_MINUTE`` (default 30)."""
    return RateLimiter(_per_minute("CHAT_MESSAGES_PER_MINUTE", DEFAULT_MESSAGES_PER_MINUTE, environ))


def address_limiter(environ: Optional[Mapping[str, str]] = None) -> RateLimiter:
    """Per client address: ``CHAT_ADDRESS_MESSAGES_PER_MINUTE`` (default 300)."""
    return RateLimiter(_per_minute("CHAT_ADDRESS_MESSAGES_PER_MINUTE",
                                   DEFAULT_ADDRESS_MESSAGES_PER_MINUTE, environ))
