"""Command line of the account domain.

Usage::

    python -m accounts migrate [--url URL]     # apply Alembic migrations
    python -m accounts demo [--url URL]        # migrate, then load missing demo data
    python -m accounts prepare [--url URL]     # migrate; demo data only into var/accounts.db or with DEMO_DATA=1
    python -m accounts demo-reset-tfa          # demo secret + 8 recovery codes back on tfa@demo.example
    python -m accounts finalize-closures       # close accounts whose grace period ended
    python -m accounts dispatch --once         # send the due outbox notifications, then exit
    python -m accounts dispatch --loop [--interval 2]  # keep sending until SIGTERM/SIGINT
    python -m accounts helpdesk --once         # deliver due support requests to the helpdesk, then exit
    python -m accounts helpdesk --loop [--interval 5]  # keep delivering until SIGTERM/SIGINT
    python -m accounts purge-outbox            # delete notifications sent or given up > OUTBOX_RETENTION_DAYS ago

``--url`` defaults to ``ACCOUNTS_DB_URL`` or ``sqlite:///<project>/var/accounts.db``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable, List, Optional

from sqlalchemy.engine import make_url

from accounts import settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m accounts", description="Account domain tools.")
    parser.add_argument("--url", default=None, help="database URL (default: $ACCOUNTS_DB_URL or var/accounts.db)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply database migrations")
    sub.add_parser("demo", help="migrate and load demo data (idempotent)")
    sub.add_parser("prepare", help="migrate; load demo data into the default SQLite file or with DEMO_DATA=1 (start-up)")
    sub.add_parser("demo-reset-tfa", help="restore the demo TFA state of tfa@demo.example after a recovery demo")
    sub.add_parser("finalize-closures", help="close accounts whose grace period has ended")
    sub.add_parser("purge-outbox", help="delete notifications sent or given up more than "
                                        "OUTBOX_RETENTION_DAYS (30) days ago")
    dispatch = sub.add_parser("dispatch", help="e-mail the pending outbox notifications (MAIL_BACKEND, SMTP_*)")
    mode = dispatch.add_mutually_exclusive_group(required=True)
    mode.add_argument("--once", action="store_true", help="send what is due, then exit")
    mode.add_argument("--loop", action="store_true", help="keep sending until SIGTERM or SIGINT")
    dispatch.add_argument("--interval", type=float, default=2.0, help="seconds between idle rounds (2)")
    dispatch.add_argument("--batch", type=int, default=50, help="rows per round (50)")
    helpdesk = sub.add_parser("helpdesk", help="deliver support requests to the helpdesk (HELPDESK_*)")
    hmode = helpdesk.add_mutually_exclusive_group(required=True)
    hmode.add_argument("--once", action="store_true", help="deliver what is due, then exit")
    hmode.add_argument("--loop", action="store_true", help="keep delivering until SIGTERM or SIGINT")
    helpdesk.add_argument("--interval", type=float, default=5.0, help="seconds between idle rounds (5)")
    helpdesk.add_argument("--batch", type=int, default=50, help="rows per round (50)")
    return parser


def _run_worker(args: argparse.Namespace, url: str, name: str,
                make_target: Callable[[], Any],
                once: Callable[[Any, Any], Optional[str]],
                loop: Callable[..., None]) -> int:
    """Run a delivery worker (``--once`` or ``--loop`` until SIGTERM/SIGINT).

    Args:
        args: Parsed ``--once``/``--loop``/``--interval``/``--batch``.
        url: Account store URL.
        name: What the worker delivers, for messages ("mail", "helpdesk").
        make_target: Builds the mailer or helpdesk client from the environment
            (raises ValueError on bad settings).
        once: Delivers one round; returns the summary to print.
        loop: ``run_loop(deps, target, stop=, interval=, batch=)``.
    """
    import logging
    import os
    import signal
    import threading

    from accounts.db import make_engine, make_session_factory
    from accounts.deps import Deps

    if args.interval <= 0 or args.batch <= 0:
        print("--interval and --batch must be positive", file=sys.stderr)
        return 2
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO").upper(),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        target = make_target()
    except ValueError as exc:
        print(f"{name} settings: {exc}", file=sys.stderr)
        return 2
    engine = make_engine(url, hide_parameters=True)
    try:
        deps = Deps(session_factory=make_session_factory(engine))
        if args.once:
            print(once(deps, target))
            return 0
        stop = threading.Event()

        def request_stop(signum: int, _frame: object) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        loop(deps, target, stop=stop, interval=args.interval, batch=args.batch)
        return 0
    finally:
        engine.dispose()


def _helpdesk(args: argparse.Namespace, url: str) -> int:
    """Run ``helpdesk --once`` or ``helpdesk --loop`` (HELPDESK_* from the environment)."""
    from accounts.helpdesk import helpdesk_from_env
    from accounts.helpdesk_dispatch import deliver_pending, run_loop

    def once(deps: Any, client: Any) -> str:
        if client is None:
            return "no helpdesk configured (HELPDESK_URL): support requests stay pending"
        return deliver_pending(deps, client, batch=args.batch).summary()

    return _run_worker(args, url, "helpdesk", helpdesk_from_env, once, run_loop)


def _dispatch(args: argparse.Namespace, url: str) -> int:
    """Run ``dispatch --once`` or ``dispatch --loop`` (mail settings from the environment)."""
    from accounts.dispatch import dispatch_pending, run_loop
    from accounts.mail import Mailer, mailer_from_env

    def real_mail_needs_the_portal() -> Mailer:
        settings.require_portal_for_real_mail()
        return mailer_from_env()

    def once(deps: Any, mailer: Any) -> str:
        return dispatch_pending(deps, mailer, batch=args.batch).summary()

    return _run_worker(args, url, "mail", real_mail_needs_the_portal, once, run_loop)


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command line.

    Args:
        argv: Arguments without the program name; defaults to ``sys.argv[1:]``.

    Returns:
        The process exit code.
    """
    args = _parser().parse_args(argv)
    url = args.url or settings.database_url()
    from accounts.db import make_engine, make_session_factory, upgrade

    upgrade(url)
    if args.command == "migrate":
        print(f"migrated {make_url(url).render_as_string(hide_password=True)}")
        return 0
    if args.command == "dispatch":
        return _dispatch(args, url)
    if args.command == "helpdesk":
        return _helpdesk(args, url)
    engine = make_engine(url)
    try:
        factory = make_session_factory(engine)
        if args.command == "prepare":
            from accounts.demo import demo_data_wanted

            if not demo_data_wanted(url):
                print("migrated; no demo data (only var/accounts.db gets it, or DEMO_DATA=1)")
                return 0
        if args.command in ("demo", "prepare"):
            from accounts.demo import DEMO_ACCOUNTS, load_demo

            if args.command == "prepare":
                print("migrated; demo accounts loaded (the default SQLite file, or DEMO_DATA=1)")

            import sqlalchemy as sa

            from accounts.models import Account

            report = load_demo(factory)
            with factory() as session:
                ids = dict(session.execute(sa.select(Account.primary_email, Account.id)).all())
            for demo in DEMO_ACCOUNTS:
                state = "created" if demo.email in report.created else "present"
                print(f"{state:8} id {ids.get(demo.email, '?'):<4} {demo.email:24} {demo.description}")
            return 0
        if args.command == "purge-outbox":
            from accounts.deps import Deps
            from accounts.dispatch import purge_old_notifications

            purged = purge_old_notifications(Deps(session_factory=factory, settings=settings.Settings.from_env()))
            print(f"purged {purged} notification(s)")
            return 0
        if args.command == "demo-reset-tfa":
            from accounts.demo import reset_demo_tfa

            done = reset_demo_tfa(factory)
            print("tfa@demo.example: demo TFA restored" if done else "tfa@demo.example not loaded: run demo first")
            return 0 if done else 1
        from datetime import timezone

        from accounts.closing import finalize_due_closures
        from accounts.deps import Deps, utc_now

        now = utc_now()
        key = "finalize-closures:" + now.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M")
        result = finalize_due_closures(Deps(session_factory=factory, settings=settings.Settings.from_env()), idempotency_key=key)
        print(result.to_dict())
        return 0
    finally:
        engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
