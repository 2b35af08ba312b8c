"""A bounded, time-limited memory of ids already handled (webhook de-duplication).

Slack retries an event it thinks was not delivered (same ``event_id``, with
``X-Slack-Retry-Num``), Telegram re-sends an update it could not deliver (same
``update_id``). :class:`RecentIds` remembers the ids a channel accepted, so a
redelivery never runs a turn, and with it an account operation, a second time.

The memory lives in one process. Several Rasa instances behind a load balancer
need a shared store instead (for example Redis ``SET key 1 NX EX ttl``), or a
retry that reaches another instance runs again.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Callable, Hashable

DEFAULT_TTL_SECONDS = 3600.0
DEFAULT_MAX_ENTRIES = 10_000

Clock = Callable[[], float]


class RecentIds:
    """Ids seen in the last ``ttl_seconds``, at most ``max_entries`` of them.

    When full, the oldest ids are forgotten first; the bound keeps a flood of
    events from growing memory without limit.
    """

    def __init__(self, ttl_seconds: float = DEFAULT_TTL_SECONDS,
                 max_entries: int = DEFAULT_MAX_ENTRIES,
                 clock: Clock = time.monotonic) -> None:
        if ttl_seconds <= 0 or max_entries <= 0:
            raise ValueError("ttl_seconds and max_entries must be positive")
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._clock = clock
        self._seen: "OrderedDict[Hashable, float]" = OrderedDict()

    def __len__(self) -> int:
        self._forget_expired(self._clock())
        return len(self._seen)

    def __contains__(self, key: Hashable) -> bool:
        self._forget_expired(self._clock())
        return key in self._seen

    def first_time(self, key: Hashable) -> bool:
        """Remember ``key``; True if it was not seen within the TTL.

        Check and insert happen in one call with no ``await`` in between, so
        two deliveries handled concurrently on one event loop cannot both win.
        """
        now = self._clock()
        self._forget_expired(now)
        if key in self._seen:
            return False
        self._seen[key] = now + self.ttl_seconds
        while len(self._seen) > self.max_entries:
            self._seen.popitem(last=False)
        return True

    def _forget_expired(self, now: float) -> None:
        # Entries are in insertion order and share one TTL, so expiry times
        # increase along the dict: stop at the first one still valid.
        while self._seen:
            key, expires_at = next(iter(self._seen.items()))
            if expires_at > now:
                break
            del self._seen[key]
