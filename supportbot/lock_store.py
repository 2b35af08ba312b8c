"""The conversation lock store: Redis when ``REDIS_URL`` is set, in memory otherwise.

Configured in ``endpoints.yml``::

    lock_store:
      type: supportbot.lock_store.ConfiguredLockStore

Rasa serialises the messages of one conversation with a ticket lock. In one
process the in-memory lock store is enough (``make run``). Several Rasa
instances, or ``SANIC_WORKERS`` > 1, need one shared lock store: with
``REDIS_URL`` (for example ``redis://127.0.0.1:6379/0``) this class is a
:class:`rasa.core.lock_store.RedisLockStore` (so Rasa counts it as
multi-worker compatible), with keys under ``lock:``. ``endpoints.yml`` cannot
say ``url: ${REDIS_URL}`` because Rasa fails on unset variables; hence this
class, which reads the environment itself.

Two things differ from Rasa's own Redis lock store:

* the lock lifetime defaults to :data:`DEFAULT_LOCK_LIFETIME_SECONDS` (10 s)
  instead of Rasa's 60 s (``TICKET_LOCK_LIFETIME`` overrides both): an
  instance killed while holding a conversation's lock blocks that conversation
  only until its ticket expires. Waiting tickets are renewed while their
  process waits, and the holder's when it gets its turn, so only a dead
  process's ticket runs out. A turn takes well under a second here; a turn
  longer than the lifetime would lose its exclusivity.
* issuing and returning a ticket (read, change, write of one Redis key) runs
  under a short Redis mutex, so two instances receiving messages of the same
  conversation at the same moment cannot both draw the same ticket (Rasa's
  store reads and writes without one).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any, AsyncGenerator, Mapping, Optional, Text

from contextlib import asynccontextmanager

from rasa.core.lock import TicketLock
from rasa.core.lock_store import InMemoryLockStore, LockError, LockStore, RedisLockStore

#: Environment variable with the Redis URL of the lock store (unset: in memory).
ENV_REDIS_URL = "REDIS_URL"
#: Rasa's own variable for the lifetime of a conversation lock ticket, in seconds.
ENV_LOCK_LIFETIME = "TICKET_LOCK_LIFETIME"
#: Lifetime of a ticket when ``TICKET_LOCK_LIFETIME`` is unset.
DEFAULT_LOCK_LIFETIME_SECONDS = 10
#: Seconds a Redis operation may take before it fails.
REDIS_SOCKET_TIMEOUT_SECONDS = 5.0
#: How long the ticket mutex is held at most, and waited for at most.
MUTEX_TIMEOUT_SECONDS = 5.0


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
    """Redis lock store on ``REDIS_URL``; without it, Rasa's in-memory lock store.

    Rasa creates it from ``endpoints.yml`` as ``ConfiguredLockStore(endpoint_config=...)``.
    Without ``REDIS_URL`` the constructor returns an
    :class:`~rasa.core.lock_store.InMemoryLockStore`; it refuses to start when
    ``SANIC_WORKERS`` > 1 then, because Rasa would run several workers on
    per-process locks (it only looks at the endpoint's ``type``).
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> LockStore:  # noqa: D102
        if redis_url() is None:
            if _sanic_workers(os.environ) > 1:
                raise LockError("SANIC_WORKERS > 1 needs a shared lock store: set REDIS_URL.")
            return InMemoryLockStore()
        return super().__new__(cls)

    def __init__(self, endpoint_config: Any = None, url: Optional[str] = None,
                 lifetime: Optional[int] = None) -> None:
        """Connect to Redis at ``url`` (default ``REDIS_URL``).

        Args:
            endpoint_config: The ``lock_store`` section of endpoints.yml (its
                ``key_prefix``, alphanumeric, is honoured; nothing else is read).
            url: Redis URL; overrides ``REDIS_URL``.
            lifetime: Ticket lifetime in seconds; overrides ``TICKET_LOCK_LIFETIME``.
        """
        import redis

        self.red = redis.StrictRedis.from_url(url or redis_url() or "",
                                              socket_timeout=REDIS_SOCKET_TIMEOUT_SECONDS)
        self.red.ping()  # fail at start-up, not on the first message
        self.key_prefix = "lock:"
        key_prefix = getattr(endpoint_config, "kwargs", {}).get("key_prefix") if endpoint_config else None
        if key_prefix:
            self._set_key_prefix(key_prefix)
        self.lifetime = lifetime or lock_lifetime()
        LockStore.__init__(self)

    def _mutex(self, conversation_id: Text) -> Any:
        return self.red.lock(f"{self.key_prefix}mutex:{conversation_id}",
                             timeout=MUTEX_TIMEOUT_SECONDS,
                             blocking_timeout=MUTEX_TIMEOUT_SECONDS)

    def issue_ticket(self, conversation_id: Text, lock_lifetime: float = 0) -> int:
        """Draw the next ticket of the conversation atomically across instances."""
        with self._mutex(conversation_id):
            return super().issue_ticket(conversation_id, lock_lifetime or self.lifetime)

    def update_lock(self, conversation_id: Text) -> None:
        """Drop expired tickets (under the mutex, like every read-change-write)."""
        with self._mutex(conversation_id):
            super().update_lock(conversation_id)

    def renew_ticket(self, conversation_id: Text, ticket_number: int) -> Optional[TicketLock]:
        """Drop expired tickets and give ``ticket_number`` a full lifetime from now.

        Returns the lock, or None when the ticket is gone (it expired).
        """
        with self._mutex(conversation_id):
            lock = self.get_lock(conversation_id)
            ticket = lock._ticket_for_ticket_number(ticket_number) if lock else None
            if ticket is None:
                return None
            ticket.expires = time.time() + self.lifetime
            self.save_lock(lock)
            return lock

    async def _acquire_lock(self, conversation_id: Text, ticket: int,
                            wait_time_in_seconds: float) -> TicketLock:
        """Wait for our turn, renewing our ticket at every look (a lease).

        Rasa counts a ticket's lifetime from when it was drawn, so a message
        that waited behind a dead instance's ticket could get its turn with
        almost no lifetime left, and a waiter whose own ticket expired would
        poll for ever. Here only tickets of processes that stopped renewing
        (killed ones) expire, and the holder gets a full lifetime for its turn.
        """
        while True:
            lock = self.renew_ticket(conversation_id, ticket)
            if lock is None:
                raise LockError(f"The lock ticket of conversation '{conversation_id}' expired.")
            if not lock.is_locked(ticket):
                return lock
            await asyncio.sleep(wait_time_in_seconds)

    def cleanup(self, conversation_id: Text, ticket_number: int) -> None:
        """Return the ticket; delete the lock when nobody waits (under the mutex)."""
        with self._mutex(conversation_id):
            super().cleanup(conversation_id, ticket_number)

    @asynccontextmanager
    async def lock(self, conversation_id: Text, lock_lifetime: float = 0,
                   wait_time_in_seconds: float = 0.05) -> AsyncGenerator[TicketLock, None]:
        """Hold the conversation's lock; tickets live ``self.lifetime`` unless given.

        Waiters poll every 50 ms (Rasa's default is 1 s, which would add up to a
        second to a message that arrives while the previous one is handled).
        """
        async with super().lock(conversation_id, lock_lifetime or self.lifetime,
                                wait_time_in_seconds) as ticket_lock:
            yield ticket_lock
