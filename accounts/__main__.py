"""Command line of the account domain.

Usage::

    python -m accounts migrate [--url URL]     # apply Alembic migrations
    python -m accounts demo [--url URL]        # migrate, then load missing demo data
    python -m accounts finalize-closures       # close accounts whose grace period ended

``--url`` defaults to ``ACCOUNTS_DB_URL`` or ``sqlite:///<project>/var/accounts.db``.
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from sqlalchemy.engine import make_url

from accounts import settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m accounts", description="Account domain tools.")
    parser.add_argument("--url", default=None, help="database URL (default: $ACCOUNTS_DB_URL or var/accounts.db)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply database migrations")
    sub.add_parser("demo", help="migrate and load demo data (idempotent)")
    sub.add_parser("finalize-closures", help="close accounts whose grace period has ended")
    return parser


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
    engine = make_engine(url)
    try:
        factory = make_session_factory(engine)
        if args.command == "demo":
            from accounts.demo import DEMO_ACCOUNTS, load_demo

            report = load_demo(factory)
            for demo in DEMO_ACCOUNTS:
                state = "created" if demo.email in report.created else "present"
                print(f"{state:8} {demo.email:24} {demo.description}")
            return 0
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
