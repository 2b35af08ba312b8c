"""Commands of the conversation log.

``python -m tracking migrate [--url URL]`` brings the tracker database (events,
review index, console tables) to the newest Alembic revision (:mod:`tracking.migrate`).
``python -m tracking rebuild-index [--url URL]`` rebuilds the review index from
the ``events`` table (see :mod:`tracking.rebuild`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import List, Optional

from tracking.db import make_engine
from tracking.settings import tracker_db_url


def main(argv: Optional[List[str]] = None) -> int:
    """Run one command; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m tracking", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    rebuild = commands.add_parser("rebuild-index", help="rebuild the review index from the events table")
    rebuild.add_argument("--url", help="database URL (default: TRACKER_DB_URL or var/tracker.db)")
    migrate = commands.add_parser("migrate", help="apply the tracker database's migrations")
    migrate.add_argument("--url", help="database URL (default: TRACKER_DB_URL or var/tracker.db)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    if args.command == "migrate":
        from tracking.migrate import current_revision, upgrade_tracker

        engine = make_engine(args.url or tracker_db_url())
        try:
            upgrade_tracker(engine)
            print(f"tracker database at revision {current_revision(engine)}")
        finally:
            engine.dispose()

    if args.command == "rebuild-index":
        from tracking.rebuild import rebuild_index

        engine = make_engine(args.url or tracker_db_url())
        try:
            report = rebuild_index(engine)
        finally:
            engine.dispose()
        print(f"Indexed {report.conversations} conversations, {report.events} events, "
              f"{report.messages} messages.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
