"""Pending proofs of a lost-TFA recovery, shared by every action server.

Creates ``tfa_pending_proofs``: at step one of a recovery the typed recovery
code is checked against the stored hashes without being used up, and only a
reference is kept (conversation, account, member, the matching
``tfa_recovery_codes`` row or NULL, expiry, attempts, ``closed_at``). Step
two judges it with the e-mailed code in one transaction. No code, hash or
secret is stored. Replaces the action server's in-memory vault, so several
action servers behind a load balancer can each run either step.

Revision ID: 0006_pending_proofs
Revises: 0005_handoff_release
Create Date: 2024-07-08

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from accounts.dbtypes import UTCDateTime

# revision identifiers, used by Alembic.
revision: str = "0006_pending_proofs"
down_revision: Union[str, Sequence[str], None] = "0005_handoff_release"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Create the pending-proof table and its lookup index."""
    op.create_table(
        "tfa_pending_proofs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.String(length=255), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("recovery_code_id", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("closed_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"],
                                name=op.f("fk_tfa_pending_proofs_account_id_accounts")),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"],
                                name=op.f("fk_tfa_pending_proofs_member_id_members")),
        sa.ForeignKeyConstraint(["recovery_code_id"], ["tfa_recovery_codes.id"],
                                name=op.f("fk_tfa_pending_proofs_recovery_code_id_tfa_recovery_codes"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tfa_pending_proofs")),
    )
    op.create_index("ix_tfa_pending_proofs_conversation_id_member_id", "tfa_pending_proofs",
                    ["conversation_id", "member_id"])


def downgrade() -> None:
    """Drop the pending-proof table."""
    op.drop_index("ix_tfa_pending_proofs_conversation_id_member_id", table_name="tfa_pending_proofs")
    op.drop_table("tfa_pending_proofs")
