"""How a conversation's customer was verified: ``conversation_summary.verified_by``.

``portal token`` or ``<channel> link`` (a chat identity linked with an
e-mailed code), so the console treats link-verified customers as verified and
names the channel that linked them. Conversations already indexed with a
customer were verified by portal token (links were not indexed before); the
column is added only if missing, so a database made by ``create_all`` with it
is adopted too.

Revision ID: 0002_verified_by
Revises: 0001_tracker_and_console
Create Date: 2026-12-02

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002_verified_by"
down_revision: Union[str, Sequence[str], None] = "0001_tracker_and_console"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Add the column and mark the already indexed verified customers as portal-verified."""
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("conversation_summary")}
    if "verified_by" not in columns:
        op.add_column("conversation_summary", sa.Column("verified_by", sa.String(64), nullable=True))
    op.execute("UPDATE conversation_summary SET verified_by = 'portal token' "
               "WHERE customer_id IS NOT NULL AND verified_by IS NULL")


def downgrade() -> None:
    """Drop the column."""
    with op.batch_alter_table("conversation_summary") as batch:
        batch.drop_column("verified_by")
