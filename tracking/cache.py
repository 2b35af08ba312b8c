"""An in-process cache of conversations' stored events, validated before each use.

Rasa's ``SQLTrackerStore`` reads and deserialises every event since the session
start on every message: at turn 300 of a conversation that is ~1,500 JSON rows
and ~50 ms, most of it in ``Event.from_parameters`` (which walks every subclass
of ``Event`` for each event). :class:`ConversationCache` keeps, per sender, the
deserialised events exactly as :meth:`SQLTrackerStore.retrieve` would return
them (redacted, since the session start), together with the
:class:`Fingerprint` of the sender's rows in the database when they were read or
written.

Correct with several Rasa processes on one database: before a cached entry is
used, the caller reads the current fingerprint (``max(id)`` and ``count(*)`` of
the sender's rows, one indexed query) and the entry is used only if it is
unchanged; any event stored or deleted by another process changes it, and the
conversation is then read from the database again.

Memory is bounded by a total number of cached events (``TRACKER_CACHE_EVENTS``,
default 10000, about 20 MB; 0 turns the cache off), least recently used conversations first.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Type

from rasa.shared.core.events import Event, SessionStarted
from rasa.shared.utils.common import all_subclasses

logger = logging.getLogger(__name__)

DEFAULT_MAX_EVENTS = 10_000


class Fingerprint(NamedTuple):
    """What the database holds for one sender: highest event id and number of rows."""

    max_id: Optional[int]
    count: int


@dataclass(frozen=True)
class CachedConversation:
    """Events since the latest session start, as stored, and the fingerprint they match."""

    fingerprint: Fingerprint
    events: Tuple[Event, ...]
    #: Timestamp of the latest ``session_started`` among ``events`` (None: no session start).
    session_start: Optional[float] = None


_EVENT_CLASSES: Dict[str, Type[Event]] = {}


def _event_class(type_name: str) -> Optional[Type[Event]]:
    if type_name not in _EVENT_CLASSES:
        # the first subclass of that name wins, as in Event.resolve_by_type
        for cls in all_subclasses(Event):
            _EVENT_CLASSES.setdefault(cls.type_name, cls)
    return _EVENT_CLASSES.get(type_name)


def deserialise_events(records: Iterable[Mapping[str, Any]]) -> List[Event]:
    """``rasa.shared.core.events.deserialise_events`` without its per-event class search.

    Same events, same skipping of records without ``event``; unknown event
    names go through Rasa's own ``Event.from_parameters`` (and its errors).
    """
    result = []
    for record in records:
        if "event" not in record:
            continue
        cls = _event_class(record["event"])
        event = cls._from_parameters(record) if cls is not None else Event.from_parameters(record)
        if event:
            result.append(event)
        else:
            logger.warning("An event of a conversation could not be deserialised (%s).", record.get("event"))
    return result


def copy_event(event: Event) -> Event:
    """A shallow copy of ``event`` (what ``copy.copy`` does for events, four times faster)."""
    new = object.__new__(type(event))
    new.__dict__.update(event.__dict__)
    return new


def latest_session_start(events: Iterable[Event]) -> Optional[float]:
    """Timestamp of the latest ``session_started`` in ``events``, None if there is none."""
    return max((event.timestamp for event in events if isinstance(event, SessionStarted)), default=None)


def since_latest_session_start(events: Sequence[Event]) -> List[Event]:
    """The events ``SQLTrackerStore`` returns: timestamp at or after the latest session start."""
    starts = [event.timestamp for event in events if isinstance(event, SessionStarted)]
    if not starts:
        return list(events)
    latest = max(starts)
    return [event for event in events if event.timestamp >= latest]


def max_events_from_env(env: Optional[Mapping[str, str]] = None) -> int:
    """``TRACKER_CACHE_EVENTS`` (default 10000, about 20 MB; 0 turns the cache off)."""
    env = os.environ if env is None else env
    value = int(env.get("TRACKER_CACHE_EVENTS", DEFAULT_MAX_EVENTS))
    if value < 0:
        raise ValueError("TRACKER_CACHE_EVENTS must be 0 or more")
    return value


class ConversationCache:
    """Bounded LRU cache of :class:`CachedConversation` per sender id (thread-safe)."""

    def __init__(self, max_events: int = DEFAULT_MAX_EVENTS) -> None:
        """Keep at most ``max_events`` events in total (0: cache nothing)."""
        self.max_events = max_events
        self._entries: "OrderedDict[str, CachedConversation]" = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def size(self) -> int:
        """Number of events held."""
        return self._size

    def __len__(self) -> int:
        return len(self._entries)

    def events(self, sender_id: str, current: Fingerprint) -> Optional[List[Event]]:
        """Copies of the cached events of ``sender_id`` if still ``current`` in the database, else None.

        The events are shallow copies: Rasa reassigns attributes of events it
        holds (metadata, featurisation flags), which must not leak into the cache.
        """
        with self._lock:
            entry = self._entries.get(sender_id)
            if entry is None or entry.fingerprint != current:
                self.misses += 1
                if entry is not None:
                    self._remove(sender_id)
                return None
            self._entries.move_to_end(sender_id)
            self.hits += 1
            return [copy_event(event) for event in entry.events]

    def stored_since_start(self, sender_id: str, current: Fingerprint) -> Optional[int]:
        """How many events since the session start are stored, if the entry is ``current``; else None."""
        with self._lock:
            entry = self._entries.get(sender_id)
            if entry is None or entry.fingerprint != current:
                return None
            return len(entry.events)

    def put(self, sender_id: str, fingerprint: Fingerprint, events: Sequence[Event],
            session_start: Optional[float] = None) -> None:
        """Remember the events read from the database at ``fingerprint``.

        ``session_start``: the latest session start's timestamp, if the caller knows it.
        """
        with self._lock:
            self._remove(sender_id)
            if len(events) > self.max_events:
                return
            if session_start is None:
                session_start = latest_session_start(events)
            self._entries[sender_id] = CachedConversation(fingerprint, tuple(events), session_start)
            self._size += len(events)
            while self._size > self.max_events:
                oldest = next(iter(self._entries))
                self._remove(oldest)

    def extend(self, sender_id: str, before: Fingerprint, stored_since_start: int,
               new_records: Sequence[Mapping[str, Any]], new_ids: Sequence[int]) -> None:
        """Record events this process just stored (``new_records``, redacted, with their row ids).

        ``before`` is the fingerprint read in the writing transaction before the
        insert, ``stored_since_start`` the number of events counted since the
        session start. The entry is extended only when it described exactly
        those rows; otherwise it is dropped and the next read goes to the database.
        """
        if not new_ids:
            return
        with self._lock:
            entry = self._entries.get(sender_id)
            if entry is None and before.count == 0 and stored_since_start == 0:
                entry = CachedConversation(before, ())  # a new conversation: nothing stored yet
            if entry is None or entry.fingerprint != before or len(entry.events) != stored_since_start:
                self._remove(sender_id)
                return
            new_events = deserialise_events(new_records)
            new_start = latest_session_start(new_events)
            if new_start is not None and (entry.session_start is None or new_start > entry.session_start):
                if len(entry.events) != before.count:
                    self._remove(sender_id)  # the earlier sessions' rows are not here to filter
                    return
                # the same filter as SQLTrackerStore's query, over every row of the sender
                events = since_latest_session_start(list(entry.events) + new_events)
                session_start = new_start
            elif entry.session_start is None:
                events, session_start = list(entry.events) + new_events, None
            else:
                session_start = entry.session_start
                events = list(entry.events) + [e for e in new_events if e.timestamp >= session_start]
            after = Fingerprint(max([before.max_id or 0, *new_ids]), before.count + len(new_ids))
        self.put(sender_id, after, events, session_start)

    def discard(self, sender_id: str) -> None:
        """Forget ``sender_id``."""
        with self._lock:
            self._remove(sender_id)

    def _remove(self, sender_id: str) -> None:
        entry = self._entries.pop(sender_id, None)
        if entry is not None:
            self._size -= len(entry.events)
