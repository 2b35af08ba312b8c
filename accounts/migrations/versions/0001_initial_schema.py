"""Initial schema of the accounts database: every table, index and constraint.

Revision ID: 0001
Revises:
Create Date: 2024-06-01

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from accounts.dbtypes import JSONType, Money, UTCDateTime

# revision identifiers, used by Alembic.
revision: str = '0001'
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Create all tables."""
    op.create_table('accounts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('primary_email', sa.String(length=320), nullable=False),
    sa.Column('company_name', sa.String(length=200), nullable=True),
    sa.Column('registration_number', sa.String(length=64), nullable=True),
    sa.Column('vat_id', sa.String(length=32), nullable=True),
    sa.Column('company_address', sa.String(length=500), nullable=True),
    sa.Column('payment_method', sa.String(length=16), nullable=False),
    sa.Column('balance', Money(), nullable=False),
    sa.Column('closing_requested_at', UTCDateTime(), nullable=True),
    sa.Column('grace_period_ends_at', UTCDateTime(), nullable=True),
    sa.Column('closed_at', UTCDateTime(), nullable=True),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.CheckConstraint("kind IN ('personal', 'business')", name=op.f('ck_accounts_kind')),
    sa.CheckConstraint("payment_method IN ('card', 'wire_transfer')", name=op.f('ck_accounts_payment_method')),
    sa.CheckConstraint("status IN ('active', 'closing', 'closed')", name=op.f('ck_accounts_status')),
    sa.CheckConstraint('length(currency) = 3', name=op.f('ck_accounts_currency_code')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_accounts')),
    sa.UniqueConstraint('primary_email', name=op.f('uq_accounts_primary_email'))
    )
    op.create_index('ix_accounts_status_grace_period_ends_at', 'accounts', ['status', 'grace_period_ends_at'])

    op.create_table('idempotency_records',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('operation', sa.String(length=64), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('result', JSONType, nullable=True),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_idempotency_records')),
    sa.UniqueConstraint('key', name=op.f('uq_idempotency_records_key'))
    )
    op.create_table('password_reset_attempts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email_hash', sa.String(length=64), nullable=False),
    sa.Column('requested_at', UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_password_reset_attempts'))
    )
    op.create_index('ix_password_reset_attempts_email_hash_requested_at', 'password_reset_attempts', ['email_hash', 'requested_at'])

    op.create_table('audit_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=True),
    sa.Column('actor', sa.String(length=400), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('details', JSONType, nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=True),
    sa.Column('at', UTCDateTime(), nullable=False),
    sa.CheckConstraint("outcome IN ('succeeded', 'refused')", name=op.f('ck_audit_events_outcome')),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_audit_events_account_id_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events'))
    )
    op.create_index('ix_audit_events_account_id_at', 'audit_events', ['account_id', 'at'])
    op.create_index('ix_audit_events_action', 'audit_events', ['action'])

    op.create_table('invoices',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=64), nullable=False),
    sa.Column('amount', Money(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('issued_at', UTCDateTime(), nullable=False),
    sa.Column('due_date', sa.Date(), nullable=False),
    sa.Column('paid_at', UTCDateTime(), nullable=True),
    sa.CheckConstraint("status IN ('paid', 'unpaid')", name=op.f('ck_invoices_status')),
    sa.CheckConstraint('length(currency) = 3', name=op.f('ck_invoices_currency_code')),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_invoices_account_id_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_invoices')),
    sa.UniqueConstraint('number', name=op.f('uq_invoices_number'))
    )
    op.create_index('ix_invoices_account_id_status', 'invoices', ['account_id', 'status'])

    op.create_table('members',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('invited_at', UTCDateTime(), nullable=True),
    sa.Column('invited_by_member_id', sa.Integer(), nullable=True),
    sa.Column('joined_at', UTCDateTime(), nullable=True),
    sa.Column('disabled_at', UTCDateTime(), nullable=True),
    sa.Column('password_hash', sa.String(length=255), nullable=True),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.CheckConstraint("role IN ('owner', 'admin', 'member')", name=op.f('ck_members_role')),
    sa.CheckConstraint("status IN ('invited', 'active', 'disabled')", name=op.f('ck_members_status')),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_members_account_id_accounts')),
    sa.ForeignKeyConstraint(['invited_by_member_id'], ['members.id'], name=op.f('fk_members_invited_by_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_members')),
    sa.UniqueConstraint('account_id', 'email', name=op.f('uq_members_account_id_email'))
    )
    op.create_index('ix_members_account_id_role_status', 'members', ['account_id', 'role', 'status'])
    op.create_index('ix_members_email', 'members', ['email'])

    op.create_table('outbox_notifications',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=True),
    sa.Column('recipient_email', sa.String(length=320), nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('payload', JSONType, nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('sent_at', UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_outbox_notifications_account_id_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox_notifications'))
    )
    op.create_index('ix_outbox_notifications_account_id', 'outbox_notifications', ['account_id'])
    op.create_index('ix_outbox_notifications_sent_at_id', 'outbox_notifications', ['sent_at', 'id'])

    op.create_table('services',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('cancelled_at', UTCDateTime(), nullable=True),
    sa.CheckConstraint("status IN ('active', 'cancelled')", name=op.f('ck_services_status')),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_services_account_id_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_services'))
    )
    op.create_index('ix_services_account_id_status', 'services', ['account_id', 'status'])

    op.create_table('support_requests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=True),
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('reason', sa.String(length=64), nullable=False),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('context', JSONType, nullable=False),
    sa.Column('contact_email', sa.String(length=320), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.CheckConstraint("status IN ('open', 'in_progress', 'resolved')", name=op.f('ck_support_requests_status')),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_support_requests_account_id_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_support_requests'))
    )
    op.create_index('ix_support_requests_account_id', 'support_requests', ['account_id'])
    op.create_index('ix_support_requests_status_created_at', 'support_requests', ['status', 'created_at'])

    op.create_table('invitations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('invited_by_member_id', sa.Integer(), nullable=True),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('expires_at', UTCDateTime(), nullable=False),
    sa.Column('accepted_at', UTCDateTime(), nullable=True),
    sa.Column('revoked_at', UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_invitations_account_id_accounts')),
    sa.ForeignKeyConstraint(['invited_by_member_id'], ['members.id'], name=op.f('fk_invitations_invited_by_member_id_members')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_invitations_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_invitations')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_invitations_token_hash'))
    )
    op.create_index(op.f('ix_invitations_account_id'), 'invitations', ['account_id'])
    op.create_index('ix_invitations_member_id', 'invitations', ['member_id'])

    op.create_table('password_reset_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('expires_at', UTCDateTime(), nullable=False),
    sa.Column('used_at', UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_password_reset_tokens_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_password_reset_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_password_reset_tokens_token_hash'))
    )
    op.create_index(op.f('ix_password_reset_tokens_member_id'), 'password_reset_tokens', ['member_id'])

    op.create_table('payments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('invoice_id', sa.Integer(), nullable=True),
    sa.Column('amount', Money(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('paid_at', UTCDateTime(), nullable=False),
    sa.CheckConstraint('length(currency) = 3', name=op.f('ck_payments_currency_code')),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_payments_account_id_accounts')),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoices.id'], name=op.f('fk_payments_invoice_id_invoices')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payments'))
    )
    op.create_index(op.f('ix_payments_account_id'), 'payments', ['account_id'])

    op.create_table('tfa_enrolments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('secret', sa.String(length=64), nullable=False),
    sa.Column('last_accepted_step', sa.BigInteger(), nullable=True),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_tfa_enrolments_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tfa_enrolments')),
    sa.UniqueConstraint('member_id', name=op.f('uq_tfa_enrolments_member_id'))
    )
    op.create_table('tfa_recovery_codes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('enrolment_id', sa.Integer(), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('used_at', UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['enrolment_id'], ['tfa_enrolments.id'], name=op.f('fk_tfa_recovery_codes_enrolment_id_tfa_enrolments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tfa_recovery_codes')),
    sa.UniqueConstraint('enrolment_id', 'code_hash', name=op.f('uq_tfa_recovery_codes_enrolment_id_code_hash'))
    )


def downgrade() -> None:
    """Drop all tables."""
    op.drop_table('tfa_recovery_codes')
    op.drop_table('tfa_enrolments')
    op.drop_index(op.f('ix_payments_account_id'), table_name='payments')

    op.drop_table('payments')
    op.drop_index(op.f('ix_password_reset_tokens_member_id'), table_name='password_reset_tokens')

    op.drop_table('password_reset_tokens')
    op.drop_index('ix_invitations_member_id', table_name='invitations')
    op.drop_index(op.f('ix_invitations_account_id'), table_name='invitations')

    op.drop_table('invitations')
    op.drop_index('ix_support_requests_status_created_at', table_name='support_requests')
    op.drop_index('ix_support_requests_account_id', table_name='support_requests')

    op.drop_table('support_requests')
    op.drop_index('ix_services_account_id_status', table_name='services')

    op.drop_table('services')
    op.drop_index('ix_outbox_notifications_sent_at_id', table_name='outbox_notifications')
    op.drop_index('ix_outbox_notifications_account_id', table_name='outbox_notifications')

    op.drop_table('outbox_notifications')
    op.drop_index('ix_members_email', table_name='members')
    op.drop_index('ix_members_account_id_role_status', table_name='members')

    op.drop_table('members')
    op.drop_index('ix_invoices_account_id_status', table_name='invoices')

    op.drop_table('invoices')
    op.drop_index('ix_audit_events_action', table_name='audit_events')
    op.drop_index('ix_audit_events_account_id_at', table_name='audit_events')

    op.drop_table('audit_events')
    op.drop_index('ix_password_reset_attempts_email_hash_requested_at', table_name='password_reset_attempts')

    op.drop_table('password_reset_attempts')
    op.drop_table('idempotency_records')
    op.drop_index('ix_accounts_status_grace_period_ends_at', table_name='accounts')

    op.drop_table('accounts')
