"""How many messages a chat connection, sender or address may send: token buckets in this process.

Each key (a Socket.IO connection, a REST sender, a client address) has a
bucket of ``per_minute`` messages that refills continuously; a message takes
one. An empty bucket means the customer reads :data:`SLOW_DOWN` instead of an
answer (a chat reply, not an HTTP error). The buckets live in one process.
With ``REDIS_URL`` (several Rasa instances) the REST limits are counted in
Redis instead, by every instance together (:class:`RedisRateLimiter`: per
key and clock minute); a widget connection lives on one instance (sticky
sessions), so its bucket stays in the process.

Settings (supportbot/settings.py): ``CHAT_MESSAGES_PER_MINUTE`` (per
connection or sender, default 30) and ``CHAT_ADDRESS_MESSAGES_PER_MINUTE``
(per client address, REST only, default 0: off, because the chat page relays
all its visitors from one address; set it where REST clients call Rasa
directly); ``0`` turns a limit off. Load benchmarks and the test assistants,
which play many customers from one address, run with :data:`RATE_LIMITS_OFF`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from typing import Callable, Hashable, Mapping, Optional, Tuple, Union

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from channels.common import env_value

logger = logging.getLogger(__name__)

DEFAULT_MESSAGES_PER_MINUTE = 30
DEFAULT_ADDRESS_MESSAGES_PER_MINUTE = 0
#: Environment that turns both limits off (benchmarks, test assistants).
RATE_LIMITS_OFF = {"CHAT_MESSAGES_PER_MINUTE": "0", "CHAT_ADDRESS_MESSAGES_PER_MINUTE": "0"}
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

    async def take(self, key: Hashable) -> bool:
        """:meth:`allow`, with the interface of :class:`RedisRateLimiter`."""
        return self.allow(key)


class RedisRateLimiter:
    """At most ``per_minute`` messages per key and clock minute, counted by every instance in Redis.

    A fixed window (a counter per key and minute, expiring after two): a
    client can send up to twice the rate across a minute boundary. Redis
    unreachable: the message is allowed and the failure logged (a rate limit
    must not take the chat down). The client is created on first use, inside
    the server's event loop.
    """

    def __init__(self, url: str, name: str, per_minute: int,
                 clock: Callable[[], float] = time.time, timeout_seconds: float = 2.0) -> None:
        if per_minute < 0:
            raise ValueError("a rate limit cannot be negative")
        self.url = url
        self.prefix = f"supportbot:rate:{name}:"
        self.per_minute = per_minute
        self._clock = clock
        self.timeout_seconds = timeout_seconds
        self._client: Optional[aioredis.Redis] = None

    def _redis(self) -> aioredis.Redis:
        if self._client is None:
            self._client = aioredis.Redis.from_url(
                self.url, socket_timeout=self.timeout_seconds,
                socket_connect_timeout=self.timeout_seconds)
        return self._client

    async def take(self, key: Hashable) -> bool:
        """Count one message of ``key``; False when this minute's count is over the limit."""
        if self.per_minute == 0:
            return True
        window_key = f"{self.prefix}{key}:{int(self._clock() // 60)}"
        try:
            async with self._redis().pipeline(transaction=True) as pipe:
                count, _ = await pipe.incr(window_key).expire(window_key, 120).execute()
        except (RedisError, OSError, asyncio.TimeoutError) as error:
            logger.error("Rate limit store unreachable (%s): message allowed", type(error).__name__)
            return True
        return int(count) <= self.per_minute

    async def close(self) -> None:
        """Close the connections (the server is stopping)."""
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()


Limiter = Union[RateLimiter, RedisRateLimiter]


def _per_minute(name: str, default: int, environ: Optional[Mapping[str, str]]) -> int:
    value = env_value(name, environ)
    limit = int(value) if value else default
    if limit < 0:
        raise ValueError(f"{name} cannot be negative")
    return limit


def message_limiter(environ: Optional[Mapping[str, str]] = None) -> RateLimiter:
    """Per widget connection: ``CHAT_MESSAGES_PER_MINUTE`` (default 30), in this process."""
    return RateLimiter(_per_minute("CHAT_MESSAGES_PER_MINUTE", DEFAULT_MESSAGES_PER_MINUTE, environ))


def shared_limiter(name: str, variable: str, default: int,
                   environ: Optional[Mapping[str, str]] = None) -> Limiter:
    """A limiter counted in Redis when ``REDIS_URL`` is set, else in this process."""
    per_minute = _per_minute(variable, default, environ)
    url = env_value("REDIS_URL", environ)
    return RedisRateLimiter(url, name, per_minute) if url else RateLimiter(per_minute)


def sender_limiter(environ: Optional[Mapping[str, str]] = None) -> Limiter:
    """Per REST sender: ``CHAT_MESSAGES_PER_MINUTE`` (default 30)."""
    return shared_limiter("rest-sender", "CHAT_MESSAGES_PER_MINUTE", DEFAULT_MESSAGES_PER_MINUTE,
                          environ)


def address_limiter(environ: Optional[Mapping[str, str]] = None) -> Limiter:
    """Per client address: ``CHAT_ADDRESS_MESSAGES_PER_MINUTE`` (default 0: off)."""
    return shared_limiter("rest-address", "CHAT_ADDRESS_MESSAGES_PER_MINUTE",
                          DEFAULT_ADDRESS_MESSAGES_PER_MINUTE, environ)
