"""Read side of the console: filtered conversation lists, transcripts, dashboard, NLU inbox.

Everything reads the review index (:mod:`tracking.schema`) and the console's own
tables; a transcript reads the conversation's events. Functions take a
connection, so the web app, the exports and the benchmark run the same queries.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from console.models import activity, lead, note, nlu_review, review, tag
from tracking import conventions as conv
from tracking.db import is_sqlite
from tracking.schema import (
    FACT_CUSTOMER,
    FACT_INTENT,
    FACT_OPERATION_PERFORMED,
    FACT_OPERATION_REFUSED,
    conversation_fact,
    conversation_summary,
    events,
    has_sqlite_fts,
    message_index,
)

S = conversation_summary

NEW, REVIEWED, FOLLOW_UP = "new", "reviewed", "follow_up"
STATUSES: Tuple[str, ...] = (NEW, REVIEWED, FOLLOW_UP)
STATUS_LABELS = {NEW: "New", REVIEWED: "Reviewed", FOLLOW_UP: "Needs follow-up"}

PER_PAGE_DEFAULT = 25
PER_PAGE_MAX = 200
MAX_TRANSCRIPT_EVENTS = 5000
MAX_QUERY_CHARS = 200

#: Sort keys: label and ORDER BY (the sender id breaks ties, so pages are stable).
SORTS: Dict[str, Tuple[str, Tuple[Any, ...]]] = {
    "recent": ("Last activity (newest first)", (S.c.last_event_at.desc(), S.c.sender_id)),
    "oldest": ("Last activity (oldest first)", (S.c.last_event_at.asc(), S.c.sender_id)),
    "started": ("Started (newest first)", (S.c.started_at.desc(), S.c.sender_id)),
    "confidence": ("Lowest NLU confidence first",
                   (S.c.min_confidence.asc().nulls_last(), S.c.last_event_at.desc(), S.c.sender_id)),
    "messages": ("Most customer messages first",
                 (S.c.user_message_count.desc(), S.c.last_event_at.desc(), S.c.sender_id)),
    "fallbacks": ("Most fallbacks first",
                  (S.c.fallback_count.desc(), S.c.last_event_at.desc(), S.c.sender_id)),
}
DEFAULT_SORT = "recent"


# --------------------------------------------------------------------------- filters


def day_start(day: date) -> float:
    """Unix time of 00:00 UTC on ``day``."""
    return datetime.combine(day, time(0), tzinfo=timezone.utc).timestamp()


def parse_date(value: str, label: str, errors: List[str]) -> Optional[date]:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        errors.append(f"{label}: use a date like 2024-06-30.")
        return None


@dataclass(frozen=True)
class Filters:
    """The conversation list's filters (all optional; they combine with AND)."""

    date_from: Optional[date] = None
    date_to: Optional[date] = None
    channel: Optional[str] = None
    intent: Optional[str] = None
    confidence_below: Optional[float] = None
    fallback: bool = False
    handoff: bool = False
    failed: bool = False
    operation: Optional[str] = None
    outcome: Optional[str] = None
    customer: Optional[str] = None
    tag: Optional[str] = None
    status: Optional[str] = None
    q: Optional[str] = None

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> Tuple["Filters", List[str]]:
        """Filters from query parameters, and messages about the ones that were ignored."""
        errors: List[str] = []

        def text(name: str, limit: int = 255) -> Optional[str]:
            value = (params.get(name) or "").strip()
            return value[:limit] or None

        confidence = None
        raw = text("confidence_below")
        if raw:
            try:
                confidence = float(raw)
                if not 0.0 <= confidence <= 1.0:
                    raise ValueError
            except ValueError:
                errors.append("Confidence: use a number between 0 and 1.")
                confidence = None
        outcome = text("outcome")
        if outcome not in (None, conv.PERFORMED, conv.REFUSED):
            errors.append("Operation outcome: performed or refused.")
            outcome = None
        status = text("status")
        if status not in (None,) + STATUSES:
            errors.append("Review status: new, reviewed or follow_up.")
            status = None
        filters = cls(
            date_from=parse_date(text("from") or "", "From", errors),
            date_to=parse_date(text("to") or "", "To", errors),
            channel=text("channel", 64),
            intent=text("intent"),
            confidence_below=confidence,
            fallback=bool(text("fallback")),
            handoff=bool(text("handoff")),
            failed=bool(text("failed")),
            operation=text("operation", 64),
            outcome=outcome,
            customer=text("customer"),
            tag=text("tag", 32),
            status=status,
            q=text("q", MAX_QUERY_CHARS),
        )
        return filters, errors

    def query_items(self) -> List[Tuple[str, str]]:
        """The filters as query parameters (for links that keep them)."""
        items: List[Tuple[str, str]] = []
        for name, value in (
            ("from", self.date_from.isoformat() if self.date_from else None),
            ("to", self.date_to.isoformat() if self.date_to else None),
            ("channel", self.channel), ("intent", self.intent),
            ("confidence_below", None if self.confidence_below is None else f"{self.confidence_below:g}"),
            ("fallback", "1" if self.fallback else None), ("handoff", "1" if self.handoff else None),
            ("failed", "1" if self.failed else None), ("operation", self.operation),
            ("outcome", self.outcome), ("customer", self.customer), ("tag", self.tag),
            ("status", self.status), ("q", self.q),
        ):
            if value:
                items.append((name, value))
        return items

    @property
    def active(self) -> bool:
        """True when any filter is set."""
        return bool(self.query_items())


def _with_fact(kinds: Sequence[str], value: Optional[str]) -> ColumnElement:
    """Conversations with a fact of one of ``kinds`` (and ``value``): an IN over the fact index.

    (An IN, not a correlated EXISTS: SQLite then reads the few matching facts by
    their primary key instead of probing the fact table once per conversation.)
    """
    f = conversation_fact
    matching = sa.select(f.c.sender_id).where(f.c.kind.in_(list(kinds)))
    if value is not None:
        matching = matching.where(f.c.value == value)
    return S.c.sender_id.in_(matching)


def escape_like(text: str) -> str:
    """Escape LIKE wildcards (escape character: backslash)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


#: A search matching at least this share of all conversations is paged by probing
#: each conversation's messages in list order (cheap when matches are common),
#: instead of collecting every match first (cheap when they are rare).
PROBE_SHARE = 0.05


def _contains(conn: Connection, column: Any, q: str) -> ColumnElement:
    pattern = f"%{escape_like(q)}%"
    # SQLite's LIKE ignores ASCII case already; ILIKE would wrap both sides in lower().
    return column.like(pattern, escape="\\") if is_sqlite(conn) else column.ilike(pattern, escape="\\")


def message_search(conn: Connection, q: str) -> sa.sql.Select:
    """Sender ids with a user or bot message containing ``q`` (case-insensitive).

    Uses the FTS5 trigram index on SQLite (for 3 characters or more) and the
    pg_trgm index on PostgreSQL.
    """
    m = message_index
    if is_sqlite(conn) and len(q) >= 3 and has_sqlite_fts(conn):
        phrase = '"' + q.replace('"', '""') + '"'
        hits = sa.text("SELECT rowid FROM message_fts WHERE message_fts MATCH :phrase") \
            .bindparams(phrase=phrase).columns(sa.column("rowid", sa.Integer))
        return sa.select(m.c.sender_id).where(m.c.id.in_(hits.subquery().select()))
    return sa.select(m.c.sender_id).where(_contains(conn, m.c.text, q))


def message_probe(conn: Connection, q: str) -> ColumnElement:
    """The conversation has a message containing ``q``: checked per conversation, by its messages."""
    m = message_index
    return sa.exists(sa.select(sa.literal(1)).where(m.c.sender_id == S.c.sender_id, _contains(conn, m.c.text, q)))


def _conversations_estimate(conn: Connection) -> float:
    """Roughly how many conversations there are (cheap: no count)."""
    if is_sqlite(conn):
        return float(conn.execute(sa.text("SELECT max(rowid) FROM conversation_summary")).scalar() or 0)
    if conn.dialect.name == "postgresql":
        estimate = conn.execute(sa.text(
            "SELECT reltuples FROM pg_class WHERE oid = 'conversation_summary'::regclass")).scalar()
        if estimate and estimate > 0:
            return float(estimate)
    return float(conn.execute(sa.select(sa.func.count()).select_from(S)).scalar_one())


def conditions(conn: Connection, filters: Filters, *, probe_search: bool = False) -> List[ColumnElement]:
    """WHERE conditions on ``conversation_summary`` (joined with ``conversation_review``).

    ``probe_search`` checks the free-text search per conversation (see :data:`PROBE_SHARE`).
    """
    where: List[ColumnElement] = []
    f = filters
    if f.date_from:
        where.append(S.c.last_event_at >= day_start(f.date_from))
    if f.date_to:
        where.append(S.c.started_at < day_start(f.date_to + timedelta(days=1)))
    if f.channel:
        where.append(S.c.channel == f.channel)
    if f.intent:
        where.append(_with_fact([FACT_INTENT], f.intent))
    if f.confidence_below is not None:
        where.append(S.c.min_confidence < f.confidence_below)
    if f.fallback:
        where.append(S.c.fallback_count > 0)
    if f.handoff:
        where.append(sa.or_(S.c.handoff_count > 0, S.c.support_request_count > 0))
    if f.failed:
        where.append(S.c.failed_action_count > 0)
    if f.operation or f.outcome:
        kinds = {conv.PERFORMED: [FACT_OPERATION_PERFORMED], conv.REFUSED: [FACT_OPERATION_REFUSED]}.get(
            f.outcome or "", [FACT_OPERATION_PERFORMED, FACT_OPERATION_REFUSED])
        where.append(_with_fact(kinds, f.operation))
    if f.customer:
        where.append(_with_fact([FACT_CUSTOMER], f.customer))
    if f.tag:
        where.append(S.c.sender_id.in_(sa.select(tag.c.sender_id).where(tag.c.tag == f.tag)))
    if f.status == NEW:
        where.append(sa.or_(review.c.status.is_(None), review.c.status == NEW))
    elif f.status:
        where.append(review.c.status == f.status)
    if f.q:
        where.append(message_probe(conn, f.q) if probe_search else S.c.sender_id.in_(message_search(conn, f.q)))
    return where


# --------------------------------------------------------------------------- conversation list


@dataclass
class ConversationRow:
    """One conversation in the list (summary, review status, tags, operations)."""

    summary: Dict[str, Any]
    status: str
    tags: List[str] = field(default_factory=list)
    operations: List[Tuple[str, str]] = field(default_factory=list)  # (name, outcome)

    @property
    def sender_id(self) -> str:
        return self.summary["sender_id"]


@dataclass
class ConversationPage:
    """A page of the filtered, sorted list."""

    rows: List[ConversationRow]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))


def _base_query(columns: Sequence[Any]) -> sa.sql.Select:
    return sa.select(*columns).select_from(
        S.outerjoin(review, review.c.sender_id == S.c.sender_id))


def list_conversations(conn: Connection, filters: Filters, *, sort: str = DEFAULT_SORT,
                       page: int = 1, per_page: int = PER_PAGE_DEFAULT) -> ConversationPage:
    """One page of conversations matching ``filters``, with the total count."""
    per_page = max(1, min(PER_PAGE_MAX, per_page))
    page = max(1, page)
    where = conditions(conn, filters)
    total = conn.execute(_base_query([sa.func.count()]).where(*where)).scalar_one()
    if filters.q and total and total >= PROBE_SHARE * _conversations_estimate(conn):
        where = conditions(conn, filters, probe_search=True)
    order = SORTS.get(sort, SORTS[DEFAULT_SORT])[1]
    query = (
        _base_query([S, review.c.status])
        .where(*where).order_by(*order).limit(per_page).offset((page - 1) * per_page)
    )
    rows = [
        ConversationRow(summary=dict(r._mapping), status=r.status or NEW)
        for r in conn.execute(query)
    ]
    _attach_tags_and_operations(conn, rows)
    return ConversationPage(rows, total, page, per_page)


def _attach_tags_and_operations(conn: Connection, rows: List[ConversationRow]) -> None:
    by_id = {row.sender_id: row for row in rows}
    if not by_id:
        return
    for sender_id, name in conn.execute(
        sa.select(tag.c.sender_id, tag.c.tag).where(tag.c.sender_id.in_(list(by_id))).order_by(tag.c.tag)
    ):
        by_id[sender_id].tags.append(name)
    f = conversation_fact
    for sender_id, kind, value in conn.execute(
        sa.select(f.c.sender_id, f.c.kind, f.c.value).where(
            f.c.sender_id.in_(list(by_id)),
            f.c.kind.in_([FACT_OPERATION_PERFORMED, FACT_OPERATION_REFUSED]),
        ).order_by(f.c.value)
    ):
        outcome = conv.PERFORMED if kind == FACT_OPERATION_PERFORMED else conv.REFUSED
        by_id[sender_id].operations.append((value, outcome))
    # a row's review status came with the page query; nothing else to fetch


def iter_conversations(conn: Connection, filters: Filters, *, sort: str = DEFAULT_SORT,
                       batch: int = 500) -> Iterator[List[ConversationRow]]:
    """All conversations matching ``filters``, in batches (for exports)."""
    page = 1
    while True:
        result = list_conversations(conn, filters, sort=sort, page=page, per_page=batch)
        if result.rows:
            yield result.rows
        if page >= result.pages:
            return
        page += 1


def messages_of(conn: Connection, sender_ids: Sequence[str]) -> Dict[str, List[Dict[str, Any]]]:
    """User and bot messages of conversations, in order (for the JSON Lines export)."""
    m = message_index
    out: Dict[str, List[Dict[str, Any]]] = {sender_id: [] for sender_id in sender_ids}
    if not sender_ids:
        return out
    for row in conn.execute(sa.select(m).where(m.c.sender_id.in_(list(sender_ids))).order_by(m.c.id)):
        item: Dict[str, Any] = {"at": iso(row.timestamp), "role": row.role, "text": row.text}
        if row.role == conv.USER:
            item.update(intent=row.intent, confidence=row.confidence)
        out[row.sender_id].append(item)
    return out


def choices(conn: Connection) -> Dict[str, List[str]]:
    """Values offered by the filter form: channels, intents, operations, tags."""
    f = conversation_fact
    channels = [r[0] for r in conn.execute(
        sa.select(S.c.channel).where(S.c.channel.is_not(None)).distinct().order_by(S.c.channel))]
    intents = [r[0] for r in conn.execute(
        sa.select(f.c.value).where(f.c.kind == FACT_INTENT).distinct().order_by(f.c.value))]
    operations = [r[0] for r in conn.execute(
        sa.select(f.c.value).where(f.c.kind.in_([FACT_OPERATION_PERFORMED, FACT_OPERATION_REFUSED]))
        .distinct().order_by(f.c.value))]
    tags = [r[0] for r in conn.execute(sa.select(tag.c.tag).distinct().order_by(tag.c.tag))]
    return {"channels": channels, "intents": intents, "operations": operations, "tags": tags}


# --------------------------------------------------------------------------- transcript


@dataclass
class Mark:
    """Something a lead should notice on a transcript line."""

    kind: str  # fallback, failed, interrupted, handoff, support, performed, refused, low
    label: str


@dataclass
class Item:
    """One line of a transcript."""

    event_id: int
    kind: str  # session, user, bot, action, interrupted, slot, form, other
    at: float
    text: str = ""
    intent: Optional[str] = None
    confidence: Optional[float] = None
    top_intent: Optional[str] = None
    ranking: List[Tuple[str, float]] = field(default_factory=list)
    entities: List[str] = field(default_factory=list)
    channel: Optional[str] = None
    customer: Optional[str] = None
    buttons: List[str] = field(default_factory=list)
    name: Optional[str] = None  # action or slot name
    policy: Optional[str] = None
    value: Optional[str] = None  # slot value as JSON
    marks: List[Mark] = field(default_factory=list)


@dataclass
class Transcript:
    """A conversation with its review records."""

    summary: Dict[str, Any]
    items: List[Item]
    truncated: bool
    status: str
    status_by: Optional[str]
    status_at: Optional[float]
    tags: List[Dict[str, Any]]
    notes: List[Dict[str, Any]]
    activity: List[Dict[str, Any]]
    operations: List[Tuple[str, str]]


def _fmt_confidence(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f}"


def _user_item(event_id: int, at: float, data: Mapping[str, Any], low: float, form: Optional[str]) -> Item:
    intent, confidence, top_intent = conv.user_nlu(data)
    parse = data.get("parse_data") if isinstance(data.get("parse_data"), Mapping) else {}
    ranking = [
        (str(c.get("name")), float(c.get("confidence") or 0.0))
        for c in (parse.get("intent_ranking") or [])[:4] if isinstance(c, Mapping)
    ]
    entities = [
        f"{e.get('entity')}={e.get('value')}" for e in (parse.get("entities") or []) if isinstance(e, Mapping)
    ]
    text = data.get("text") if isinstance(data.get("text"), str) else ""
    customer = conv.verified_account_of(data)
    identity = conv.verified_identity_of(data) or {}
    if customer and isinstance(identity.get("email"), str):
        customer = f"{customer} ({identity['email']})"
    item = Item(event_id, conv.USER, at, text=text, intent=intent, confidence=confidence,
                top_intent=top_intent, ranking=ranking, entities=entities,
                channel=data.get("input_channel"), customer=customer)
    if form is not None:
        item.marks.append(Mark("other", f"Answer to the form {form}"))
    elif intent == conv.FALLBACK_INTENT:
        guess = f" (best guess {top_intent} {_fmt_confidence(confidence)})" if top_intent else ""
        item.marks.append(Mark("fallback", f"Fallback: not understood{guess}"))
    elif confidence is not None and confidence < low and not conv.is_payload(text):
        item.marks.append(Mark("low", f"Low confidence {_fmt_confidence(confidence)}"))
    return item


def _bot_item(event_id: int, at: float, data: Mapping[str, Any]) -> Item:
    payload = data.get("data") if isinstance(data.get("data"), Mapping) else {}
    buttons = [str(b.get("title")) for b in (payload.get("buttons") or []) if isinstance(b, Mapping)]
    return Item(event_id, conv.BOT, at, text=data.get("text") or "", buttons=buttons)


def _add_marker_marks(item: Item, data: Mapping[str, Any]) -> None:
    operation = conv.operation_of(data)
    if not operation:
        return
    name, outcome, reason = operation
    because = f" ({reason})" if reason else ""
    if name == conv.SUPPORT_REQUEST_OPERATION:
        if outcome == conv.PERFORMED:
            item.marks.append(Mark("support", "Support request opened"))
        elif outcome == conv.FAILED:
            item.marks.append(Mark("failed", f"Failed: the support request was not stored{because}"))
        return
    kind = {conv.PERFORMED: "performed", conv.REFUSED: "refused", conv.FAILED: "failed"}.get(outcome, "other")
    label = f"Failed: operation {name}{because}" if outcome == conv.FAILED else f"Operation {name} {outcome}{because}"
    item.marks.append(Mark(kind, label))


#: Kind of the transcript line and mark of a form interruption (neutral).
INTERRUPTED = "interrupted"


def _interruption_label(name: Optional[str], active_form: Optional[str]) -> str:
    if name and name == active_form:
        return f"Form interrupted: {name} did not take this message; the assistant answered it instead"
    return f"Interrupted: {name or 'the action'} declined to run; the assistant chose another action"


#: Bookkeeping events and actions a transcript leaves out.
HIDDEN_EVENTS = frozenset({"user_featurization"})
HIDDEN_ACTIONS = frozenset({conv.ACTION_LISTEN, "action_session_start"})


def build_items(rows: Sequence[Tuple[int, Mapping[str, Any]]], low: float) -> List[Item]:
    """Transcript lines from stored events (Rasa's bookkeeping lines are left out)."""
    items: List[Item] = []
    detector = conv.FailureDetector()
    form = conv.FormTracker()
    pending_item: Optional[Item] = None
    for event_id, data in rows:
        kind = data.get("event")
        at = float(data.get("timestamp") or 0.0)
        active_form = form.active
        form.feed(data)
        failed = detector.feed(data)
        if failed is not None and pending_item is not None:
            pending_item.marks.append(Mark(
                "failed", "Failed: the action left no result (action server error, timeout or unreachable)"))
        item: Optional[Item] = None
        if kind == conv.SESSION_STARTED:
            item = Item(event_id, "session", at)
        elif kind == conv.USER:
            item = _user_item(event_id, at, data, low, active_form)
        elif kind == conv.BOT:
            item = _bot_item(event_id, at, data)
        elif kind == conv.ACTION:
            name = data.get("name")
            if name not in HIDDEN_ACTIONS:
                confidence = data.get("confidence")
                item = Item(event_id, conv.ACTION, at, name=name, policy=data.get("policy"),
                            confidence=float(confidence) if confidence is not None else None)
                if conv.is_fallback(data):
                    item.marks.append(Mark("fallback", "Fallback action"))
                if conv.is_handoff(data):
                    item.marks.append(Mark("handoff", "Hand-off to a person"))
        elif kind == conv.REJECTED:
            confidence = data.get("confidence")
            item = Item(event_id, INTERRUPTED, at, name=data.get("name"), policy=data.get("policy"),
                        confidence=float(confidence) if confidence is not None else None)
            item.marks.append(Mark(INTERRUPTED, _interruption_label(item.name, active_form)))
        elif kind == conv.SLOT:
            item = Item(event_id, "slot", at, name=data.get("name"),
                        value=json.dumps(data.get("value"), ensure_ascii=False)[:500])
        elif kind == conv.ACTIVE_LOOP:
            item = Item(event_id, "form", at, name=data.get("name"))
        elif kind not in HIDDEN_EVENTS:
            item = Item(event_id, "other", at, name=str(kind))
        if item is not None:
            _add_marker_marks(item, data)
            items.append(item)
        pending_item = item if detector.pending is not None else None
    return items


def load_transcript(conn: Connection, sender_id: str, *, low_confidence: float) -> Optional[Transcript]:
    """The conversation ``sender_id`` with its review records, or None if unknown."""
    summary = conn.execute(sa.select(S).where(S.c.sender_id == sender_id)).first()
    if summary is None:
        return None
    rows = conn.execute(
        sa.select(events.c.id, events.c.data).where(events.c.sender_id == sender_id)
        .order_by(events.c.id).limit(MAX_TRANSCRIPT_EVENTS + 1)
    ).all()
    truncated = len(rows) > MAX_TRANSCRIPT_EVENTS
    parsed = []
    for row in rows[:MAX_TRANSCRIPT_EVENTS]:
        try:
            data = json.loads(row.data or "{}")
        except ValueError:
            data = {}
        parsed.append((row.id, data if isinstance(data, dict) else {}))
    status_row = conn.execute(
        sa.select(review.c.status, review.c.updated_at, lead.c.email)
        .join(lead, lead.c.id == review.c.updated_by).where(review.c.sender_id == sender_id)
    ).first()
    tags = [dict(r._mapping) for r in conn.execute(
        sa.select(tag.c.tag, tag.c.added_at, lead.c.email.label("by"))
        .join(lead, lead.c.id == tag.c.added_by).where(tag.c.sender_id == sender_id).order_by(tag.c.tag))]
    notes = [dict(r._mapping) for r in conn.execute(
        sa.select(note.c.id, note.c.body, note.c.created_at, lead.c.email.label("by"))
        .join(lead, lead.c.id == note.c.lead_id).where(note.c.sender_id == sender_id)
        .order_by(note.c.created_at.desc(), note.c.id.desc()))]
    log = [dict(r._mapping) for r in conn.execute(
        sa.select(activity.c.at, activity.c.action, activity.c.detail, lead.c.email.label("by"))
        .join(lead, lead.c.id == activity.c.lead_id).where(activity.c.sender_id == sender_id)
        .order_by(activity.c.at.desc(), activity.c.id.desc()).limit(50))]
    page_row = ConversationRow(summary=dict(summary._mapping), status=NEW)
    _attach_tags_and_operations(conn, [page_row])
    return Transcript(
        summary=dict(summary._mapping), items=build_items(parsed, low_confidence), truncated=truncated,
        status=status_row.status if status_row else NEW,
        status_by=status_row.email if status_row else None,
        status_at=status_row.updated_at if status_row else None,
        tags=tags, notes=notes, activity=log, operations=page_row.operations,
    )


# --------------------------------------------------------------------------- dashboard


@dataclass
class Dashboard:
    """Figures for a date range (conversations by the UTC day they started)."""

    date_from: date
    date_to: date
    per_day: List[Dict[str, Any]]  # day, conversations, handed_off, with_fallback
    conversations: int
    contained: int
    with_fallback: int
    user_messages: int
    fallback_messages: int
    top_intents: List[Tuple[str, int]]
    operations: List[Dict[str, Any]]  # name, performed, refused
    with_failure: int = 0  # conversations with a real failed action (not an interruption)

    @property
    def containment(self) -> Optional[float]:
        return self.contained / self.conversations if self.conversations else None

    @property
    def fallback_rate(self) -> Optional[float]:
        return self.with_fallback / self.conversations if self.conversations else None

    @property
    def message_fallback_rate(self) -> Optional[float]:
        return self.fallback_messages / self.user_messages if self.user_messages else None


def dashboard(conn: Connection, date_from: date, date_to: date) -> Dashboard:
    """Conversations per day, containment, fallback rate, top intents, operations."""
    first, last = date_from.isoformat(), date_to.isoformat()
    handed_off = sa.or_(S.c.handoff_count > 0, S.c.support_request_count > 0)
    counts = {
        r.started_day: r for r in conn.execute(
            sa.select(
                S.c.started_day,
                sa.func.count().label("conversations"),
                sa.func.sum(sa.case((handed_off, 1), else_=0)).label("handed_off"),
                sa.func.sum(sa.case((S.c.fallback_count > 0, 1), else_=0)).label("with_fallback"),
                sa.func.sum(sa.case((S.c.failed_action_count > 0, 1), else_=0)).label("with_failure"),
            ).where(S.c.started_day >= first, S.c.started_day <= last).group_by(S.c.started_day)
        )
    }
    per_day = []
    day = date_from
    while day <= date_to:
        row = counts.get(day.isoformat())
        per_day.append({
            "day": day.isoformat(),
            "conversations": int(row.conversations) if row else 0,
            "handed_off": int(row.handed_off or 0) if row else 0,
            "with_fallback": int(row.with_fallback or 0) if row else 0,
        })
        day += timedelta(days=1)
    total = sum(d["conversations"] for d in per_day)
    handed = sum(d["handed_off"] for d in per_day)
    with_fallback = sum(d["with_fallback"] for d in per_day)
    with_failure = sum(int(r.with_failure or 0) for r in counts.values())

    m = message_index
    start, end = day_start(date_from), day_start(date_to + timedelta(days=1))
    in_range = sa.and_(m.c.role == conv.USER, m.c.timestamp >= start, m.c.timestamp < end)
    intent_counts = conn.execute(
        sa.select(m.c.intent, sa.func.count().label("n")).where(in_range, m.c.intent.is_not(None))
        .group_by(m.c.intent).order_by(sa.desc("n"), m.c.intent)
    ).all()
    user_messages = sum(int(r.n) for r in intent_counts)
    fallback_messages = sum(int(r.n) for r in intent_counts if r.intent == conv.FALLBACK_INTENT)
    top = [(r.intent, int(r.n)) for r in intent_counts if r.intent != conv.FALLBACK_INTENT][:10]

    f = conversation_fact
    operations: Dict[str, Dict[str, Any]] = {}
    for kind, value, n in conn.execute(
        sa.select(f.c.kind, f.c.value, sa.func.count())
        .join(S, S.c.sender_id == f.c.sender_id)
        .where(f.c.kind.in_([FACT_OPERATION_PERFORMED, FACT_OPERATION_REFUSED]),
               S.c.started_day >= first, S.c.started_day <= last)
        .group_by(f.c.kind, f.c.value)
    ):
        entry = operations.setdefault(value, {"name": value, "performed": 0, "refused": 0})
        entry["performed" if kind == FACT_OPERATION_PERFORMED else "refused"] += int(n)
    ops = sorted(operations.values(), key=lambda e: (-(e["performed"] + e["refused"]), e["name"]))
    return Dashboard(date_from, date_to, per_day, total, total - handed, with_fallback,
                     user_messages, fallback_messages, top, ops, with_failure)


# --------------------------------------------------------------------------- NLU inbox

PENDING, CONFIRMED, CORRECTED = "pending", "confirmed", "corrected"
INBOX_VIEWS = (PENDING, CONFIRMED, CORRECTED)


@dataclass
class InboxPage:
    """User messages to label."""

    items: List[Dict[str, Any]]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))


def inbox(conn: Connection, *, threshold: float, view: str = PENDING, page: int = 1,
          per_page: int = PER_PAGE_DEFAULT) -> InboxPage:
    """Low-confidence or fallback user messages (pending), or the ones already labelled."""
    m, r = message_index, nlu_review
    base = sa.and_(m.c.role == conv.USER, m.c.is_payload == sa.false(), m.c.in_form == sa.false())
    if view == PENDING:
        where = sa.and_(base, r.c.event_id.is_(None), sa.or_(
            m.c.confidence < threshold, m.c.intent == conv.FALLBACK_INTENT))
    else:
        where = sa.and_(base, r.c.outcome == view)
    joined = m.outerjoin(r, r.c.event_id == m.c.event_id).outerjoin(lead, lead.c.id == r.c.lead_id)
    total = conn.execute(sa.select(sa.func.count()).select_from(joined).where(where)).scalar_one()
    rows = conn.execute(
        sa.select(m.c.event_id, m.c.sender_id, m.c.timestamp, m.c.text, m.c.intent, m.c.confidence,
                  m.c.top_intent, r.c.label, r.c.outcome, r.c.at.label("labelled_at"),
                  lead.c.email.label("labelled_by"))
        .select_from(joined).where(where)
        .order_by(m.c.timestamp.desc(), m.c.event_id.desc())
        .limit(per_page).offset((max(1, page) - 1) * per_page)
    ).all()
    return InboxPage([dict(row._mapping) for row in rows], total, max(1, page), per_page)


def nlu_examples(conn: Connection, *, include_confirmed: bool = False) -> Dict[str, List[str]]:
    """Labelled texts by intent (corrected ones; confirmed too if asked), de-duplicated."""
    r = nlu_review
    outcomes = [CORRECTED, CONFIRMED] if include_confirmed else [CORRECTED]
    examples: Dict[str, List[str]] = {}
    seen = set()
    for label, text in conn.execute(
        sa.select(r.c.label, r.c.text).where(r.c.outcome.in_(outcomes)).order_by(r.c.label, r.c.at)
    ):
        clean = " ".join(text.split())
        if not clean or (label, clean.lower()) in seen:
            continue
        seen.add((label, clean.lower()))
        examples.setdefault(label, []).append(clean)
    return examples


def nlu_yaml(examples: Mapping[str, Sequence[str]], *, generated_at: datetime) -> str:
    """Rasa 3.x NLU training data (YAML) for ``examples``."""
    lines = [
        f"# Exported from the conversation review console on {generated_at:%Y-%m-%d %H:%M} UTC.",
        "# Check each example, then move it to data/nlu/<intent>.yml.",
        'version: "3.1"',
        "nlu:",
    ]
    for intent in sorted(examples):
        lines.append(f"- intent: {intent}")
        lines.append("  examples: |")
        lines.extend(f"    - {text}" for text in examples[intent])
    if not examples:
        lines[-1] = "nlu: []"
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- formatting


def iso(timestamp: Optional[float]) -> Optional[str]:
    """ISO 8601 UTC time of a unix timestamp."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- exports


@dataclass
class ExportBatch:
    """One batch of an export, ordered by (started_at, sender_id)."""

    rows: List[ConversationRow]
    intents: Dict[str, List[str]]
    messages: Dict[str, List[Dict[str, Any]]]

    @property
    def last_key(self) -> Optional[Tuple[float, str]]:
        if not self.rows:
            return None
        last = self.rows[-1].summary
        return last["started_at"], last["sender_id"]


def export_batch(conn: Connection, filters: Filters, *, after: Optional[Tuple[float, str]], cutoff: float,
                 limit: int = 500, with_messages: bool = False) -> ExportBatch:
    """The next ``limit`` conversations matching ``filters`` after ``after`` (keyset pagination).

    Only conversations that started before ``cutoff`` (the export's start) are
    included, so conversations arriving during a long export do not shift it.
    """
    where = conditions(conn, filters) + [S.c.started_at <= cutoff]
    if after is not None:
        where.append(sa.tuple_(S.c.started_at, S.c.sender_id) > sa.tuple_(sa.literal(after[0]), sa.literal(after[1])))
    query = _base_query([S, review.c.status]).where(*where).order_by(S.c.started_at, S.c.sender_id).limit(limit)
    rows = [ConversationRow(summary=dict(r._mapping), status=r.status or NEW) for r in conn.execute(query)]
    _attach_tags_and_operations(conn, rows)
    ids = [row.sender_id for row in rows]
    intents: Dict[str, List[str]] = {sender_id: [] for sender_id in ids}
    if ids:
        f = conversation_fact
        for sender_id, value in conn.execute(
            sa.select(f.c.sender_id, f.c.value).where(f.c.sender_id.in_(ids), f.c.kind == FACT_INTENT)
            .order_by(f.c.value)
        ):
            intents[sender_id].append(value)
    messages = messages_of(conn, ids) if with_messages else {}
    return ExportBatch(rows, intents, messages)


EXPORT_COLUMNS = (
    "conversation_id", "started_at", "last_activity", "channel", "customer_id", "verified_by", "customer_messages",
    "bot_messages", "lowest_confidence", "fallbacks", "handoffs", "support_requests", "failed_actions",
    "operations_performed", "operations_refused", "intents", "tags", "review_status", "first_message",
)


def export_record(row: ConversationRow, intents: Sequence[str]) -> Dict[str, Any]:
    """A conversation as an export record (the CSV columns; JSON Lines adds messages)."""
    s = row.summary
    return {
        "conversation_id": s["sender_id"],
        "started_at": iso(s["started_at"]),
        "last_activity": iso(s["last_event_at"]),
        "channel": s.get("channel"),
        "customer_id": s.get("customer_id"),
        "verified_by": s.get("verified_by"),
        "customer_messages": s["user_message_count"],
        "bot_messages": s["bot_message_count"],
        "lowest_confidence": None if s.get("min_confidence") is None else round(s["min_confidence"], 4),
        "fallbacks": s["fallback_count"],
        "handoffs": s["handoff_count"],
        "support_requests": s["support_request_count"],
        "failed_actions": s["failed_action_count"],
        "operations_performed": [name for name, outcome in row.operations if outcome == conv.PERFORMED],
        "operations_refused": [name for name, outcome in row.operations if outcome == conv.REFUSED],
        "intents": list(intents),
        "tags": list(row.tags),
        "review_status": row.status,
        "first_message": s.get("first_user_text"),
    }
