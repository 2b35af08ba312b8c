"""The assistant's tracker store: Rasa's SQL tracker store plus the review index.

Configured in ``endpoints.yml``::

    tracker_store:
      type: tracking.store.ReviewableSQLTrackerStore

The database comes from ``TRACKER_DB_URL`` (default ``sqlite:///var/tracker.db``
under the project root; ``postgresql://user@host:5432/db`` for PostgreSQL). It is
read here rather than through ``${VAR}`` in endpoints.yml, because Rasa's
expansion fails when a variable is unset.

This class is the **only** place where conversation events are written. Every
batch of new events goes through :meth:`ReviewableSQLTrackerStore.redact_events`
before anything is stored, published to an event broker, or indexed for the
review console (summary, facts, message search index).

Reading a conversation costs one indexed query while nothing changed: the
events since the session start are kept in memory (:mod:`tracking.cache`) and
used only when the sender's rows in the database still have the fingerprint
(highest id, count) they had when this process last read or wrote them, so
several Rasa processes can share the database. On SQLite the connections are
pooled (SQLAlchemy 1.4 opens a new one per transaction for files).
"""

from __future__ import annotations

import json
import logging
from typing import Any, Dict, List, Optional, Text, Tuple

import sqlalchemy as sa
from rasa.core.brokers.broker import EventBroker
from rasa.core.tracker_store import SQLTrackerStore, TrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.events import ActionExecuted, ConversationPaused, ConversationResumed, Event
from rasa.shared.core.trackers import DialogueStateTracker
from sqlalchemy.pool import QueuePool
from sqlalchemy.engine import Connection
from sqlalchemy.orm import sessionmaker

from supportbot import handoff_thread
from supportbot.redaction import redact_tracker_events
from tracking.cache import ConversationCache, Fingerprint, copy_event, deserialise_events, max_events_from_env
from tracking.db import make_engine, read_transaction, write_transaction
from tracking.schema import create_schema_when_reachable, events
from tracking.settings import tracker_db_url
from tracking.writer import record_events

logger = logging.getLogger(__name__)

#: How long to keep retrying while the database is not reachable at start-up.
CONNECT_TIMEOUT_SECONDS = 60.0
CONNECT_RETRY_SECONDS = 2.0

EventDict = Dict[Text, Any]


class ReviewableSQLTrackerStore(SQLTrackerStore):
    """SQL tracker store that redacts events and indexes them for conversation review."""

    def __init__(
        self,
        domain: Optional[Domain] = None,
        host: Optional[Text] = None,
        event_broker: Optional[EventBroker] = None,
        **kwargs: Any,
    ) -> None:
        """Connect to the tracker database and create the missing tables.

        Args:
            domain: The assistant's domain.
            host: A full database URL from endpoints.yml's ``url``; overrides
                ``TRACKER_DB_URL`` (leave it out to use the environment).
            event_broker: Broker to publish new events to (redacted too).
            **kwargs: Other endpoint options; ignored.
        """
        TrackerStore.__init__(self, domain, event_broker)
        self.url = host if host and "://" in host else tracker_db_url()
        self.engine = make_engine(self.url, **_pool_options(self.url))
        create_schema_when_reachable(self.engine, timeout=CONNECT_TIMEOUT_SECONDS,
                                     retry_every=CONNECT_RETRY_SECONDS)
        self.sessionmaker = sessionmaker(bind=self.engine, future=True)
        self.cache = ConversationCache(max_events_from_env())
        logger.info("Tracker store: %s", self.engine.url.render_as_string(hide_password=True))

    # ------------------------------------------------------------------ redaction hook

    def redact_events(self, events: List[EventDict]) -> List[EventDict]:
        """Remove secrets from new events before anything is stored or published.

        Called once per save with the new events, serialised as Rasa stores them
        (``Event.as_dict()``: ``text``, ``parse_data``, ``metadata``, slot
        ``value``...). Whatever it returns is what goes into ``events``, the
        event broker and the review index (summary, facts, message search).

        Contract: return the same number of events, in the same order (Rasa finds
        the new events of a conversation by counting the stored ones); blank or
        replace values instead of dropping events. Must not raise for ordinary
        input: an exception aborts the save.

        Secret slots (one-time codes, recovery codes) lose their values, the
        customer messages that filled them are replaced by ``[redacted]``, and
        codes, tokens and passwords are masked in every other message
        (:func:`supportbot.redaction.redact_tracker_events`).
        """
        return redact_tracker_events(events)

    def _redacted(self, new_events: List[Event]) -> List[EventDict]:
        records = [event.as_dict() for event in new_events]
        redacted = self.redact_events(records)
        if len(redacted) != len(records):
            raise ValueError(
                "redact_events must return one event for each event it is given "
                f"(got {len(redacted)} for {len(records)})"
            )
        return redacted

    # ------------------------------------------------------------------ writing

    async def _stream_new_events(
        self, event_broker: EventBroker, new_events: List[Event], sender_id: Text
    ) -> None:
        """Publish new events to the broker, redacted like the stored ones."""
        for record in self._redacted(new_events):
            body = {"sender_id": sender_id}
            body.update(record)
            event_broker.publish(body)

    async def save(self, tracker: DialogueStateTracker) -> None:
        """Store the tracker's new events and update the review index in one transaction."""
        await self.stream_events(tracker)
        with write_transaction(self.engine) as conn:
            before = self._fingerprint(conn, tracker.sender_id)
            stored = self.cache.stored_since_start(tracker.sender_id, before)
            if stored is None:
                before, stored = self._stored_counts(conn, tracker.sender_id)
            new_events = list(tracker.events)[stored:]
            if not new_events:
                return
            records = self._redacted(new_events)
            ids = record_events(conn, tracker.sender_id, records, previous_max_id=before.max_id or 0)
        # after the commit: only committed rows may be described by the cache
        self.cache.extend(tracker.sender_id, before, stored, records, ids)
        logger.debug("Stored %d events of a conversation.", len(new_events))
        self._forward_to_person(tracker, records)

    @staticmethod
    def _forward_to_person(tracker: DialogueStateTracker, records: List[EventDict]) -> None:
        """While a person has the conversation, add what the customer wrote to the request."""
        request_id = tracker.get_slot(handoff_thread.REQUEST_SLOT)
        if not tracker.is_paused() or request_id is None:
            return
        texts = [r["text"] for r in records if r.get("event") == "user" and r.get("text")]
        if texts:
            handoff_thread.record_customer_messages(request_id, texts)

    async def retrieve(self, sender_id: Text) -> Optional[DialogueStateTracker]:
        """The conversation; a hand-over nobody took up within the timeout is taken back."""
        tracker = await super().retrieve(sender_id)
        if tracker is not None and tracker.is_paused():
            paused_at = next((e.timestamp for e in reversed(tracker.events)
                              if isinstance(e, ConversationPaused)), None)
            if paused_at is not None and (
                handoff_thread.handoff_timed_out(paused_at)
                or handoff_thread.handoff_released(tracker.get_slot(handoff_thread.REQUEST_SLOT))
            ):
                logger.info("Hand-over released or timed out; the assistant takes the conversation back.")
                # listening again, so the next message is a turn of its own for the policies
                tracker.update(ConversationResumed())
                tracker.update(ActionExecuted(ACTION_LISTEN_NAME))
        return tracker

    async def _retrieve(
        self, sender_id: Text, fetch_events_from_all_sessions: bool
    ) -> Optional[DialogueStateTracker]:
        """Rasa's ``_retrieve`` for the latest session, from the cache while it is current."""
        if fetch_events_from_all_sessions or not self.domain:
            return await super()._retrieve(sender_id, fetch_events_from_all_sessions)
        with read_transaction(self.engine) as conn:
            # fingerprint first: a row committed in between makes the cache look stale, never fresh
            current = self._fingerprint(conn, sender_id)
            if current.count == 0:
                self.cache.discard(sender_id)
                return None
            cached = self.cache.events(sender_id, current)
            if cached is None:
                rows = conn.execute(self._session_events_query(sender_id)).scalars().all()
                loaded = deserialise_events(json.loads(data) for data in rows)
                self.cache.put(sender_id, current, loaded)
                cached = [copy_event(event) for event in loaded]
        if not cached:
            return None
        return DialogueStateTracker.from_events(sender_id, cached, self.domain.slots)

    @staticmethod
    def _fingerprint(conn: Connection, sender_id: Text) -> Fingerprint:
        """Highest event id and number of events of ``sender_id`` (any session)."""
        row = conn.execute(
            sa.select(sa.func.max(events.c.id), sa.func.count()).where(events.c.sender_id == sender_id)
        ).one()
        return Fingerprint(row[0], int(row[1]))

    @staticmethod
    def _session_events_query(sender_id: Text) -> sa.sql.Select:
        """``data`` of the events since the latest session start, in order (Rasa's query)."""
        return (
            sa.select(events.c.data)
            .where(events.c.sender_id == sender_id, _since_session_start(sender_id))
            .order_by(events.c.id)
        )

    @staticmethod
    def _stored_counts(conn: Connection, sender_id: Text) -> Tuple[Fingerprint, int]:
        """The fingerprint of ``sender_id``'s rows and how many are since the latest session start.

        The second number is how ``SQLTrackerStore`` counts the stored events of a
        tracker (one query for both).
        """
        since_start = sa.func.coalesce(
            sa.func.sum(sa.case((_since_session_start(sender_id), 1), else_=0)), 0)
        row = conn.execute(
            sa.select(sa.func.max(events.c.id), sa.func.count(), since_start)
            .where(events.c.sender_id == sender_id)
        ).one()
        return Fingerprint(row[0], int(row[1])), int(row[2])


def _since_session_start(sender_id: Text) -> sa.sql.ColumnElement:
    """Rows at or after the latest ``session_started`` of ``sender_id`` (all rows if none)."""
    session_start = (
        sa.select(sa.func.max(events.c.timestamp))
        .where(events.c.sender_id == sender_id, events.c.type_name == "session_started")
        .scalar_subquery()
    )
    return sa.or_(events.c.timestamp >= session_start, session_start.is_(None))


def _pool_options(url: Text) -> Dict[Text, Any]:
    """Pool SQLite file connections (SQLAlchemy 1.4 would open one per transaction)."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        return {"poolclass": QueuePool, "pool_size": 5, "max_overflow": 10}
    return {}
