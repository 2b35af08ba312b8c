"""Memories of ids already handled (webhook de-duplication), per process or shared in Redis.

Slack retries an event it thinks was not delivered (same ``event_id``, with
``X-Slack-Retry-Num``), Telegram re-sends an update it could not deliver (same
``update_id``). A channel claims each id before it runs the turn, so a
redelivery never runs a turn, and with it an account operation, a second time.

* :class:`RecentIds` remembers ids in this process: enough for one Rasa
  instance (the default, and what tests use).
* :class:`RedisRecentIds` claims them in Redis with ``SET key 1 NX EX ttl``
  (keys ``supportbot:dedup:<channel>:<id>``), so a retry that reaches another
  Rasa instance behind the load balancer is refused there too.
  :func:`recent_ids` picks it when ``REDIS_URL`` is set.

If Redis cannot be reached, :meth:`RedisRecentIds.claim` raises
:class:`DedupUnavailable` and the channels answer 503 (fail closed): Slack
and Telegram deliver the event again later, when Redis may be back, instead
of an instance running a turn (perhaps an account operation) that another
instance may already have run. A claimed id whose turn then fails is not
retried (as with the in-memory memory).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from http import HTTPStatus
from typing import Callable, Hashable, Mapping, Optional, Union

import redis.asyncio as aioredis  # the client library comes with Rasa (redis 4.6)
from redis.exceptions import RedisError
from sanic import response
from sanic.response import HTTPResponse

from channels.common import env_value

logger = logging.getLogger(__name__)

DEFAULT_TTL_SECONDS = 3600.0
DEFAULT_MAX_ENTRIES = 10_000
#: Environment variable with the Redis URL shared by every Rasa instance (unset: per process).
ENV_REDIS_URL = "REDIS_URL"
#: Prefix of the de-duplication keys; the channel's name and the id follow.
KEY_PREFIX = "supportbot:dedup:"
#: Seconds a Redis connection or command may take before the webhook answers 503.
REDIS_TIMEOUT_SECONDS = 2.0

Clock = Callable[[], float]


class DedupUnavailable(Exception):
    """The shared memory of handled ids cannot be reached: answer 503 so the platform retries later."""


def dedup_unavailable() -> HTTPResponse:
    """The answer to a delivery that cannot be de-duplicated now: 503, deliver it again later."""
    return response.json({"error": "temporarily unavailable, retry later"},
                         status=HTTPStatus.SERVICE_UNAVAILABLE, headers={"Retry-After": "30"})


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

    async def claim(self, key: Hashable) -> bool:
        """:meth:`first_time`, with the interface of :class:`RedisRecentIds`."""
        return self.first_time(key)

    async def close(self) -> None:
        """Nothing to release (the interface of :class:`RedisRecentIds`)."""

    def _forget_expired(self, now: float) -> None:
        # Entries are in insertion order and share one TTL, so expiry times
        # increase along the dict: stop at the first one still valid.
        while self._seen:
            key, expires_at = next(iter(self._seen.items()))
            if expires_at > now:
                break
            del self._seen[key]


class RedisRecentIds:
    """Ids claimed in the last ``ttl_seconds`` by any instance sharing this Redis.

    The client is created on the first claim, inside the server's event loop;
    nothing connects at construction.
    """

    def __init__(self, url: str, channel: str, ttl_seconds: float = DEFAULT_TTL_SECONDS,
                 timeout_seconds: float = REDIS_TIMEOUT_SECONDS) -> None:
        if ttl_seconds < 1:
            raise ValueError("ttl_seconds must be at least 1")
        self.url = url
        self.prefix = f"{KEY_PREFIX}{channel}:"
        self.ttl_seconds = int(ttl_seconds)
        self.timeout_seconds = timeout_seconds
        self._client: Optional[aioredis.Redis] = None

    def _redis(self) -> aioredis.Redis:
        if self._client is None:
            self._client = aioredis.Redis.from_url(
                self.url, socket_timeout=self.timeout_seconds,
                socket_connect_timeout=self.timeout_seconds)
        return self._client

    async def claim(self, key: Hashable) -> bool:
        """Claim ``key`` for this instance; True if no instance claimed it within the TTL.

        Raises:
            DedupUnavailable: Redis could not be reached or answered an error.
        """
        try:
            created = await self._redis().set(f"{self.prefix}{key}", "1", nx=True, ex=self.ttl_seconds)
        except (RedisError, OSError, asyncio.TimeoutError) as error:
            logger.error("De-duplication store unreachable (%s): refusing the delivery with 503 "
                         "so it is retried", type(error).__name__)
            raise DedupUnavailable(str(self.prefix)) from error
        return bool(created)

    async def close(self) -> None:
        """Close the connections (the server is stopping)."""
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()  # with its connection pool (created by from_url)


SeenIds = Union[RecentIds, RedisRecentIds]


def recent_ids(channel: str, environ: Optional[Mapping[str, str]] = None) -> SeenIds:
    """The memory a channel de-duplicates with: Redis when ``REDIS_URL`` is set, else this process.

    Args:
        channel: The channel's name (``slack``, ``telegram``), part of every key.
        environ: Mapping to read ``REDIS_URL`` from; defaults to ``os.environ``.

    Returns:
        A :class:`RedisRecentIds` or a :class:`RecentIds`.
    """
    url = env_value(ENV_REDIS_URL, environ)
    return RedisRecentIds(url, channel) if url else RecentIds()
