"""Scheduled jobs: a lease per job and a record per run.

Creates ``job_leases`` (one row per periodic job: who holds it, until when,
when it last started and finished) and ``job_runs`` (one row per run with its
outcome and counts), used by :mod:`accounts.jobs` so that two schedulers never
run one job at the same time and every run is on record.

Revision ID: 0008_scheduled_jobs
Revises: 0007_security_domain
Create Date: 2026-12-02

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from accounts.dbtypes import JSONType, UTCDateTime

# revision identifiers, used by Alembic.
revision: str = "0008_scheduled_jobs"
down_revision: Union[str, Sequence[str], None] = "0007_security_domain"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Create the lease and run tables."""
    op.create_table(
        "job_leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=True),
        sa.Column("leased_until", UTCDateTime(), nullable=True),
        sa.Column("last_started_at", UTCDateTime(), nullable=True),
        sa.Column("last_finished_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_job_leases")),
    )
    op.create_table(
        "job_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("details", JSONType, nullable=False),
        sa.CheckConstraint("outcome IN ('succeeded', 'failed')", name=op.f("ck_job_runs_outcome")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_runs")),
    )
    op.create_index("ix_job_runs_name_started_at", "job_runs", ["name", "started_at"])


def downgrade() -> None:
    """Drop the lease and run tables."""
    op.drop_index("ix_job_runs_name_started_at", table_name="job_runs")
    op.drop_table("job_runs")
    op.drop_table("job_leases")
