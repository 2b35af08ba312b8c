"""The durable inbox of the Slack and Telegram webhooks: an event is stored before its 200.

Slack and Telegram deliver an event again only while they get no 200. Slack's
turn used to run after the 200 and Telegram's before it, with the event id
already marked as seen: an instance that died in between lost the event. Now
the webhook writes the event into the table ``channel_inbox`` of the tracker
database (``TRACKER_DB_URL``, shared by every instance) and only then answers
200. The unique ``(channel, event_key)`` makes a redelivery a no-op.

Each instance's :class:`InboxWorker` runs the turns: the entries its own
webhook stored at once, and every :data:`POLL_SECONDS` any entry whose lease
ran out (:data:`LEASE_SECONDS` after an instance took it: that instance died).
A turn runs with message id ``<channel>:<event key>`` through
:class:`channels.idempotency.IdempotentTurns`, so a turn the dead instance had
completed is not run again. The messages of one conversation run in order.
An entry that fails :data:`MAX_ATTEMPTS` times is logged as an error and left
marked failed. Handled entries are deleted after :data:`KEEP_SECONDS`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Dict, List, Optional

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tracking.db import make_engine, write_transaction
from tracking.schema import create_schema_when_reachable

logger = logging.getLogger(__name__)

#: Seconds an instance may work on an entry before another one takes it over.
LEASE_SECONDS = 30.0
#: Seconds between two looks for entries left by dead instances.
POLL_SECONDS = 2.0
#: Attempts before an entry is given up (and logged as an error).
MAX_ATTEMPTS = 5
#: Entries taken in one go.
BATCH = 50
#: Seconds a handled entry is kept (a redelivery within it is recognised); then it is deleted,
#: so an id a platform uses again much later (Telegram picks random update ids after a quiet week)
#: is a new event.
KEEP_SECONDS = 24 * 3600

inbox_metadata = sa.MetaData()

inbox_table = sa.Table(
    "channel_inbox", inbox_metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("event_key", sa.String(200), nullable=False),
    sa.Column("conversation", sa.String(255), nullable=False),
    sa.Column("message", sa.Text, nullable=False),  # JSON: what the channel needs to run the turn
    sa.Column("received_at", sa.Float, nullable=False),
    sa.Column("lease_until", sa.Float, nullable=False, default=0.0),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("done_at", sa.Float),
    sa.Column("failed", sa.Boolean, nullable=False, default=False),
    sa.UniqueConstraint("channel", "event_key", name="uq_channel_inbox_event"),
    sa.Index("ix_channel_inbox_due", "channel", "done_at", "lease_until"),
)


@dataclass(frozen=True)
class InboxEntry:
    """One stored event, taken by an instance until its lease ends."""

    id: int
    channel: str
    event_key: str
    conversation: str
    message: Dict[str, Any]
    attempts: int


class Inbox:
    """The ``channel_inbox`` table (blocking calls: run them off the event loop)."""

    def __init__(self, engine: Engine, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock

    @classmethod
    def from_env(cls) -> "Inbox":
        """The inbox in the tracker database (``TRACKER_DB_URL``), its table created if missing."""
        inbox = cls(make_engine())
        # serialised with the other instances starting at the same moment (and the tracker store)
        create_schema_when_reachable(inbox.engine, inbox_metadata)
        return inbox

    def put(self, channel: str, event_key: str, conversation: str, message: Dict[str, Any]) -> bool:
        """Store an event; False when it was stored before (a redelivery)."""
        try:
            with write_transaction(self.engine) as conn:
                conn.execute(inbox_table.insert().values(
                    channel=channel, event_key=event_key, conversation=conversation,
                    message=json.dumps(message), received_at=self.clock(), lease_until=0.0,
                    attempts=0, failed=False))
        except sa.exc.IntegrityError:
            return False
        return True

    def take(self, channel: str, ids: Optional[List[int]] = None, limit: int = BATCH) -> List[InboxEntry]:
        """Lease due entries of ``channel`` (not done, lease over), oldest first; ``ids``: only those.

        An entry whose conversation has an earlier one in another instance's
        hands waits for it: one conversation's events run in order.
        """
        now = self.clock()
        due = sa.and_(inbox_table.c.channel == channel, inbox_table.c.done_at.is_(None),
                      inbox_table.c.lease_until < now)
        earlier = inbox_table.alias("earlier")
        earlier_in_hand = sa.exists().where(  # an instance works on an earlier event of the conversation
            earlier.c.channel == channel, earlier.c.conversation == inbox_table.c.conversation,
            earlier.c.id < inbox_table.c.id, earlier.c.done_at.is_(None), earlier.c.lease_until >= now)
        query = (sa.select(inbox_table).where(due, ~earlier_in_hand)
                 .order_by(inbox_table.c.id).limit(limit))
        if ids is not None:
            query = query.where(inbox_table.c.id.in_(ids))
        taken: List[InboxEntry] = []
        with write_transaction(self.engine) as conn:
            for row in conn.execute(query).all():
                won = conn.execute(inbox_table.update().where(due, inbox_table.c.id == row.id).values(
                    lease_until=now + LEASE_SECONDS, attempts=inbox_table.c.attempts + 1)).rowcount
                if won:
                    taken.append(InboxEntry(row.id, row.channel, row.event_key, row.conversation,
                                            json.loads(row.message), row.attempts + 1))
        return taken

    def finish(self, entry: InboxEntry, failed: bool = False) -> None:
        """Mark an entry handled (or given up)."""
        with write_transaction(self.engine) as conn:
            conn.execute(inbox_table.update().where(inbox_table.c.id == entry.id).values(
                done_at=self.clock(), failed=failed))

    def release(self, entry: InboxEntry) -> None:
        """Let an entry that failed be taken again at the next look."""
        with write_transaction(self.engine) as conn:
            conn.execute(inbox_table.update().where(inbox_table.c.id == entry.id).values(lease_until=0.0))

    def purge(self, channel: str) -> int:
        """Delete ``channel``'s entries handled more than :data:`KEEP_SECONDS` ago; how many."""
        with write_transaction(self.engine) as conn:
            return conn.execute(inbox_table.delete().where(
                inbox_table.c.channel == channel,
                inbox_table.c.done_at < self.clock() - KEEP_SECONDS)).rowcount

    def pending(self, channel: str) -> int:
        """How many entries of ``channel`` are not done."""
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(inbox_table).where(
                inbox_table.c.channel == channel, inbox_table.c.done_at.is_(None))).scalar_one()


#: Runs the turn of one entry: ``await handle(entry)``.
Handler = Callable[[InboxEntry], Awaitable[None]]


class InboxWorker:
    """One instance's worker for one channel's entries; see the module docstring."""

    def __init__(self, inbox: Inbox, channel: str, poll_seconds: float = POLL_SECONDS) -> None:
        self.inbox = inbox
        self.channel = channel
        self.poll_seconds = poll_seconds
        self._handler: Optional[Handler] = None
        self._wake: Optional[asyncio.Event] = None
        self._task: Optional[asyncio.Task] = None

    async def put(self, event_key: str, conversation: str, message: Dict[str, Any]) -> bool:
        """Store an event durably (before the webhook's 200); False for a redelivery."""
        stored = await asyncio.to_thread(self.inbox.put, self.channel, event_key, conversation, message)
        if stored and self._wake is not None:
            self._wake.set()
        return stored

    def start(self, handler: Handler) -> None:
        """Run entries with ``handler`` from now on (inside the server's event loop)."""
        self._handler = handler
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop taking entries (those taken and not done are taken over after their lease)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.drain()
            except Exception:  # noqa: BLE001 - the worker must outlive a database hiccup
                logger.exception("The %s inbox could not be read; trying again", self.channel)

    async def drain(self) -> int:
        """Take the due entries and run them (in order per conversation); how many were run."""
        assert self._handler is not None
        await asyncio.to_thread(self.inbox.purge, self.channel)
        entries = await asyncio.to_thread(self.inbox.take, self.channel)
        by_conversation: Dict[str, List[InboxEntry]] = {}
        for entry in entries:
            by_conversation.setdefault(entry.conversation, []).append(entry)
        await asyncio.gather(*(self._run_in_order(queue) for queue in by_conversation.values()))
        return len(entries)

    async def _run_in_order(self, entries: List[InboxEntry]) -> None:
        """Run one conversation's entries; after a failure the later ones wait for its retry."""
        assert self._handler is not None
        for index, entry in enumerate(entries):
            try:
                await self._handler(entry)
            except Exception:  # noqa: BLE001 - logged, retried, and given up visibly
                if entry.attempts >= MAX_ATTEMPTS:
                    logger.exception("%s event %s failed %d times: given up", self.channel,
                                     entry.event_key, entry.attempts)
                    await asyncio.to_thread(self.inbox.finish, entry, True)
                    continue
                logger.exception("%s event %s failed (attempt %d); it will be retried",
                                 self.channel, entry.event_key, entry.attempts)
                for later in entries[index:]:
                    await asyncio.to_thread(self.inbox.release, later)
                return
            await asyncio.to_thread(self.inbox.finish, entry)
