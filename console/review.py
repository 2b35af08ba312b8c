"""Write side of the console: tags, notes, review status and NLU labels.

Each function runs inside the caller's write transaction, names the lead who
acts and the time, and appends a line to ``conversation_activity``. Invalid
input comes back as a :class:`ReviewError` with a message for the lead.
"""

from __future__ import annotations

import re
from typing import Optional, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from console.models import activity, note, nlu_review, review, tag
from console.queries import CONFIRMED, CORRECTED, STATUS_LABELS, STATUSES
from tracking import conventions as conv
from tracking.schema import conversation_summary, message_index

TAG_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
MAX_NOTE_CHARS = 4000


class ReviewError(ValueError):
    """The change cannot be made; the message says why."""


class NotFound(LookupError):
    """The conversation or message does not exist."""


def _require_conversation(conn: Connection, sender_id: str) -> None:
    exists = conn.execute(
        sa.select(conversation_summary.c.sender_id).where(conversation_summary.c.sender_id == sender_id)
    ).first()
    if exists is None:
        raise NotFound(sender_id)


def _log(conn: Connection, sender_id: str, lead_id: int, now: float, action: str, detail: str) -> None:
    conn.execute(activity.insert().values(sender_id=sender_id, lead_id=lead_id, at=now,
                                          action=action, detail=detail[:500]))


def normalize_tag(raw: str) -> str:
    """Lower-case tag with spaces as dashes; raises :class:`ReviewError` if invalid."""
    value = re.sub(r"\s+", "-", (raw or "").strip().lower())
    if not TAG_RE.match(value):
        raise ReviewError("A tag is 1-32 characters: letters, digits, - and _.")
    return value


def add_tag(conn: Connection, sender_id: str, raw_tag: str, *, lead_id: int, now: float) -> str:
    """Tag a conversation (no-op if it has the tag already); returns the tag."""
    value = normalize_tag(raw_tag)
    _require_conversation(conn, sender_id)
    exists = conn.execute(sa.select(tag.c.tag).where(tag.c.sender_id == sender_id, tag.c.tag == value)).first()
    if exists is None:
        conn.execute(tag.insert().values(sender_id=sender_id, tag=value, added_by=lead_id, added_at=now))
        _log(conn, sender_id, lead_id, now, "tag_added", value)
    return value


def remove_tag(conn: Connection, sender_id: str, raw_tag: str, *, lead_id: int, now: float) -> None:
    """Remove a tag from a conversation."""
    value = normalize_tag(raw_tag)
    _require_conversation(conn, sender_id)
    deleted = conn.execute(tag.delete().where(tag.c.sender_id == sender_id, tag.c.tag == value)).rowcount
    if deleted:
        _log(conn, sender_id, lead_id, now, "tag_removed", value)


def add_note(conn: Connection, sender_id: str, body: str, *, lead_id: int, now: float) -> None:
    """Add a note to a conversation."""
    text = (body or "").strip()
    if not text:
        raise ReviewError("The note is empty.")
    if len(text) > MAX_NOTE_CHARS:
        raise ReviewError(f"Please keep notes under {MAX_NOTE_CHARS} characters.")
    _require_conversation(conn, sender_id)
    conn.execute(note.insert().values(sender_id=sender_id, lead_id=lead_id, body=text, created_at=now))
    _log(conn, sender_id, lead_id, now, "note_added", text[:120])


def set_status(conn: Connection, sender_id: str, status: str, *, lead_id: int, now: float) -> None:
    """Set a conversation's review status (new, reviewed, follow_up)."""
    if status not in STATUSES:
        raise ReviewError("Pick a review status: new, reviewed or needs follow-up.")
    _require_conversation(conn, sender_id)
    updated = conn.execute(review.update().where(review.c.sender_id == sender_id)
                           .values(status=status, updated_by=lead_id, updated_at=now)).rowcount
    if not updated:
        conn.execute(review.insert().values(sender_id=sender_id, status=status, updated_by=lead_id,
                                            updated_at=now))
    _log(conn, sender_id, lead_id, now, "status", STATUS_LABELS[status])


def label_message(conn: Connection, event_id: int, label: str, *, known_intents: Sequence[str],
                  lead_id: int, now: float) -> str:
    """Confirm or correct the intent of a user message; returns ``confirmed`` or ``corrected``.

    The predicted label is the best real intent (for a fallback message, NLU's
    best guess); choosing it confirms, choosing another one corrects.
    """
    if label not in known_intents or label == conv.FALLBACK_INTENT:
        raise ReviewError("Pick one of the assistant's intents.")
    m = message_index
    message = conn.execute(
        sa.select(m.c.sender_id, m.c.text, m.c.top_intent, m.c.confidence)
        .where(m.c.event_id == event_id, m.c.role == conv.USER)
    ).first()
    if message is None:
        raise NotFound(str(event_id))
    outcome = CONFIRMED if label == message.top_intent else CORRECTED
    values = dict(sender_id=message.sender_id, text=message.text, predicted_intent=message.top_intent,
                  predicted_confidence=message.confidence, label=label, outcome=outcome,
                  lead_id=lead_id, at=now)
    updated = conn.execute(nlu_review.update().where(nlu_review.c.event_id == event_id).values(**values)).rowcount
    if not updated:
        conn.execute(nlu_review.insert().values(event_id=event_id, **values))
    _log(conn, message.sender_id, lead_id, now, f"nlu_{outcome}",
         f"{message.text[:80]!r} -> {label}")
    return outcome


def undo_label(conn: Connection, event_id: int) -> Optional[str]:
    """Put a labelled message back into the inbox; returns the old outcome."""
    row = conn.execute(sa.select(nlu_review.c.outcome).where(nlu_review.c.event_id == event_id)).first()
    conn.execute(nlu_review.delete().where(nlu_review.c.event_id == event_id))
    return row.outcome if row else None
