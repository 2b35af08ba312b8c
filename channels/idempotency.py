"""Idempotent turns: a message with an id runs once; a retry gets the replies of the first run.

Every channel gives its messages an id: REST the client's optional
``message_id`` (else the ``X-Request-Id`` nginx adds, which a retry to the next
instance keeps), Slack the event id, Telegram the update id. The id reaches
Rasa as the ``message_id`` of the turn's ``UserUttered`` event, which Rasa
saves with the rest of the turn in one tracker store write. So whether a turn
completed is a question to the tracker store, and its answer cannot disagree
with what is stored:

1. the handler *claims* ``<conversation>:<id>`` (in Redis when ``REDIS_URL``
   is set, shared by every instance; else in this process), renewing the
   claim while the turn runs. A second attempt arriving meanwhile (a client
   retry, nginx retrying on the next instance) waits for the claim;
2. holding the claim, it looks for the id in the conversation's tracker: found,
   the turn completed before (perhaps on an instance that died before
   answering), and the stored replies are returned without running anything;
3. otherwise it runs the turn, then releases the claim.

A claim of an instance that died runs out after :data:`CLAIM_SECONDS` (it
would also hold the conversation's lock for as long, see
supportbot/lock_store.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any, Awaitable, Callable, Dict, List, Mapping, Optional

from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered
from redis import asyncio as aioredis

from channels.common import env_value

logger = logging.getLogger(__name__)

#: Seconds a claim lives without renewal (a dead instance's claim frees the id after this).
CLAIM_SECONDS = 10.0
#: Seconds between two looks of an attempt waiting for another one's claim.
WAIT_SECONDS = 0.05
#: Longest message id accepted (longer ones are refused by the channels).
MAX_MESSAGE_ID_CHARS = 128
KEY_PREFIX = "supportbot:turn:"

#: Replies as a channel's collecting output gives them (``recipient_id``, ``text``, ``buttons``...).
Replies = List[Dict[str, Any]]
#: Finds a conversation's tracker: ``await lookup(sender_id)`` (Rasa's ``tracker_store.retrieve``).
TrackerLookup = Callable[[str], Awaitable[Any]]

# BotUttered data keys a collecting output channel puts into a reply, and their reply keys.
_REPLY_DATA_KEYS = ("buttons", "image", "attachment", "custom", "elements", "quick_replies")


def stored_replies(events: List[Any], sender_id: str, message_id: str) -> Optional[Replies]:
    """The replies of the completed turn of ``message_id`` among ``events``; None if there is none."""
    replies: Optional[Replies] = None
    for event in events:
        if replies is None:
            if isinstance(event, UserUttered) and event.message_id == message_id:
                replies = []
            continue
        if isinstance(event, BotUttered):
            reply: Dict[str, Any] = {"recipient_id": sender_id}
            if event.text is not None:
                reply["text"] = event.text
            reply.update({key: value for key, value in (event.data or {}).items()
                          if key in _REPLY_DATA_KEYS and value})
            replies.append(reply)
        elif isinstance(event, UserUttered) or (
                isinstance(event, ActionExecuted) and event.action_name == "action_listen"):
            break
    return replies


class LocalClaims:
    """Claims of this process only (one Rasa process, no ``REDIS_URL``)."""

    def __init__(self) -> None:
        self._held: Dict[str, float] = {}

    async def claim(self, key: str) -> bool:
        """Claim ``key``; False while another attempt holds it."""
        now = time.monotonic()
        if self._held.get(key, 0) > now:
            return False
        self._held[key] = now + CLAIM_SECONDS
        return True

    async def renew(self, key: str) -> None:
        """Keep holding ``key`` for another :data:`CLAIM_SECONDS`."""
        self._held[key] = time.monotonic() + CLAIM_SECONDS

    async def release(self, key: str) -> None:
        """Let the next attempt in."""
        self._held.pop(key, None)

    async def close(self) -> None:
        """Nothing to close."""


class RedisClaims:
    """Claims shared by every instance using one Redis (``SET NX PX``, released only by their owner)."""

    _RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
    _RENEW = ("if redis.call('GET', KEYS[1]) == ARGV[1] then "
              "return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0")

    def __init__(self, url: str) -> None:
        self.url = url
        self.owner = uuid.uuid4().hex  # this process
        self._client: Optional[aioredis.Redis] = None

    def _redis(self) -> aioredis.Redis:
        if self._client is None:  # made inside the server's event loop, on first use
            self._client = aioredis.Redis.from_url(self.url, socket_timeout=5, socket_connect_timeout=5)
        return self._client

    async def claim(self, key: str) -> bool:
        """Claim ``key``; False while another attempt (of any instance) holds it."""
        return bool(await self._redis().set(KEY_PREFIX + key, self.owner, nx=True,
                                            px=int(CLAIM_SECONDS * 1000)))

    async def renew(self, key: str) -> None:
        """Keep holding ``key`` for another :data:`CLAIM_SECONDS`."""
        await self._redis().eval(self._RENEW, 1, KEY_PREFIX + key, self.owner, int(CLAIM_SECONDS * 1000))

    async def release(self, key: str) -> None:
        """Let the next attempt in (only our own claim is deleted)."""
        await self._redis().eval(self._RELEASE, 1, KEY_PREFIX + key, self.owner)

    async def close(self) -> None:
        """Close the connections (the server is stopping)."""
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()


def claims_from_env(environ: Optional[Mapping[str, str]] = None) -> Any:
    """Redis claims when ``REDIS_URL`` is set, else this process's."""
    url = env_value("REDIS_URL", environ)
    return RedisClaims(url) if url else LocalClaims()


class IdempotentTurns:
    """Runs each identified turn once; see the module docstring."""

    def __init__(self, claims: Any = None) -> None:
        self.claims = claims if claims is not None else claims_from_env()

    async def run(self, sender_id: str, message_id: str, lookup: Optional[TrackerLookup],
                  turn: Callable[[], Awaitable[Replies]]) -> Replies:
        """The replies of turn ``message_id`` of ``sender_id``: stored ones, or ``turn()``'s.

        Args:
            sender_id: The conversation.
            message_id: The message's id (unique within the conversation).
            lookup: Returns the conversation's tracker (None: cannot replay, e.g. a
                channel served without Rasa; the claim still keeps attempts apart).
            turn: Runs the turn and returns its replies.
        """
        key = f"{sender_id}:{message_id}"
        while not await self.claims.claim(key):
            await asyncio.sleep(WAIT_SECONDS)
        try:
            if lookup is not None:
                tracker = await lookup(sender_id)
                replies = stored_replies(list(tracker.events) if tracker else [], sender_id, message_id)
                if replies is not None:
                    logger.info("Message %s of %s was handled before: its stored replies are sent again",
                                message_id, sender_id)
                    return replies
            renewing = asyncio.ensure_future(self._keep_claim(key))
            try:
                return await turn()
            finally:
                renewing.cancel()
        finally:
            await asyncio.shield(self.claims.release(key))

    async def _keep_claim(self, key: str) -> None:
        while True:
            await asyncio.sleep(CLAIM_SECONDS / 3)
            await self.claims.renew(key)


def tracker_lookup(app: Any) -> Optional[TrackerLookup]:
    """``retrieve`` of the tracker store of the Rasa agent serving ``app`` (None without one)."""
    agent = getattr(getattr(app, "ctx", None), "agent", None)
    store = getattr(agent, "tracker_store", None)
    return store.retrieve if store is not None else None
