"""While a person has the conversation, what the customer writes goes to their support request.

The assistant pauses a conversation it handed over (ConversationPaused) when a
helpdesk is configured, so a person can take over. Rasa still stores what the
customer writes meanwhile; the tracker store calls :func:`record_customer_messages`
to add those messages (already redacted) to the support request's thread, which
the helpdesk delivery worker forwards. After ``HANDOFF_TIMEOUT_MINUTES``
(default 30) without an agent releasing it, the assistant takes the
conversation back (:func:`handoff_timed_out`); when an agent released it
earlier (helpdesk webhook or console button, which only write
``support_requests.released_at``), it takes it back on the customer's next
message (:func:`handoff_released`).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from typing import Iterable, Optional

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_MINUTES = 30.0
REQUEST_SLOT = "handoff_request_id"

_lock = threading.Lock()
_deps = None


def handoff_timeout() -> dt.timedelta:
    """How long a handed-over conversation stays paused without an agent."""
    return dt.timedelta(minutes=float(os.environ.get("HANDOFF_TIMEOUT_MINUTES", DEFAULT_TIMEOUT_MINUTES)))


def handoff_timed_out(paused_at: float, now: Optional[float] = None) -> bool:
    """Whether a pause that started at unix time ``paused_at`` has run out."""
    current = dt.datetime.now(dt.timezone.utc).timestamp() if now is None else now
    return current - paused_at >= handoff_timeout().total_seconds()


def _account_deps():
    global _deps
    with _lock:
        if _deps is None:
            from accounts.db import make_session_factory
            from accounts.deps import Deps

            _deps = Deps(session_factory=make_session_factory())
        return _deps


def record_customer_messages(request_id: int, texts: Iterable[str]) -> int:
    """Add the customer's messages to the thread of support request ``request_id``.

    Returns how many were stored. Failures are logged, never raised: the
    messages stay in the conversation log either way.
    """
    from accounts.helpdesk_dispatch import append_message

    stored = 0
    for text in texts:
        try:
            append_message(_account_deps(), support_request_id=int(request_id),
                           author="customer", text=text)
            stored += 1
        except Exception:  # noqa: BLE001 - logged; the tracker keeps the message
            logger.exception("could not add a message to support request %s", request_id)
    return stored


def handoff_released(request_id: object) -> bool:
    """Whether an agent gave the conversation of support request ``request_id`` back to the assistant.

    One primary-key query on the account store. Database errors are logged and
    count as "not released" (the timeout still applies), so a down account
    store never breaks the conversation.
    """
    if request_id is None:
        return False
    from accounts.support_requests import is_released

    try:
        return is_released(_account_deps(), int(request_id))  # type: ignore[arg-type]
    except Exception:  # noqa: BLE001 - logged; the pause simply goes on
        logger.exception("could not check whether support request %s was released", request_id)
        return False
