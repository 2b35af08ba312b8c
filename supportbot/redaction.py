"""Tracker events as they may be stored: secret slots and the messages that filled them masked.

The patterns themselves live in :mod:`accounts.redaction` (one pattern set for
every layer); this module knows Rasa's event dictionaries and our secret slots.
"""

from __future__ import annotations

from accounts.redaction import MASK, redact_text, redact_tokens

# Slots that hold one-time codes, recovery codes or similar while a form checks
# them. Their values, and the customer messages that filled them, are never
# stored (see redact_tracker_events).
SECRET_SLOTS = frozenset({
    "step_up_code", "email_code", "recovery_code", "link_code", "verification_code",
})


def _mask_user_event(event: dict) -> dict:
    masked = dict(event, text=MASK)
    parse_data = dict(event.get("parse_data") or {})
    if parse_data:
        parse_data["text"] = MASK
        parse_data.pop("text_tokens", None)
        masked["parse_data"] = parse_data
    return masked


def redact_tracker_events(events: list, secret_slots: frozenset = SECRET_SLOTS) -> list:
    """Tracker events (``Event.as_dict()``) as they may be stored: no secrets in them.

    * a slot in ``secret_slots`` keeps its name but loses its value;
    * a customer message that filled a secret slot (a secret slot is set after it
      in the same batch) is replaced by ``[redacted]``, text and parse data;
    * every other customer message has codes and tokens masked, and the
      assistant's messages have tokens and secret links masked.

    Returns one event per input event, in order (stores count events).
    """
    redacted = []
    pending_user_index = None
    for event in events:
        kind = event.get("event")
        if kind == "user":
            pending_user_index = len(redacted)
            text = event.get("text") or ""
            clean = redact_text(text)
            if clean != text:
                event = dict(event, text=clean)
                if event.get("parse_data"):
                    event["parse_data"] = dict(event["parse_data"], text=clean)
            redacted.append(event)
        elif kind == "slot" and event.get("name") in secret_slots:
            if event.get("value") is not None:
                event = dict(event, value=MASK)
                if pending_user_index is not None:
                    redacted[pending_user_index] = _mask_user_event(redacted[pending_user_index])
            redacted.append(event)
        elif kind == "bot" and event.get("text"):
            redacted.append(dict(event, text=redact_tokens(event["text"])))
        else:
            redacted.append(event)
    return redacted
