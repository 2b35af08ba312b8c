"""Delivery state of outbox notifications: attempts, retry schedule, errors, failure.

Adds ``attempts`` (NOT NULL, default 0), ``next_attempt_at``, ``last_error`` and
``failed_at`` to ``outbox_notifications`` and a partial index on the rows the
dispatcher looks at (neither sent nor failed), ordered by id.

Revision ID: 0002_outbox_delivery
Revises: 0001
Create Date: 2024-06-10

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from accounts.dbtypes import UTCDateTime

# revision identifiers, used by Alembic.
revision: str = "0002_outbox_delivery"
down_revision: Union[str, Sequence[str], None] = "0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

PENDING = "sent_at IS NULL AND failed_at IS NULL"


def upgrade() -> None:
    """Add the delivery columns and the dispatcher's index."""
    with op.batch_alter_table("outbox_notifications") as batch:
        batch.add_column(sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(sa.Column("next_attempt_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("last_error", sa.String(length=500), nullable=True))
        batch.add_column(sa.Column("failed_at", UTCDateTime(), nullable=True))
    op.create_index(
        "ix_outbox_notifications_pending",
        "outbox_notifications",
        ["id", "next_attempt_at"],
        postgresql_where=sa.text(PENDING),
        sqlite_where=sa.text(PENDING),
    )


def downgrade() -> None:
    """Drop the dispatcher's index and the delivery columns."""
    op.drop_index("ix_outbox_notifications_pending", table_name="outbox_notifications")
    with op.batch_alter_table("outbox_notifications") as batch:
        batch.drop_column("failed_at")
        batch.drop_column("last_error")
        batch.drop_column("next_attempt_at")
        batch.drop_column("attempts")
