"""Tables the console owns, created beside the tracker store's tables.

Times are unix timestamps (UTC), like Rasa's events. Review records name the
lead who made them (``*_by`` / ``lead_id``) and when (``*_at``); every change
to a conversation's review is also appended to ``conversation_activity``, and
every admin action on a lead to ``console_admin_audit``.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

lead = sa.Table(
    "console_lead",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("email", sa.String(254), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False, default=False),
    # "lead" reviews conversations; "admin" also manages leads (console/admin.py).
    sa.Column("role", sa.String(16), nullable=False, default="lead", server_default="lead"),
)


session = sa.Table(
    "console_session",
    metadata,
    # SHA-256 of the cookie's token: a copy of the database holds no usable session.
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("lead_id", sa.Integer, sa.ForeignKey("console_lead.id", ondelete="CASCADE"), nullable=False),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False, index=True),
)

login_failure = sa.Table(
    "console_login_failure",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    # "account:<sha256 of the e-mail>" or "address:<client address>"
    sa.Column("bucket", sa.String(100), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Index("ix_login_failure_bucket", "bucket", "at"),
)

review = sa.Table(
    "conversation_review",
    metadata,
    sa.Column("sender_id", sa.String(255), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("updated_by", sa.Integer, sa.ForeignKey("console_lead.id"), nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Index("ix_review_status", "status"),
)

tag = sa.Table(
    "conversation_tag",
    metadata,
    sa.Column("sender_id", sa.String(255), primary_key=True),
    sa.Column("tag", sa.String(32), primary_key=True),
    sa.Column("added_by", sa.Integer, sa.ForeignKey("console_lead.id"), nullable=False),
    sa.Column("added_at", sa.Float, nullable=False),
    sa.Index("ix_tag_tag", "tag", "sender_id"),
)

note = sa.Table(
    "conversation_note",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("sender_id", sa.String(255), nullable=False, index=True),
    sa.Column("lead_id", sa.Integer, sa.ForeignKey("console_lead.id"), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

activity = sa.Table(
    "conversation_activity",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("sender_id", sa.String(255), nullable=False, index=True),
    sa.Column("lead_id", sa.Integer, sa.ForeignKey("console_lead.id"), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("detail", sa.String(500), nullable=False, default=""),
)

nlu_review = sa.Table(
    "nlu_review",
    metadata,
    # events.id of the user message (stable across index rebuilds).
    sa.Column("event_id", sa.Integer, primary_key=True),
    sa.Column("sender_id", sa.String(255), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("predicted_intent", sa.String(255)),
    sa.Column("predicted_confidence", sa.Float),
    sa.Column("label", sa.String(255), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),  # "confirmed" or "corrected"
    sa.Column("lead_id", sa.Integer, sa.ForeignKey("console_lead.id"), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Index("ix_nlu_review_outcome", "outcome", "at"),
)

#: The console's tables keyed by conversation: removed with the conversation (retention, erasure).
CONVERSATION_TABLES = (review, tag, note, activity, nlu_review)
admin_audit = sa.Table(
    "console_admin_audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("at", sa.Float, nullable=False, index=True),
    # Who: the admin's lead id (None from the command line) and a readable name kept as it was.
    sa.Column("actor_id", sa.Integer, sa.ForeignKey("console_lead.id")),
    sa.Column("actor", sa.String(300), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),  # create_lead, disable_lead, enable_lead, reset_password
    # Whom: the lead acted on, and their e-mail as it was.
    sa.Column("target_id", sa.Integer, sa.ForeignKey("console_lead.id")),
    sa.Column("target_email", sa.String(254), nullable=False),
)
