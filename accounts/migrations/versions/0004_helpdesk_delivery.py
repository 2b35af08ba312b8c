"""Delivery of support requests to the helpdesk, and the conversation thread.

Adds to ``support_requests`` the delivery state read by
:mod:`accounts.helpdesk_dispatch`: ``delivery_status`` (pending, delivered,
failed; existing rows start ``pending`` so they are delivered too),
``attempts``, ``next_attempt_at``, ``last_error`` (never a secret),
``delivered_at``, ``helpdesk_ticket_id``, ``helpdesk_url`` and a partial index
on the pending rows. Creates ``support_request_messages``: the messages that
continue a handed-over conversation (customer, agent, assistant), each
delivered to the ticket as a comment with the same retry rules.

Revision ID: 0004_helpdesk_delivery
Revises: 0003_verification
Create Date: 2024-06-24

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from accounts.dbtypes import UTCDateTime

# revision identifiers, used by Alembic.
revision: str = "0004_helpdesk_delivery"
down_revision: Union[str, Sequence[str], None] = "0003_verification"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

DELIVERY_PENDING = "delivery_status = 'pending'"
MESSAGE_PENDING = "delivered_at IS NULL AND failed_at IS NULL"


def upgrade() -> None:
    """Add the delivery columns, their index and the message table."""
    with op.batch_alter_table("support_requests") as batch:
        batch.add_column(sa.Column("delivery_status", sa.String(length=16), server_default="pending", nullable=False))
        batch.add_column(sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(sa.Column("next_attempt_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("last_error", sa.String(length=500), nullable=True))
        batch.add_column(sa.Column("delivered_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("helpdesk_ticket_id", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("helpdesk_url", sa.String(length=500), nullable=True))
        batch.create_check_constraint(
            "delivery_status", "delivery_status IN ('pending', 'delivered', 'failed')"
        )
    op.create_index(
        "ix_support_requests_delivery_due",
        "support_requests",
        ["id", "next_attempt_at"],
        postgresql_where=sa.text(DELIVERY_PENDING),
        sqlite_where=sa.text(DELIVERY_PENDING),
    )
    op.create_table(
        "support_request_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("support_request_id", sa.Integer(), nullable=False),
        sa.Column("author", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("delivered_at", UTCDateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("failed_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint(
            "author IN ('customer', 'agent', 'assistant')", name=op.f("ck_support_request_messages_author")
        ),
        sa.ForeignKeyConstraint(
            ["support_request_id"], ["support_requests.id"],
            name=op.f("fk_support_request_messages_support_request_id_support_requests"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_support_request_messages")),
    )
    op.create_index(
        "ix_support_request_messages_support_request_id_id",
        "support_request_messages",
        ["support_request_id", "id"],
    )
    op.create_index(
        "ix_support_request_messages_pending",
        "support_request_messages",
        ["id", "next_attempt_at"],
        postgresql_where=sa.text(MESSAGE_PENDING),
        sqlite_where=sa.text(MESSAGE_PENDING),
    )


def downgrade() -> None:
    """Drop the message table, the index and the delivery columns."""
    op.drop_index("ix_support_request_messages_pending", table_name="support_request_messages")
    op.drop_index("ix_support_request_messages_support_request_id_id", table_name="support_request_messages")
    op.drop_table("support_request_messages")
    op.drop_index("ix_support_requests_delivery_due", table_name="support_requests")
    with op.batch_alter_table("support_requests") as batch:
        batch.drop_constraint(op.f("ck_support_requests_delivery_status"), type_="check")
        batch.drop_column("helpdesk_url")
        batch.drop_column("helpdesk_ticket_id")
        batch.drop_column("delivered_at")
        batch.drop_column("last_error")
        batch.drop_column("next_attempt_at")
        batch.drop_column("attempts")
        batch.drop_column("delivery_status")
