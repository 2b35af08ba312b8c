"""The one scheduler of periodic work, for every deployment shape.

``python -m supportbot.scheduler --loop`` (started by ``make run``, ``make
run-cluster`` and ``deploy/compose.yml``) wakes every ``SCHEDULER_TICK_SECONDS``
(60) and runs the jobs that are due, each under its lease in the account store
(:mod:`accounts.jobs`), so one scheduler per deployment is the plan and two are
safe. ``--once`` runs what is due and exits (cron, a test, by hand).

| job | every | what |
|---|---|---|
| ``finalize_closures`` | 5 min | closes the accounts whose grace period ended (one e-mail each) |
| ``purge_expired_verification`` | 1 h | deletes lost-TFA pending proofs and chat-link codes a day after they expired |
| ``conversation_retention`` | 1 h | removes conversations whose last event is older than ``CONVERSATION_RETENTION_DAYS`` (180) from the tracker store, its review index and the console's tags, notes and review records, in batches (:mod:`tracking.retention`) |

Each run is logged, recorded in ``job_runs`` and, when it changed something,
audited as ``system:scheduler``. The databases are ``ACCOUNTS_DB_URL`` and
``TRACKER_DB_URL``.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from datetime import datetime
from typing import List, Mapping, Optional

from sqlalchemy.engine import Engine

from accounts.deps import Deps
from accounts.jobs import PURGE_EVERY, Job, JobWork, Scheduler, account_jobs
from console.models import CONVERSATION_TABLES
from tracking.retention import BATCH_EVENTS, cutoff_for, purge_conversations

logger = logging.getLogger("supportbot.scheduler")

#: Seconds between two looks at the due jobs unless ``SCHEDULER_TICK_SECONDS`` says otherwise.
DEFAULT_TICK_SECONDS = 60.0


def conversation_retention_job(tracker_engine: Engine, retention_days: int,
                               batch_events: int = BATCH_EVENTS) -> JobWork:
    """Remove the conversations older than the retention window (tracker store and console)."""

    def work(now: datetime) -> Mapping[str, int]:
        report = purge_conversations(tracker_engine, older_than=cutoff_for(now.timestamp(), retention_days),
                                     batch_events=batch_events, related=CONVERSATION_TABLES)
        return {"conversations": report.conversations, "events": report.events}

    return work


def all_jobs(deps: Deps, tracker_engine: Engine, retention_days: int) -> List[Job]:
    """Every periodic job of the assistant, in the order a tick runs them."""
    return account_jobs(deps) + [
        Job("conversation_retention", PURGE_EVERY, conversation_retention_job(tracker_engine, retention_days)),
    ]


def tick_seconds(environ: Optional[Mapping[str, str]] = None) -> float:
    """``SCHEDULER_TICK_SECONDS`` (60): seconds between two looks at the due jobs."""
    env = os.environ if environ is None else environ
    value = float(env.get("SCHEDULER_TICK_SECONDS") or DEFAULT_TICK_SECONDS)
    if value <= 0:
        raise ValueError("SCHEDULER_TICK_SECONDS must be positive")
    return value


def run_loop(scheduler: Scheduler, *, stop: threading.Event, interval: float) -> None:
    """Run the due jobs every ``interval`` seconds until ``stop`` is set; a failed tick is logged and retried."""
    logger.info("scheduler %s running %s every %g s", scheduler.holder,
                ", ".join(job.name for job in scheduler.jobs), interval)
    while not stop.is_set():
        try:
            scheduler.run_due()
        except Exception:  # noqa: BLE001 - e.g. the database is down: next tick tries again
            logger.exception("scheduler tick failed; retrying in %g s", interval)
        stop.wait(interval)
    logger.info("scheduler stopped")


def main(argv: Optional[List[str]] = None) -> int:
    """Run the scheduler once or in a loop (until SIGTERM/SIGINT)."""
    parser = argparse.ArgumentParser(prog="python -m supportbot.scheduler", description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--once", action="store_true", help="run the due jobs, then exit")
    mode.add_argument("--loop", action="store_true", help="keep running the due jobs until SIGTERM or SIGINT")
    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO").upper(),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")

    from accounts import settings as account_settings
    from accounts.db import make_engine, make_session_factory, upgrade
    from tracking.db import make_engine as make_tracker_engine
    from tracking.migrate import upgrade_tracker
    from tracking.settings import conversation_retention_days, tracker_db_url

    accounts_url = account_settings.database_url()
    upgrade(accounts_url)
    accounts_engine = make_engine(accounts_url)
    tracker_engine = make_tracker_engine(tracker_db_url())
    try:
        upgrade_tracker(tracker_engine)
        deps = Deps(session_factory=make_session_factory(accounts_engine),
                    settings=account_settings.Settings.from_env())
        scheduler = Scheduler(deps, all_jobs(deps, tracker_engine, conversation_retention_days()))
        if args.once:
            for report in scheduler.run_due():
                print(f"{report.name}: {report.outcome} {dict(report.counts) or report.error or ''}")
            return 0
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        run_loop(scheduler, stop=stop, interval=tick_seconds())
        return 0
    finally:
        accounts_engine.dispose()
        tracker_engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
