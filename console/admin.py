"""Roles of the console and what admins do with leads, each step audited.

* A **lead** reviews conversations. An **admin** is a lead who may also manage
  leads: create them, disable and re-enable them, and reset their password.
* Admins manage leads (role ``lead``) only; admins are made from the command
  line (``python -m console create-lead EMAIL --admin``), so no web request can
  raise a role or lock the last admin out.
* Disabling a lead ends their open sessions at once; sign-in refuses them
  (``auth.load_session`` and sign-in already check ``disabled``). Resetting a
  password ends the lead's sessions too.
* Every change is appended to ``console_admin_audit`` in the same transaction:
  who (the admin, or the command line), what, whom, when.

Functions take a connection inside a write transaction and ``now`` (unix time).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from console import auth
from console.models import admin_audit, lead, session

LEAD = "lead"
ADMIN = "admin"
ROLES = (LEAD, ADMIN)

CREATE, DISABLE, ENABLE, RESET_PASSWORD = "create_lead", "disable_lead", "enable_lead", "reset_password"
ACTION_LABELS = {CREATE: "created", DISABLE: "disabled", ENABLE: "re-enabled", RESET_PASSWORD: "reset the password of"}
AUDIT_SHOWN = 200


class NotManageable(auth.LeadError):
    """The lead does not exist or is an admin (admins are managed from the command line)."""


@dataclass(frozen=True)
class Actor:
    """Who performs an admin action: an admin's lead id and e-mail, or the command line."""

    lead_id: Optional[int]
    name: str


def role_of(conn: Connection, lead_id: int) -> Optional[str]:
    """The role of an enabled lead, or None if unknown or disabled."""
    row = conn.execute(sa.select(lead.c.role, lead.c.disabled).where(lead.c.id == lead_id)).first()
    return None if row is None or row.disabled else row.role


def _audit(conn: Connection, actor: Actor, action: str, target_id: int, target_email: str, now: float) -> None:
    conn.execute(admin_audit.insert().values(at=now, actor_id=actor.lead_id, actor=actor.name[:300],
                                             action=action, target_id=target_id, target_email=target_email))


def create(conn: Connection, actor: Actor, email: str, password: str, *, now: float, role: str = LEAD) -> int:
    """Add a lead (or an admin) and audit it; returns the new id.

    Raises:
        auth.LeadError: Invalid e-mail, password or role, or the e-mail is taken.
    """
    if role not in ROLES:
        raise auth.LeadError(f"Unknown role {role!r}.")
    lead_id = auth.create_lead(conn, email, password, now=now)
    conn.execute(lead.update().where(lead.c.id == lead_id).values(role=role))
    _audit(conn, actor, CREATE, lead_id, auth.normalize_email(email), now)
    return lead_id


def _target(conn: Connection, email: str, *, admins_too: bool) -> Any:
    row = conn.execute(sa.select(lead).where(lead.c.email == auth.normalize_email(email))).first()
    if row is None:
        raise NotManageable(f"There is no lead {auth.normalize_email(email)}.")
    if row.role == ADMIN and not admins_too:
        raise NotManageable(f"{row.email} is an admin; admins are managed from the command line.")
    return row


def set_disabled(conn: Connection, actor: Actor, email: str, disabled: bool, *, now: float,
                 admins_too: bool = False) -> bool:
    """Disable (ending their sessions) or re-enable a lead; False if it already was so (nothing audited).

    Raises:
        NotManageable: No such lead, or an admin while ``admins_too`` is off (the web console).
    """
    row = _target(conn, email, admins_too=admins_too)
    if bool(row.disabled) == disabled:
        return False
    conn.execute(lead.update().where(lead.c.id == row.id).values(disabled=disabled))
    if disabled:
        conn.execute(session.delete().where(session.c.lead_id == row.id))
    _audit(conn, actor, DISABLE if disabled else ENABLE, row.id, row.email, now)
    return True


def reset_password(conn: Connection, actor: Actor, email: str, password: str, *, now: float,
                   admins_too: bool = False) -> None:
    """Give a lead a new password, end their sessions, and audit it.

    Raises:
        NotManageable: No such lead, or an admin while ``admins_too`` is off.
        auth.LeadError: The password is not acceptable.
    """
    row = _target(conn, email, admins_too=admins_too)
    auth.check_new_password(password)
    conn.execute(lead.update().where(lead.c.id == row.id).values(password_hash=auth.hash_password(password)))
    conn.execute(session.delete().where(session.c.lead_id == row.id))
    _audit(conn, actor, RESET_PASSWORD, row.id, row.email, now)


def list_leads(conn: Connection) -> List[Dict[str, Any]]:
    """Every lead and admin (e-mail, role, disabled, created_at), admins first."""
    rows = conn.execute(sa.select(lead.c.id, lead.c.email, lead.c.role, lead.c.disabled, lead.c.created_at)
                        .order_by(lead.c.role, lead.c.email))
    return [dict(r._mapping) for r in rows]


def audit_log(conn: Connection, limit: int = AUDIT_SHOWN) -> List[Dict[str, Any]]:
    """The newest admin actions first (at, actor, action, target_email)."""
    a = admin_audit
    rows = conn.execute(sa.select(a.c.at, a.c.actor, a.c.action, a.c.target_email)
                        .order_by(a.c.at.desc(), a.c.id.desc()).limit(limit))
    return [dict(r._mapping) for r in rows]
