"""Helpers of the verification tests (step-up, channel links, TFA recovery): real rows, real codes."""

from __future__ import annotations

import itertools
import json
import logging
from datetime import datetime, timedelta
from typing import Any, Iterable, List, Optional, Sequence
from urllib.parse import parse_qs, urlsplit

import pyotp

from accounts.db import write_session
from accounts.models import (
    AuditEvent,
    IdempotencyRecord,
    OutboxNotification,
    SupportRequest,
    TfaEnrolment,
    TfaRecoveryCode,
)
from accounts.security import hash_secret
from tests.secret_scan import contains_secret

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
RECOVERY = ("AAAA-BBBB-CCCC-DDDD", "EEEE-FFFF-GGGG-HHHH", "JJJJ-KKKK-MMMM-NNNN")

_keys = itertools.count(1)


def key(prefix: str = "k") -> str:
    """A fresh idempotency key."""
    return f"{prefix}-{next(_keys)}"


def totp(secret: str, when: datetime, steps: int = 0) -> str:
    """The TOTP code of ``secret`` for the step ``steps`` away from ``when``."""
    return pyotp.TOTP(secret).at(when + timedelta(seconds=30 * steps))


def enable_tfa(world: Any, account_id: int, email: str = "owner@example.com", *,
               secret: str = SECRET, recovery: Sequence[str] = RECOVERY) -> int:
    """Give a member an enabled TFA enrolment with hashed recovery codes; return its id."""
    member = world.member(account_id, email)
    with write_session(world.session_factory) as s:
        enrolment = TfaEnrolment(member_id=member.id, secret=secret, enabled=True, created_at=world.clock())
        enrolment.recovery_codes = [TfaRecoveryCode(code_hash=hash_secret(c)) for c in recovery]
        s.add(enrolment)
        s.flush()
        return enrolment.id


def mails(world: Any, kind: Optional[str] = None, to: Optional[str] = None) -> List[OutboxNotification]:
    """Outbox rows, optionally of one kind and recipient."""
    rows = world.outbox(kind)
    return [r for r in rows if to is None or r.recipient_email == to]


def last_code(world: Any, purpose: Optional[str] = None) -> str:
    """The newest e-mailed one-time code (of a purpose)."""
    rows = [r for r in world.outbox("verification_code") if purpose is None or r.payload["purpose"] == purpose]
    return rows[-1].payload["secret_code"]


def token_of(link: str) -> str:
    """The ``token`` query parameter of an e-mailed link."""
    return parse_qs(urlsplit(link).query)["token"][0]


def assert_no_secret_stored_or_logged(world: Any, secrets: Iterable[str],
                                      records: Sequence[logging.LogRecord] = ()) -> None:
    """No secret in audit events, support requests, idempotency records or log records."""
    secrets = [s for s in secrets if s]
    assert secrets
    stored = json.dumps(
        [[a.actor, a.action, a.details] for a in world.all(AuditEvent)]
        + [[r.summary, r.context] for r in world.all(SupportRequest)]
        + [[r.key, r.request_hash, r.result] for r in world.all(IdempotencyRecord)],
        default=str,
    )
    logged = "\n".join(r.getMessage() + " " + repr(getattr(r, "args", "")) for r in records)
    for secret in secrets:
        variants = {secret, secret.replace("-", ""), secret.lower()}
        for v in variants:
            assert not contains_secret(stored, v), f"secret {v!r} stored"
            assert not contains_secret(logged, v), f"secret {v!r} logged"
