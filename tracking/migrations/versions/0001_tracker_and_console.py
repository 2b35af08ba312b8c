"""The conversation log, its review index and the console's tables, as ``create_all`` made them.

Creates what is missing and nothing else, so a database made by
``create_all`` before this history existed is adopted with every row kept:
Rasa's ``events``; the review index (``conversation_summary``,
``conversation_fact``, ``message_index``, with an FTS5 trigram table on SQLite
or a ``pg_trgm`` GIN index on PostgreSQL); the console's leads, sessions,
sign-in failures, reviews, tags, notes, activity and NLU labels. The tables
are written out here (not imported), so later changes to the models come as
later revisions.

Revision ID: 0001_tracker_and_console
Revises:
Create Date: 2026-12-02

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from tracking.schema import create_postgresql_trigram_index, create_sqlite_fts

# revision identifiers, used by Alembic.
revision: str = "0001_tracker_and_console"
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def _tables() -> sa.MetaData:
    m = sa.MetaData()
    sa.Table(
        "events", m,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("sender_id", sa.String(255), nullable=False, index=True),
        sa.Column("type_name", sa.String(255), nullable=False),
        sa.Column("timestamp", sa.Float),
        sa.Column("intent_name", sa.String(255)),
        sa.Column("action_name", sa.String(255)),
        sa.Column("data", sa.Text),
    )
    sa.Table(
        "conversation_summary", m,
        sa.Column("sender_id", sa.String(255), primary_key=True),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("started_day", sa.String(10), nullable=False),
        sa.Column("last_event_at", sa.Float, nullable=False),
        sa.Column("last_event_id", sa.Integer),
        sa.Column("event_count", sa.Integer, nullable=False),
        sa.Column("session_count", sa.Integer, nullable=False),
        sa.Column("user_message_count", sa.Integer, nullable=False),
        sa.Column("bot_message_count", sa.Integer, nullable=False),
        sa.Column("channel", sa.String(64)),
        sa.Column("customer_id", sa.String(255)),
        sa.Column("min_confidence", sa.Float),
        sa.Column("fallback_count", sa.Integer, nullable=False),
        sa.Column("handoff_count", sa.Integer, nullable=False),
        sa.Column("support_request_count", sa.Integer, nullable=False),
        sa.Column("failed_action_count", sa.Integer, nullable=False),
        sa.Column("operations_performed", sa.Integer, nullable=False),
        sa.Column("operations_refused", sa.Integer, nullable=False),
        sa.Column("first_user_text", sa.String(200)),
        sa.Column("pending_action", sa.String(255)),
        sa.Column("active_loop", sa.String(255)),
        sa.Index("ix_summary_last_event_at", "last_event_at"),
        sa.Index("ix_summary_started_at", "started_at"),
        sa.Index("ix_summary_started_day", "started_day"),
        sa.Index("ix_summary_channel", "channel", "last_event_at"),
        sa.Index("ix_summary_customer", "customer_id"),
        sa.Index("ix_summary_min_confidence", "min_confidence"),
    )
    sa.Table(
        "conversation_fact", m,
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("value", sa.String(255), primary_key=True),
        sa.Column("sender_id", sa.String(255), primary_key=True),
        sa.Index("ix_fact_sender", "sender_id"),
    )
    sa.Table(
        "message_index", m,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("event_id", sa.Integer, nullable=False, unique=True),
        sa.Column("sender_id", sa.String(255), nullable=False),
        sa.Column("timestamp", sa.Float, nullable=False),
        sa.Column("role", sa.String(8), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("intent", sa.String(255)),
        sa.Column("confidence", sa.Float),
        sa.Column("top_intent", sa.String(255)),
        sa.Column("is_payload", sa.Boolean, nullable=False),
        sa.Column("in_form", sa.Boolean, nullable=False),
        sa.Index("ix_message_sender", "sender_id", "id"),
        sa.Index("ix_message_timestamp", "timestamp"),
        sa.Index("ix_message_intent", "intent"),
    )
    sa.Table(
        "console_lead", m,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("email", sa.String(254), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False),
    )
    sa.Table(
        "console_session", m,
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("lead_id", sa.Integer, sa.ForeignKey("console_lead.id", ondelete="CASCADE"), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False, index=True),
    )
    sa.Table(
        "console_login_failure", m,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("bucket", sa.String(100), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Index("ix_login_failure_bucket", "bucket", "at"),
    )
    sa.Table(
        "conversation_review", m,
        sa.Column("sender_id", sa.String(255), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("updated_by", sa.Integer, sa.ForeignKey("console_lead.id"), nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Index("ix_review_status", "status"),
    )
    sa.Table(
        "conversation_tag", m,
        sa.Column("sender_id", sa.String(255), primary_key=True),
        sa.Column("tag", sa.String(32), primary_key=True),
        sa.Column("added_by", sa.Integer, sa.ForeignKey("console_lead.id"), nullable=False),
        sa.Column("added_at", sa.Float, nullable=False),
        sa.Index("ix_tag_tag", "tag", "sender_id"),
    )
    sa.Table(
        "conversation_note", m,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("sender_id", sa.String(255), nullable=False, index=True),
        sa.Column("lead_id", sa.Integer, sa.ForeignKey("console_lead.id"), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    sa.Table(
        "conversation_activity", m,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("sender_id", sa.String(255), nullable=False, index=True),
        sa.Column("lead_id", sa.Integer, sa.ForeignKey("console_lead.id"), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("detail", sa.String(500), nullable=False),
    )
    sa.Table(
        "nlu_review", m,
        sa.Column("event_id", sa.Integer, primary_key=True),
        sa.Column("sender_id", sa.String(255), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("predicted_intent", sa.String(255)),
        sa.Column("predicted_confidence", sa.Float),
        sa.Column("label", sa.String(255), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("lead_id", sa.Integer, sa.ForeignKey("console_lead.id"), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Index("ix_nlu_review_outcome", "outcome", "at"),
    )
    return m


def upgrade() -> None:
    """Create the missing tables, indexes and the search index."""
    conn = op.get_bind()
    _tables().create_all(conn, checkfirst=True)
    if conn.dialect.name == "sqlite":
        create_sqlite_fts(conn)
    elif conn.dialect.name == "postgresql":
        create_postgresql_trigram_index(conn)


def downgrade() -> None:
    """Drop every table of the tracker database (the conversation log with it)."""
    conn = op.get_bind()
    if conn.dialect.name == "sqlite":
        from tracking.schema import drop_sqlite_fts

        drop_sqlite_fts(conn)
    _tables().drop_all(conn, checkfirst=True)
