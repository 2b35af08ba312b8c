"""An agent gives a paused conversation back to the assistant.

Adds to ``support_requests`` ``released_at`` (when a person released the
conversation: through the helpdesk webhook or the console; NULL while the
bot stays paused until the timeout) and ``released_by`` (who: ``helpdesk``
or ``console:<reviewer>``; never a secret). Read by
:func:`supportbot.handoff_thread.handoff_released` by primary key, so no
index is needed.

Revision ID: 0005_handoff_release
Revises: 0004_helpdesk_delivery
Create Date: 2024-07-01

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from accounts.dbtypes import UTCDateTime

# revision identifiers, used by Alembic.
revision: str = "0005_handoff_release"
down_revision: Union[str, Sequence[str], None] = "0004_helpdesk_delivery"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Add the release columns."""
    with op.batch_alter_table("support_requests") as batch:
        batch.add_column(sa.Column("released_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("released_by", sa.String(length=100), nullable=True))


def downgrade() -> None:
    """Drop the release columns."""
    with op.batch_alter_table("support_requests") as batch:
        batch.drop_column("released_by")
        batch.drop_column("released_at")
