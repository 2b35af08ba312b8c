"""Fold a conversation's events into its summary, facts and message rows (pure Python).

The same fold runs incrementally when the tracker store saves new events and in
bulk when the index is rebuilt, so both give identical results.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from typing import Any, Dict, Iterable, List, Mapping, Optional, Set, Tuple

from tracking import conventions as c

FIRST_TEXT_CHARS = 200
Fact = Tuple[str, str]

# Fact kinds (duplicated from tracking.schema so this module needs no SQLAlchemy).
FACT_INTENT = "intent"
FACT_OPERATION_PERFORMED = "operation_performed"
FACT_OPERATION_REFUSED = "operation_refused"
FACT_CUSTOMER = "customer"


def utc_day(timestamp: float) -> str:
    """The UTC calendar day of a unix timestamp, as ``YYYY-MM-DD``."""
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%d")


@dataclass
class Summary:
    """One row of ``conversation_summary``."""

    sender_id: str
    started_at: float = 0.0
    started_day: str = ""
    last_event_at: float = 0.0
    last_event_id: Optional[int] = None
    event_count: int = 0
    session_count: int = 0
    user_message_count: int = 0
    bot_message_count: int = 0
    channel: Optional[str] = None
    customer_id: Optional[str] = None
    min_confidence: Optional[float] = None
    fallback_count: int = 0
    handoff_count: int = 0
    support_request_count: int = 0
    failed_action_count: int = 0
    form_interruption_count: int = 0
    operations_performed: int = 0
    operations_refused: int = 0
    first_user_text: Optional[str] = None
    pending_action: Optional[str] = None
    active_loop: Optional[str] = None
    verified_by: Optional[str] = None

    def as_row(self) -> Dict[str, Any]:
        """The summary as a dict of column values."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "Summary":
        """Rebuild a summary from a database row."""
        return cls(**{f.name: row[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class MessageRow:
    """One row of ``message_index``."""

    event_id: int
    sender_id: str
    timestamp: float
    role: str
    text: str
    intent: Optional[str] = None
    confidence: Optional[float] = None
    top_intent: Optional[str] = None
    is_payload: bool = False
    in_form: bool = False

    def as_row(self) -> Dict[str, Any]:
        """The message as a dict of column values."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class FoldResult:
    """What a batch of events adds besides the summary itself."""

    facts: Set[Fact] = field(default_factory=set)
    messages: List[MessageRow] = field(default_factory=list)


def _timestamp(event: Mapping[str, Any], fallback: float) -> float:
    value = event.get("timestamp")
    try:
        return float(value) if value is not None else fallback
    except (TypeError, ValueError):
        return fallback


def fold(summary: Summary, events: Iterable[Tuple[int, Mapping[str, Any]]]) -> FoldResult:
    """Add ``events`` (event id, stored event dict), in order, to ``summary``.

    Args:
        summary: The conversation's summary so far; updated in place.
        events: New events of the conversation with their ``events.id``.

    Returns:
        The facts and message rows the events add.
    """
    result = FoldResult()
    detector = c.FailureDetector(summary.pending_action)
    form = c.FormTracker(summary.active_loop)
    for event_id, event in events:
        kind = event.get("event")
        at = _timestamp(event, summary.last_event_at)
        if summary.event_count == 0:
            summary.started_at = at
            summary.started_day = utc_day(at)
        summary.event_count += 1
        summary.last_event_at = max(summary.last_event_at, at)
        summary.last_event_id = event_id

        if detector.feed(event) is not None:
            summary.failed_action_count += 1
        if c.is_interruption(event):
            summary.form_interruption_count += 1
        in_form = form.active is not None
        form.feed(event)
        if c.is_fallback(event) and not (in_form and kind == c.USER):
            summary.fallback_count += 1
        if c.is_handoff(event):
            summary.handoff_count += 1
        operation = c.operation_of(event)
        if operation is not None:
            _fold_operation(summary, result, *operation)
        linked = c.linked_customer_of(event)
        if linked is not None:
            summary.customer_id = linked[0]
            summary.verified_by = f"{linked[1]} link"
            result.facts.add((FACT_CUSTOMER, linked[0]))

        if kind == c.SESSION_STARTED:
            summary.session_count += 1
        elif kind == c.USER:
            _fold_user(summary, result, event_id, at, event, in_form)
        elif kind == c.BOT:
            text = event.get("text")
            summary.bot_message_count += 1
            if isinstance(text, str) and text.strip():
                result.messages.append(MessageRow(event_id, summary.sender_id, at, c.BOT, text))
    summary.pending_action = detector.pending
    summary.active_loop = form.active
    return result


def _fold_operation(summary: Summary, result: FoldResult, name: str, outcome: str,
                    _reason: Optional[str]) -> None:
    if outcome == c.FAILED:
        summary.failed_action_count += 1
    elif name == c.SUPPORT_REQUEST_OPERATION:
        if outcome == c.PERFORMED:
            summary.support_request_count += 1
    elif outcome == c.PERFORMED:
        summary.operations_performed += 1
        result.facts.add((FACT_OPERATION_PERFORMED, name))
    elif outcome == c.REFUSED:
        summary.operations_refused += 1
        result.facts.add((FACT_OPERATION_REFUSED, name))


def _fold_user(summary: Summary, result: FoldResult, event_id: int, at: float,
               event: Mapping[str, Any], in_form: bool) -> None:
    text = event.get("text") if isinstance(event.get("text"), str) else ""
    intent, confidence, top_intent = c.user_nlu(event)
    payload = c.is_payload(text)
    summary.user_message_count += 1
    channel = event.get("input_channel")
    if summary.channel is None and isinstance(channel, str) and channel:
        summary.channel = channel[:64]
    account = c.verified_account_of(event)
    if account is not None:
        summary.customer_id = account
        summary.verified_by = "portal token"
        result.facts.add((FACT_CUSTOMER, account))
    if isinstance(intent, str) and intent and not (in_form and intent == c.FALLBACK_INTENT):
        result.facts.add((FACT_INTENT, intent[:255]))
    if confidence is not None and not payload and not in_form:
        if summary.min_confidence is None or confidence < summary.min_confidence:
            summary.min_confidence = confidence
    if summary.first_user_text is None and text.strip() and not payload:
        summary.first_user_text = text.strip()[:FIRST_TEXT_CHARS]
    if text.strip():
        result.messages.append(MessageRow(
            event_id, summary.sender_id, at, c.USER, text,
            intent=intent[:255] if isinstance(intent, str) else None,
            confidence=confidence,
            top_intent=top_intent[:255] if isinstance(top_intent, str) else None,
            is_payload=payload, in_form=in_form,
        ))
