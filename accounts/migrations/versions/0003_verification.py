"""Verification: e-mailed one-time codes, failure counters, step-up grants,
channel links, TFA enrolment links and "this was not me" reports.

Adds the tables ``verification_codes``, ``verification_failures``,
``step_up_grants``, ``channel_links`` (with a partial unique index: one active
link per chat identity), ``tfa_enrollment_tokens`` (with the pending new TOTP
secret) and ``security_report_tokens``, and ``revoked_at`` on
``tfa_enrolments`` (``last_accepted_step`` is there since 0001).

Revision ID: 0003_verification
Revises: 0002_outbox_delivery
Create Date: 2024-06-12

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from accounts.dbtypes import UTCDateTime

# revision identifiers, used by Alembic.
revision: str = "0003_verification"
down_revision: Union[str, Sequence[str], None] = "0002_outbox_delivery"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

ACTIVE_LINK = "revoked_at IS NULL"


def upgrade() -> None:
    """Create the verification tables and add ``tfa_enrolments.revoked_at``."""
    with op.batch_alter_table("tfa_enrolments") as batch:
        batch.add_column(sa.Column("revoked_at", UTCDateTime(), nullable=True))

    op.create_table(
        "verification_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("operation", sa.String(length=64), nullable=True),
        sa.Column("channel", sa.String(length=32), nullable=True),
        sa.Column("channel_user_id", sa.String(length=200), nullable=True),
        sa.Column("recipient_email", sa.String(length=320), nullable=False),
        sa.Column("code_salt", sa.String(length=32), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint(
            "purpose IN ('channel_link', 'step_up', 'tfa_recovery')", name=op.f("ck_verification_codes_purpose")
        ),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_verification_codes_account_id_accounts")),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name=op.f("fk_verification_codes_member_id_members")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_verification_codes")),
    )
    op.create_index(
        "ix_verification_codes_account_id_purpose_created_at",
        "verification_codes",
        ["account_id", "purpose", "created_at"],
    )
    op.create_index(
        "ix_verification_codes_channel_channel_user_id", "verification_codes", ["channel", "channel_user_id"]
    )

    op.create_table(
        "verification_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("authenticator", sa.String(length=32), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", UTCDateTime(), nullable=True),
        sa.Column("next_allowed_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint(
            "authenticator IN ('totp', 'email_code', 'recovery_code', 'tfa_enrollment')",
            name=op.f("ck_verification_failures_authenticator"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_verification_failures_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_verification_failures")),
        sa.UniqueConstraint(
            "account_id", "authenticator", name=op.f("uq_verification_failures_account_id_authenticator")
        ),
    )

    op.create_table(
        "step_up_grants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("operation", sa.String(length=64), nullable=False),
        sa.Column("authenticator", sa.String(length=32), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("consumed_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint(
            "operation IN ('close_account', 'change_currency', 'disable_member', 'switch_to_business')",
            name=op.f("ck_step_up_grants_operation"),
        ),
        sa.CheckConstraint(
            "authenticator IN ('totp', 'email_code')", name=op.f("ck_step_up_grants_authenticator")
        ),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_step_up_grants_account_id_accounts")),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name=op.f("fk_step_up_grants_member_id_members")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_step_up_grants")),
    )
    op.create_index(
        "ix_step_up_grants_account_id_member_id_operation",
        "step_up_grants",
        ["account_id", "member_id", "operation"],
    )

    op.create_table(
        "channel_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("channel_user_id", sa.String(length=200), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("member_email", sa.String(length=320), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_channel_links_account_id_accounts")),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name=op.f("fk_channel_links_member_id_members")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channel_links")),
    )
    op.create_index(
        "ix_channel_links_active_channel_user",
        "channel_links",
        ["channel", "channel_user_id"],
        unique=True,
        postgresql_where=sa.text(ACTIVE_LINK),
        sqlite_where=sa.text(ACTIVE_LINK),
    )
    op.create_index("ix_channel_links_account_id", "channel_links", ["account_id"])

    op.create_table(
        "tfa_enrollment_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("pending_secret", sa.String(length=64), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_tfa_enrollment_tokens_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_tfa_enrollment_tokens_member_id_members")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tfa_enrollment_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_tfa_enrollment_tokens_token_hash")),
    )
    op.create_index(
        op.f("ix_tfa_enrollment_tokens_member_id"), "tfa_enrollment_tokens", ["member_id"], unique=False
    )

    op.create_table(
        "security_report_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("recipient_email", sa.String(length=320), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint("event IN ('tfa_reset')", name=op.f("ck_security_report_tokens_event")),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_security_report_tokens_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_security_report_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_security_report_tokens_token_hash")),
    )
    op.create_index("ix_security_report_tokens_account_id", "security_report_tokens", ["account_id"])


def downgrade() -> None:
    """Drop the verification tables and ``tfa_enrolments.revoked_at``."""
    op.drop_index("ix_security_report_tokens_account_id", table_name="security_report_tokens")
    op.drop_table("security_report_tokens")
    op.drop_index(op.f("ix_tfa_enrollment_tokens_member_id"), table_name="tfa_enrollment_tokens")
    op.drop_table("tfa_enrollment_tokens")
    op.drop_index("ix_channel_links_account_id", table_name="channel_links")
    op.drop_index("ix_channel_links_active_channel_user", table_name="channel_links")
    op.drop_table("channel_links")
    op.drop_index("ix_step_up_grants_account_id_member_id_operation", table_name="step_up_grants")
    op.drop_table("step_up_grants")
    op.drop_table("verification_failures")
    op.drop_index("ix_verification_codes_channel_channel_user_id", table_name="verification_codes")
    op.drop_index("ix_verification_codes_account_id_purpose_created_at", table_name="verification_codes")
    op.drop_table("verification_codes")
    with op.batch_alter_table("tfa_enrolments") as batch:
        batch.drop_column("revoked_at")
