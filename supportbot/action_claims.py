"""Identity claims Rasa passes to the action server, signed so the action server can trust them.

The action server takes who is chatting from the latest customer message's
metadata (``verified_identity`` from a portal token, ``channel_user`` from a
chat platform) and its ``input_channel`` and sender id (actions/identity.py).
Whoever can reach the action server's port could send a made-up tracker, so
those claims carry an HMAC-SHA256 under ``ACTION_CLAIMS_KEY``, a key only the
Rasa processes and the action servers have:

* the Rasa process (:func:`install`, run by our launcher
  ``python -m supportbot.log_redaction rasa ...``) signs the latest user event
  of every action call it sends (:func:`sign_action_call`) over the sender id,
  the message id, the input channel, both claims and the signing time;
* the action server (:func:`verified_user_event`) accepts the claims only if
  the signature is right and at most :data:`MAX_AGE` old; otherwise the
  message counts as anonymous, so altered or unsigned claims identify nobody.

Only the signature is added to the request; the stored conversation is not
changed. ``make run`` creates a development key in ``var/`` when
``ACTION_CLAIMS_KEY`` is not set (:func:`ensure_key`); production sets it on
the Rasa and action server containers only.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import threading
from typing import Any, Callable, Dict, Mapping, Optional

from supportbot.portal_token import development_secret
from supportbot.settings import PROJECT_ROOT

logger = logging.getLogger(__name__)

ENV_KEY = "ACTION_CLAIMS_KEY"
#: Where ``make run`` keeps the development key (git-ignored, owner-only).
DEV_KEY_FILE = PROJECT_ROOT / "var" / "dev_action_claims_key"
MIN_KEY_BYTES = 32
#: Metadata key of the signature on the latest user event of an action call.
SIGNATURE_KEY = "identity_signature"
#: The metadata keys whose values are identity claims.
CLAIM_KEYS = ("verified_identity", "channel_user")
#: How old a signature may be when the action server reads it (an action call takes seconds).
MAX_AGE = dt.timedelta(minutes=5)
#: How far in the future a signature may be (clocks of two machines).
CLOCK_SKEW = dt.timedelta(seconds=30)

Clock = Callable[[], dt.datetime]
_lock = threading.Lock()
_installed = False


def utc_now() -> dt.datetime:
    """The current time, timezone-aware UTC."""
    return dt.datetime.now(dt.timezone.utc)


class MissingClaimsKey(Exception):
    """``ACTION_CLAIMS_KEY`` is not set or too short. The message says what to do."""


def key_from_env(environ: Optional[Mapping[str, str]] = None) -> bytes:
    """``ACTION_CLAIMS_KEY`` as bytes; raises :class:`MissingClaimsKey` if unset or shorter than 32 bytes."""
    env = os.environ if environ is None else environ
    key = (env.get(ENV_KEY) or "").strip().encode()
    if len(key) < MIN_KEY_BYTES:
        raise MissingClaimsKey(f"{ENV_KEY} must be set to a secret of at least {MIN_KEY_BYTES} bytes, "
                               "the same for the Rasa processes and the action servers")
    return key


def ensure_key() -> None:
    """Give a local run a claims key when none is configured (a development key in ``var/``)."""
    if os.environ.get(ENV_KEY):
        return
    os.environ[ENV_KEY] = development_secret(DEV_KEY_FILE, create=True) or ""
    logger.warning("%s not set: using the development key in %s", ENV_KEY, DEV_KEY_FILE)


def _signed_content(sender_id: Any, event: Mapping[str, Any], signed_at: int) -> bytes:
    metadata = event.get("metadata") or {}
    content = {
        "sender_id": sender_id, "message_id": event.get("message_id"),
        "input_channel": event.get("input_channel"), "signed_at": signed_at,
        **{name: metadata.get(name) if isinstance(metadata, Mapping) else None for name in CLAIM_KEYS},
    }
    return json.dumps(content, sort_keys=True, separators=(",", ":"), default=str).encode()


def _mac(key: bytes, content: bytes) -> str:
    return hmac.new(key, content, hashlib.sha256).hexdigest()


def _latest_user_event(events: Any) -> Optional[Dict[str, Any]]:
    for event in reversed(events if isinstance(events, list) else []):
        if isinstance(event, dict) and event.get("event") == "user":
            return event
    return None


def sign_action_call(body: Dict[str, Any], key: bytes, now: Optional[dt.datetime] = None) -> None:
    """Sign the claims of the latest user event in an action call's JSON ``body`` (in place).

    The event's ``metadata`` is replaced by a copy with :data:`SIGNATURE_KEY`
    added, so a metadata dict shared with the stored event is not changed.
    """
    tracker = body.get("tracker") or {}
    event = _latest_user_event(tracker.get("events"))
    if event is None:
        return
    signed_at = int((now or utc_now()).timestamp())
    mac = _mac(key, _signed_content(tracker.get("sender_id", body.get("sender_id")), event, signed_at))
    event["metadata"] = dict(event.get("metadata") or {}, **{SIGNATURE_KEY: {"signed_at": signed_at, "hmac": mac}})


def verified_user_event(sender_id: Any, events: Any, key: bytes,
                        now: Optional[dt.datetime] = None) -> Optional[Dict[str, Any]]:
    """The latest user event if its claims are signed with ``key`` and fresh; else None.

    Args:
        sender_id: The conversation the action server was called for.
        events: The tracker's events as the action server received them.
        key: ``ACTION_CLAIMS_KEY``.
        now: The current time (injected in tests).
    """
    event = _latest_user_event(events)
    if event is None:
        return None
    metadata = event.get("metadata") or {}
    signature = metadata.get(SIGNATURE_KEY) if isinstance(metadata, Mapping) else None
    if not isinstance(signature, Mapping):
        return None
    signed_at, mac = signature.get("signed_at"), signature.get("hmac")
    if not isinstance(signed_at, int) or not isinstance(mac, str):
        return None
    expected = _mac(key, _signed_content(sender_id, event, signed_at))
    if not hmac.compare_digest(expected, mac):
        return None
    current = (now or utc_now()).timestamp()
    if not -CLOCK_SKEW.total_seconds() <= current - signed_at <= MAX_AGE.total_seconds():
        return None
    return event


def install() -> None:
    """Sign the claims of every action call this Rasa process sends (idempotent).

    Without ``ACTION_CLAIMS_KEY`` the calls go unsigned (the action server then
    identifies nobody) and an error says why.
    """
    global _installed
    with _lock:
        if _installed:
            return
        try:
            key = key_from_env()
        except MissingClaimsKey as error:
            logger.error("%s: customers will not be identified by the action server.", error)
            _installed = True
            return
        from rasa.core.actions.action import RemoteAction

        unsigned_call_format = RemoteAction._action_call_format

        def _action_call_format(self: RemoteAction, tracker: Any, domain: Any) -> Dict[str, Any]:
            """Rasa's action call body, the latest user event's claims signed."""
            body = unsigned_call_format(self, tracker, domain)
            sign_action_call(body, key)
            return body

        RemoteAction._action_call_format = _action_call_format  # type: ignore[method-assign]
        _installed = True
