"""Account-domain security controls of issue #12.

* ``step_up_grants``: ``conversation_id`` and ``params_sha256`` bind a grant
  to the conversation that proved the factor and to the operation's
  parameters; ``invite_member`` joins the operations that need step-up.
* ``channel_links.authenticators``: the factors that made a link
  (``email_code``, or ``email_code+totp`` for a member with TFA on).
* ``security_report_tokens``: the ``channel_linked`` notice's "this wasn't
  me: unlink" link, with the link it revokes (``channel_link_id``).
* ``source_failures``: wrong link codes counted per chat identity and
  globally, never on the account's own counters.
* ``verification_codes.proved_at``: a link code proved right for a member
  with TFA, waiting for the authenticator app's code.

Revision ID: 0007_security_domain
Revises: 0006_pending_proofs
Create Date: 2026-12-02

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from accounts.dbtypes import UTCDateTime

# revision identifiers, used by Alembic.
revision: str = "0007_security_domain"
down_revision: Union[str, Sequence[str], None] = "0006_pending_proofs"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

OLD_OPERATIONS = "operation IN ('close_account', 'change_currency', 'disable_member', 'switch_to_business')"
NEW_OPERATIONS = ("operation IN ('close_account', 'change_currency', 'disable_member', 'switch_to_business', "
                  "'invite_member')")


def upgrade() -> None:
    """Add the binding, strength and report columns and the per-source failure table."""
    with op.batch_alter_table("step_up_grants") as batch:
        batch.add_column(sa.Column("conversation_id", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("params_sha256", sa.String(length=64), nullable=True))
        batch.drop_constraint(op.f("ck_step_up_grants_operation"), type_="check")
        batch.create_check_constraint("operation", NEW_OPERATIONS)
    with op.batch_alter_table("channel_links") as batch:
        batch.add_column(sa.Column("authenticators", sa.String(length=32), server_default="email_code",
                                   nullable=False))
    with op.batch_alter_table("security_report_tokens") as batch:
        batch.add_column(sa.Column("channel_link_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(op.f("fk_security_report_tokens_channel_link_id_channel_links"),
                                 "channel_links", ["channel_link_id"], ["id"])
        batch.drop_constraint(op.f("ck_security_report_tokens_event"), type_="check")
        batch.create_check_constraint("event", "event IN ('tfa_reset', 'channel_linked')")
    with op.batch_alter_table("verification_codes") as batch:
        batch.add_column(sa.Column("proved_at", UTCDateTime(), nullable=True))
    op.create_table(
        "source_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=120), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_started_at", UTCDateTime(), nullable=True),
        sa.Column("last_failure_at", UTCDateTime(), nullable=True),
        sa.Column("next_allowed_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_source_failures")),
        sa.UniqueConstraint("source", name=op.f("uq_source_failures_source")),
    )
    # The global row exists from the start, so concurrent first failures never race to insert it.
    op.execute(sa.text("INSERT INTO source_failures (source, failures) VALUES ('channel_link:*', 0)"))


def downgrade() -> None:
    """Drop what :func:`upgrade` added."""
    op.drop_table("source_failures")
    with op.batch_alter_table("verification_codes") as batch:
        batch.drop_column("proved_at")
    with op.batch_alter_table("security_report_tokens") as batch:
        batch.drop_constraint(op.f("ck_security_report_tokens_event"), type_="check")
        batch.create_check_constraint("event", "event IN ('tfa_reset')")
        batch.drop_constraint(op.f("fk_security_report_tokens_channel_link_id_channel_links"), type_="foreignkey")
        batch.drop_column("channel_link_id")
    with op.batch_alter_table("channel_links") as batch:
        batch.drop_column("authenticators")
    with op.batch_alter_table("step_up_grants") as batch:
        batch.drop_constraint(op.f("ck_step_up_grants_operation"), type_="check")
        batch.create_check_constraint("operation", OLD_OPERATIONS)
        batch.drop_column("params_sha256")
        batch.drop_column("conversation_id")
