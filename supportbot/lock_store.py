"""The conversation lock store: Redis when ``REDIS_URL`` is set, in memory otherwise.

Configured in ``endpoints.yml``::

    lock_store:
      type: supportbot.lock_store.ConfiguredLockStore

Rasa serialises the messages of one conversation with a ticket lock: a
message draws a ticket and waits until its ticket is the lowest one alive.
In one process the in-memory lock store is enough (``make run``). Several
Rasa instances, or ``SANIC_WORKERS`` > 1, need one shared lock store: with
``REDIS_URL`` (for example ``redis://127.0.0.1:6379/0``) this class keeps the
tickets in Redis, under ``lock:``. It subclasses
:class:`rasa.core.lock_store.RedisLockStore` only so that Rasa counts it as
multi-worker compatible; it shares none of its code. ``endpoints.yml`` cannot
say ``url: ${REDIS_URL}`` because Rasa fails on unset variables; hence this
class, which reads the environment itself.

How it differs from Rasa's own Redis lock store:

* **Nothing blocks the event loop.** Every Redis call goes through redis'
  asyncio client; a waiting message sleeps with :func:`asyncio.sleep`.
  (Rasa's store, and this one before, made blocking Redis calls inside
  Sanic's loop, and a contended conversation stalled every other one.)
* **Atomic tickets.** Drawing, checking and returning a ticket are each one
  Lua script, so two instances receiving messages of one conversation at
  the same moment can never draw the same ticket, and no mutex is needed.
  Expiry is judged on Redis' clock, the one clock all instances share.
* **Leases.** A ticket lives :data:`DEFAULT_LOCK_LIFETIME_SECONDS` (10 s;
  ``TICKET_LOCK_LIFETIME`` overrides it) from its last renewal: a waiting
  message renews its ticket at every look, and the holder in the background
  while its turn runs. Only the tickets of a process that stopped renewing (a
  killed instance) run out, and such an instance blocks its conversations
  for one lifetime at most.

Redis layout: one hash per conversation, ``lock:<conversation id>``, with the
field ``n`` (the last ticket drawn) and ``t:<number>`` (each live ticket's
expiry, in milliseconds of Redis' clock); the hash expires with its last
ticket.
"""

from __future__ import annotations

import asyncio
import logging
import os
from contextlib import asynccontextmanager
from typing import Any, AsyncGenerator, Dict, Mapping, Optional, Text

from rasa.core.lock import TicketLock
from redis.exceptions import RedisError
from rasa.core.lock_store import InMemoryLockStore, LockError, LockStore, RedisLockStore

logger = logging.getLogger(__name__)

#: Environment variable with the Redis URL of the lock store (unset: in memory).
ENV_REDIS_URL = "REDIS_URL"
#: Rasa's own variable for the lifetime of a conversation lock ticket, in seconds.
ENV_LOCK_LIFETIME = "TICKET_LOCK_LIFETIME"
#: Lifetime of a ticket when ``TICKET_LOCK_LIFETIME`` is unset.
DEFAULT_LOCK_LIFETIME_SECONDS = 10
#: Seconds a Redis operation may take before it fails.
REDIS_SOCKET_TIMEOUT_SECONDS = 5.0
#: Seconds between two looks of a waiting message (Rasa's default is 1 s).
DEFAULT_WAIT_SECONDS = 0.05
#: Prefix of the lock keys when endpoints.yml gives no ``key_prefix``.
DEFAULT_KEY_PREFIX = "lock:"

# Drop the expired tickets of the hash KEYS[1] at time ``now`` (ms); defines ``now``.
_PRELUDE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local fields = redis.call('HGETALL', KEYS[1])
local lowest = nil
for i = 1, #fields, 2 do
  local name = fields[i]
  if string.sub(name, 1, 2) == 't:' then
    if tonumber(fields[i + 1]) <= now then
      redis.call('HDEL', KEYS[1], name)
    else
      local number = tonumber(string.sub(name, 3))
      if lowest == nil or number < lowest then lowest = number end
    end
  end
end
"""

#: ARGV: lifetime (ms). Returns the new ticket's number.
_DRAW = _PRELUDE + """
local number = redis.call('HINCRBY', KEYS[1], 'n', 1)
redis.call('HSET', KEYS[1], 't:' .. number, now + tonumber(ARGV[1]))
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1])) end
return number
"""

#: ARGV: ticket, lifetime (ms). Renews the ticket; returns how many live tickets are ahead of it
#: (0: its turn), or -1 when it expired.
_TRY = _PRELUDE + """
local field = 't:' .. ARGV[1]
if redis.call('HEXISTS', KEYS[1], field) == 0 then return -1 end
redis.call('HSET', KEYS[1], field, now + tonumber(ARGV[2]))
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2])) end
local ahead = 0
for i = 1, #fields, 2 do
  local name = fields[i]
  if string.sub(name, 1, 2) == 't:' and tonumber(string.sub(name, 3)) < tonumber(ARGV[1])
      and redis.call('HEXISTS', KEYS[1], name) == 1 then
    ahead = ahead + 1
  end
end
return ahead
"""

#: ARGV: ticket. Returns the ticket; deletes the hash when none is left. Returns 1 when others wait.
_RETURN = """
redis.call('HDEL', KEYS[1], 't:' .. ARGV[1])
""" + _PRELUDE + """
if lowest == nil then
  redis.call('DEL', KEYS[1])
  return 0
end
return 1
"""


def redis_url(environ: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """The lock store's Redis URL from ``REDIS_URL``, or None (in-memory locks)."""
    env = os.environ if environ is None else environ
    return (env.get(ENV_REDIS_URL) or "").strip() or None


def lock_lifetime(environ: Optional[Mapping[str, str]] = None) -> int:
    """Seconds a conversation lock ticket lives (``TICKET_LOCK_LIFETIME`` or 10)."""
    env = os.environ if environ is None else environ
    value = (env.get(ENV_LOCK_LIFETIME) or "").strip()
    return int(value) if value and int(value) > 0 else DEFAULT_LOCK_LIFETIME_SECONDS


def _sanic_workers(environ: Mapping[str, str]) -> int:
    try:
        return int(environ.get("SANIC_WORKERS", "1"))
    except ValueError:
        return 1


class ConfiguredLockStore(RedisLockStore):
    """Ticket locks in Redis on ``REDIS_URL``; without it, Rasa's in-memory lock store.

    Rasa creates it from ``endpoints.yml`` as ``ConfiguredLockStore(endpoint_config=...)``
    and only ever calls :meth:`lock`. Without ``REDIS_URL`` the constructor
    returns an :class:`~rasa.core.lock_store.InMemoryLockStore`; it refuses to
    start when ``SANIC_WORKERS`` > 1 then, because Rasa would run several
    workers on per-process locks (it only looks at the endpoint's ``type``).
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> LockStore:  # noqa: D102
        if kwargs.get("url") is None and redis_url() is None:
            if _sanic_workers(os.environ) > 1:
                raise LockError("SANIC_WORKERS > 1 needs a shared lock store: set REDIS_URL.")
            return InMemoryLockStore()
        return super().__new__(cls)

    def __init__(self, endpoint_config: Any = None, url: Optional[str] = None,
                 lifetime: Optional[float] = None, key_prefix: Optional[str] = None) -> None:
        """Remember where Redis is; connections are made by the event loop that uses them.

        Args:
            endpoint_config: The ``lock_store`` section of endpoints.yml (its
                ``key_prefix``, alphanumeric, is honoured; nothing else is read).
            url: Redis URL; overrides ``REDIS_URL``.
            lifetime: Ticket lifetime in seconds; overrides ``TICKET_LOCK_LIFETIME``.
            key_prefix: Prefix of every key (default ``lock:``, or
                ``<key_prefix of endpoints.yml>:lock:``); tests use their own.
        """
        import redis

        self.url = url or redis_url() or ""
        with redis.StrictRedis.from_url(self.url, socket_timeout=REDIS_SOCKET_TIMEOUT_SECONDS) as client:
            client.ping()  # fail at start-up, not on the first message
        self.key_prefix = DEFAULT_KEY_PREFIX
        configured = getattr(endpoint_config, "kwargs", {}).get("key_prefix") if endpoint_config else None
        if configured:
            self._set_key_prefix(configured)
        if key_prefix:
            self.key_prefix = key_prefix
        self.lifetime = float(lifetime or lock_lifetime())
        self._clients: Dict[asyncio.AbstractEventLoop, _Connection] = {}
        LockStore.__init__(self)

    # ------------------------------------------------------------------ Redis, per event loop

    def _redis(self) -> "_Connection":
        """The running loop's client and scripts (a client's connections belong to one loop)."""
        loop = asyncio.get_running_loop()
        connection = self._clients.get(loop)
        if connection is None:
            for closed in [known for known in self._clients if known.is_closed()]:
                del self._clients[closed]
            connection = self._clients[loop] = _Connection(self.url)
        return connection

    def _key(self, conversation_id: Text) -> str:
        return f"{self.key_prefix}{conversation_id}"

    def _lifetime_ms(self, lock_lifetime: float) -> int:
        return max(1, int((lock_lifetime or self.lifetime) * 1000))

    # ------------------------------------------------------------------ tickets

    async def draw_ticket(self, conversation_id: Text, lock_lifetime: float = 0) -> int:
        """Draw the conversation's next ticket (atomic across instances)."""
        return int(await self._redis().draw(keys=[self._key(conversation_id)],
                                            args=[self._lifetime_ms(lock_lifetime)]))

    async def try_ticket(self, conversation_id: Text, ticket: int, lock_lifetime: float = 0) -> int:
        """Renew ``ticket``; how many tickets are ahead of it (0: the conversation's turn).

        Raises:
            LockError: The ticket expired (its process stopped renewing it).
        """
        ahead = int(await self._redis().try_ticket(keys=[self._key(conversation_id)],
                                                   args=[ticket, self._lifetime_ms(lock_lifetime)]))
        if ahead < 0:
            raise LockError(f"The lock ticket of conversation '{conversation_id}' expired.")
        return ahead

    async def return_ticket(self, conversation_id: Text, ticket: int) -> int:
        """Give ``ticket`` back; returns how many tickets still wait (0: the lock is gone)."""
        return int(await self._redis().return_ticket(keys=[self._key(conversation_id)], args=[ticket]))

    async def waiting(self, conversation_id: Text) -> int:
        """How many live tickets the conversation has (holder included)."""
        fields = await self._redis().client.hkeys(self._key(conversation_id))
        return sum(1 for name in fields if name.startswith(b"t:"))

    async def _keep_renewing(self, conversation_id: Text, ticket: int, lifetime: float) -> None:
        """Renew the holder's ticket every third of its lifetime until cancelled."""
        try:
            while True:
                await asyncio.sleep(lifetime / 3)
                await self.try_ticket(conversation_id, ticket, lifetime)
        except (LockError, OSError, RedisError) as error:  # the turn goes on, without exclusivity
            logger.error("The lock of conversation '%s' could not be renewed (%s): another message "
                         "may run at the same time once it expires", conversation_id, error)

    @asynccontextmanager
    async def lock(self, conversation_id: Text, lock_lifetime: float = 0,
                   wait_time_in_seconds: float = DEFAULT_WAIT_SECONDS) -> AsyncGenerator[TicketLock, None]:
        """Hold the conversation's lock while the block runs.

        Args:
            conversation_id: The conversation.
            lock_lifetime: Seconds a ticket lives without renewal (default: the
                store's lifetime).
            wait_time_in_seconds: Seconds between two looks of the next in line
                (the n-th in line looks every n times as long).

        Raises:
            LockError: Our ticket expired while waiting (Redis was unreachable
                for a whole lifetime), or Redis failed.
        """
        lifetime = lock_lifetime or self.lifetime
        ticket = await self.draw_ticket(conversation_id, lifetime)
        renewing: Optional[asyncio.Task] = None
        try:
            ahead = await self.try_ticket(conversation_id, ticket, lifetime)
            while ahead:
                # the n-th in line looks every n waits: a queue costs Redis and the loop little
                await asyncio.sleep(min(wait_time_in_seconds * ahead, lifetime / 3))
                ahead = await self.try_ticket(conversation_id, ticket, lifetime)
            renewing = asyncio.create_task(self._keep_renewing(conversation_id, ticket, lifetime))
            yield TicketLock(conversation_id)
        finally:
            if renewing is not None:
                renewing.cancel()
            await asyncio.shield(self.return_ticket(conversation_id, ticket))

    async def close(self) -> None:
        """Close the running loop's Redis connections."""
        connection = self._clients.pop(asyncio.get_running_loop(), None)
        if connection is not None:
            await connection.client.close()

    # ------------------------------------------------------------------ Rasa's blocking API

    def _blocking(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("ConfiguredLockStore is asynchronous: use `async with store.lock(...)`.")

    get_lock = delete_lock = save_lock = issue_ticket = update_lock = _blocking
    is_someone_waiting = finish_serving = cleanup = get_or_create_lock = _blocking


class _Connection:
    """An asyncio Redis client and the lock scripts registered on it."""

    def __init__(self, url: str) -> None:
        import redis.asyncio as aioredis

        self.client = aioredis.Redis.from_url(url, socket_timeout=REDIS_SOCKET_TIMEOUT_SECONDS)
        self.draw = self.client.register_script(_DRAW)
        self.try_ticket = self.client.register_script(_TRY)
        self.return_ticket = self.client.register_script(_RETURN)
