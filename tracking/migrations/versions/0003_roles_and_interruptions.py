"""Lead roles, the admins' audit trail and form interruptions counted apart from failures.

* ``console_lead.role``: ``lead`` (reviews) or ``admin`` (also manages leads);
  every existing lead becomes a ``lead`` (an operator makes the first admin
  with ``python -m console create-lead EMAIL --admin``);
* ``console_admin_audit``: who changed which lead, how and when;
* ``conversation_summary.form_interruption_count``: Rasa's
  ``action_execution_rejected`` (a form that did not take a message) is a
  neutral event, no longer a failed action. ``python -m tracking
  rebuild-index`` re-labels conversations indexed before.

Each step runs only if the column or table is missing, so a database made by
``create_all`` with them is adopted too.

Revision ID: 0003_roles_and_interruptions
Revises: 0002_verified_by
Create Date: 2026-12-02

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0003_roles_and_interruptions"
down_revision: Union[str, Sequence[str], None] = "0002_verified_by"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def _columns(table: str) -> set:
    return {c["name"] for c in sa.inspect(op.get_bind()).get_columns(table)}


def upgrade() -> None:
    """Add the two columns and the audit table where missing."""
    if "form_interruption_count" not in _columns("conversation_summary"):
        op.add_column("conversation_summary", sa.Column(
            "form_interruption_count", sa.Integer, nullable=False, server_default="0"))
    if "role" not in _columns("console_lead"):
        op.add_column("console_lead", sa.Column("role", sa.String(16), nullable=False, server_default="lead"))
    if not sa.inspect(op.get_bind()).has_table("console_admin_audit"):
        op.create_table(
            "console_admin_audit",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("at", sa.Float, nullable=False),
            sa.Column("actor_id", sa.Integer, sa.ForeignKey("console_lead.id")),
            sa.Column("actor", sa.String(300), nullable=False),
            sa.Column("action", sa.String(32), nullable=False),
            sa.Column("target_id", sa.Integer, sa.ForeignKey("console_lead.id")),
            sa.Column("target_email", sa.String(254), nullable=False),
        )
        op.create_index("ix_console_admin_audit_at", "console_admin_audit", ["at"])


def downgrade() -> None:
    """Drop the audit table and the two columns."""
    op.drop_table("console_admin_audit")
    with op.batch_alter_table("console_lead") as batch:
        batch.drop_column("role")
    with op.batch_alter_table("conversation_summary") as batch:
        batch.drop_column("form_interruption_count")
