"""Tracker events as they may be stored: secret slots and the messages that filled them masked.

The patterns themselves live in :mod:`accounts.redaction` (one pattern set for
every layer); this module knows Rasa's event dictionaries and our secret slots.
"""

from __future__ import annotations

from typing import Any

from accounts.redaction import MASK, is_secret_key, redact_text, redact_tokens, redact_value

# Slots that hold one-time codes, recovery codes or similar while a form checks
# them. Their values, and the customer messages that filled them, are never
# stored (see redact_tracker_events).
SECRET_SLOTS = frozenset({
    "step_up_code", "email_code", "recovery_code", "link_code", "verification_code", "link_app_code",
})


def _redact_entities(entities: Any, secret_slots: frozenset, mask_all: bool = False) -> Any:
    """Entities with their values masked: all of them, those named like a secret, or their codes and tokens."""
    if not isinstance(entities, list):
        return entities
    redacted = []
    for entity in entities:
        if isinstance(entity, dict) and "value" in entity:
            name = entity.get("entity")
            secret = mask_all or name in secret_slots or is_secret_key(name)
            entity = dict(entity, value=MASK if secret else redact_value(entity["value"]))
        redacted.append(entity)
    return redacted


def _mask_user_event(event: dict, secret_slots: frozenset) -> dict:
    masked = dict(event, text=MASK)
    parse_data = dict(event.get("parse_data") or {})
    if parse_data:
        parse_data["text"] = MASK
        parse_data.pop("text_tokens", None)
        if "entities" in parse_data:
            parse_data["entities"] = _redact_entities(parse_data["entities"], secret_slots, mask_all=True)
        masked["parse_data"] = parse_data
    return masked


def _redact_user_event(event: dict, secret_slots: frozenset) -> dict:
    text = event.get("text") or ""
    clean = redact_text(text)
    parse_data = event.get("parse_data")
    if clean == text and not (parse_data or {}).get("entities"):
        return event
    event = dict(event, text=clean) if clean != text else dict(event)
    if parse_data:
        event["parse_data"] = dict(parse_data, text=clean)
        if parse_data.get("entities"):
            event["parse_data"]["entities"] = _redact_entities(parse_data["entities"], secret_slots)
    return event


def redact_tracker_events(events: list, secret_slots: frozenset = SECRET_SLOTS) -> list:
    """Tracker events (``Event.as_dict()``) as they may be stored: no secrets in them.

    * a slot in ``secret_slots`` keeps its name but loses its value;
    * a customer message that filled a secret slot (a secret slot is set after it
      in the same batch) is replaced by ``[redacted]``, text, parse data and the
      values of its entities;
    * every other customer message has codes and tokens masked, in its text and
      in its entities' values (an entity named like a secret slot or a secret
      key loses its value), and the assistant's messages have tokens and secret
      links masked.

    Returns one event per input event, in order (stores count events).
    """
    redacted = []
    pending_user_index = None
    for event in events:
        kind = event.get("event")
        if kind == "user":
            pending_user_index = len(redacted)
            redacted.append(_redact_user_event(event, secret_slots))
        elif kind == "slot" and event.get("name") in secret_slots:
            if event.get("value") is not None:
                event = dict(event, value=MASK)
                if pending_user_index is not None:
                    redacted[pending_user_index] = _mask_user_event(redacted[pending_user_index], secret_slots)
            redacted.append(event)
        elif kind == "entities":
            redacted.append(dict(event, entities=_redact_entities(event.get("entities"), secret_slots)))
        elif kind == "bot" and event.get("text"):
            redacted.append(dict(event, text=redact_tokens(event["text"])))
        else:
            redacted.append(event)
    return redacted
