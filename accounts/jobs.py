"""Periodic jobs: the account domain's clean-ups and the lease that runs each job once.

Rules:

* A :class:`Job` is a name, how often it is due, and a function of the run's
  time that returns counts of what it did (``{"closed": 1}``). Jobs never read
  the wall clock: :class:`Scheduler` reads its injected clock once per job.
* One scheduler per deployment is the plan, two are safe: a job runs only
  under its lease (:class:`~accounts.models.JobLease`, the row locked while
  it is taken), only when it is due (``every`` after it last finished) and
  only when nobody holds the lease; a scheduler that dies holding it loses it
  when ``leased_until`` passes (:data:`LEASE_SECONDS`).
* Every run is recorded in ``job_runs`` (outcome and counts, never personal
  data) and logged; a run that changed something is also an audit event of
  ``system:scheduler``. A failing job is logged with its traceback, recorded
  as ``failed``, and due again at the next tick: it never stops the others.

The account domain's jobs (:func:`account_jobs`): closures whose grace period
ended are finalised (:func:`accounts.closing.finalize_due_closures`), expired
lost-TFA pending proofs and expired chat-link codes (which name the chat user)
are deleted a day after they expired.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable, Dict, List, Mapping, Optional

import sqlalchemy as sa
from sqlalchemy.orm import Session

from accounts.closing import finalize_due_closures
from accounts.db import write_session
from accounts.deps import Clock, Deps
from accounts.dispatch import purge_old_notifications
from accounts.models import AuditEvent, JobLease, JobRun, TfaPendingProof, VerificationCode
from accounts.results import ClosuresFinalized

logger = logging.getLogger(__name__)

#: Audit actor of everything the scheduler does.
SCHEDULER_ACTOR = "system:scheduler"

#: How long a taken lease lasts: a job must finish within it (a dead scheduler's lease frees itself then).
LEASE_SECONDS = 15 * 60

#: Expired codes and proofs are kept this long after expiry, so a late answer still hears "expired".
EXPIRED_KEPT = timedelta(days=1)

#: A job's work: given the run's time, do it and return counts of what was done.
JobWork = Callable[[datetime], Mapping[str, int]]


@dataclass(frozen=True)
class Job:
    """A periodic job.

    Attributes:
        name: Unique name (lease key, audit action ``job:<name>``), at most 64 characters.
        every: How long after its last finished run the job is due again.
        work: Does the job at the given time; returns counts (an exception means it failed).
    """

    name: str
    every: timedelta
    work: JobWork


@dataclass(frozen=True)
class JobReport:
    """What one job run did.

    Attributes:
        name: The job.
        outcome: ``succeeded`` or ``failed``.
        counts: The job's counts (empty when it failed).
        error: The exception's class name when it failed.
    """

    name: str
    outcome: str
    counts: Mapping[str, int] = field(default_factory=dict)
    error: Optional[str] = None


def scheduler_identity() -> str:
    """A name for this scheduler process, unique among the deployment's (host, pid, random)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Scheduler:
    """Runs the due jobs under their leases (see the module docstring)."""

    def __init__(self, deps: Deps, jobs: List[Job], *, holder: Optional[str] = None,
                 clock: Optional[Clock] = None, lease_seconds: int = LEASE_SECONDS) -> None:
        """Args:
            deps: Dependencies of the account store (session factory; its clock is the default).
            jobs: The jobs, run in this order at each tick.
            holder: This scheduler's name in the leases (default: :func:`scheduler_identity`).
            clock: Time source (default: ``deps``' clock).
            lease_seconds: How long a taken lease lasts.
        """
        names = [job.name for job in jobs]
        if len(set(names)) != len(names):
            raise ValueError(f"job names must be unique: {names}")
        self.deps = deps
        self.jobs = list(jobs)
        self.holder = holder or scheduler_identity()
        self._clock = clock
        self.lease = timedelta(seconds=lease_seconds)

    def now(self) -> datetime:
        """The scheduler's time (aware UTC)."""
        if self._clock is None:
            return self.deps.now()
        value = self._clock()
        if value.tzinfo is None:
            raise ValueError("the clock must return an aware datetime")
        return value

    def run_due(self) -> List[JobReport]:
        """Run every job that is due and not leased by another scheduler; report the runs."""
        reports = []
        for job in self.jobs:
            report = self.run_if_due(job)
            if report is not None:
                reports.append(report)
        return reports

    def run_if_due(self, job: Job) -> Optional[JobReport]:
        """Take ``job``'s lease if it is due and free, run it, record the run; None if not run."""
        started = self.now()
        if not self._take_lease(job, started):
            return None
        logger.info("job %s started (%s)", job.name, self.holder)
        try:
            counts = {str(k): int(v) for k, v in dict(job.work(started)).items()}
            report = JobReport(job.name, "succeeded", counts)
        except Exception as error:  # noqa: BLE001 - recorded as failed, logged, retried next tick
            logger.exception("job %s failed", job.name)
            report = JobReport(job.name, "failed", {}, type(error).__name__)
        self._finish(job, started, self.now(), report)
        logger.info("job %s %s %s", job.name, report.outcome, report.counts or report.error or "")
        return report

    def _take_lease(self, job: Job, now: datetime) -> bool:
        with write_session(self.deps.session_factory) as session:
            _ensure_lease_row(session, job.name)
            lease = session.execute(
                sa.select(JobLease).where(JobLease.name == job.name).with_for_update()
                .execution_options(populate_existing=True)
            ).scalar_one()
            if lease.leased_until is not None and lease.leased_until > now:
                return False
            if lease.last_finished_at is not None and lease.last_finished_at + job.every > now:
                return False
            lease.holder = self.holder
            lease.leased_until = now + self.lease
            lease.last_started_at = now
            return True

    def _finish(self, job: Job, started: datetime, finished: datetime, report: JobReport) -> None:
        details: Dict[str, object] = dict(report.counts)
        if report.error:
            details["error"] = report.error
        with write_session(self.deps.session_factory) as session:
            lease = session.execute(
                sa.select(JobLease).where(JobLease.name == job.name).with_for_update()
                .execution_options(populate_existing=True)
            ).scalar_one()
            if lease.holder == self.holder:
                lease.leased_until = None
                if report.outcome == "succeeded":
                    lease.last_finished_at = finished
            session.add(JobRun(name=job.name, holder=self.holder, started_at=started,
                               finished_at=finished, outcome=report.outcome, details=details))
            if report.outcome == "succeeded" and any(report.counts.values()):
                session.add(AuditEvent(account_id=None, actor=SCHEDULER_ACTOR, action=f"job:{job.name}",
                                       outcome="succeeded", details=details, at=finished))


def _ensure_lease_row(session: Session, name: str) -> None:
    """Insert the job's lease row unless it exists (races with other schedulers are harmless)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    session.execute(insert(JobLease).values(name=name).on_conflict_do_nothing(index_elements=["name"]))


# --------------------------------------------------------------------------- the account domain's jobs


def finalize_closures_job(deps: Deps) -> JobWork:
    """Close the accounts whose grace period ended (one e-mail each, exactly once)."""

    def work(now: datetime) -> Mapping[str, int]:
        key = f"scheduler:finalize-closures:{now.isoformat()}"
        result = finalize_due_closures(deps, idempotency_key=key, now=now)
        if not isinstance(result, ClosuresFinalized):
            raise RuntimeError(f"closure finalisation refused: {result}")
        return {"closed": len(result.account_ids)}

    return work


def purge_expired_verification_job(deps: Deps) -> JobWork:
    """Delete lost-TFA pending proofs and chat-link codes a day after they expired."""

    def work(now: datetime) -> Mapping[str, int]:
        cutoff = now - EXPIRED_KEPT
        with write_session(deps.session_factory) as session:
            proofs = session.execute(
                sa.delete(TfaPendingProof).where(TfaPendingProof.expires_at < cutoff)
                .execution_options(synchronize_session=False)
            ).rowcount
            codes = session.execute(
                sa.delete(VerificationCode).where(VerificationCode.purpose == "channel_link",
                                                  VerificationCode.expires_at < cutoff)
                .execution_options(synchronize_session=False)
            ).rowcount
        return {"pending_proofs": proofs, "link_codes": codes}

    return work


def purge_outbox_job(deps: Deps) -> JobWork:
    """Delete notifications sent or given up more than ``OUTBOX_RETENTION_DAYS`` ago."""

    def work(now: datetime) -> Mapping[str, int]:
        return {"notifications": purge_old_notifications(deps, now=now)}

    return work


#: How often each account job is due.
FINALIZE_EVERY = timedelta(minutes=5)
PURGE_EVERY = timedelta(hours=1)


def account_jobs(deps: Deps) -> List[Job]:
    """The account domain's periodic jobs, in the order a tick runs them."""
    return [
        Job("finalize_closures", FINALIZE_EVERY, finalize_closures_job(deps)),
        Job("purge_expired_verification", PURGE_EVERY, purge_expired_verification_job(deps)),
        Job("purge_outbox", PURGE_EVERY, purge_outbox_job(deps)),
    ]
