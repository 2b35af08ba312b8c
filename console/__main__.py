"""Commands of the review console.

``python -m console serve``
    Serve the console on ``CONSOLE_HOST:CONSOLE_PORT`` (the runner does this).
``python -m console create-lead EMAIL [--reset-password]``
    Add a support lead. The password is asked twice at a terminal, or read from
    the first line of standard input (``... < password.txt``); it never goes on
    the command line.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
import time
from typing import List, Optional

from console.settings import load_console_settings
from tracking.db import make_engine, write_transaction


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("Password for the new lead: ")
        second = getpass.getpass("Repeat the password: ")
        if first != second:
            raise SystemExit("The passwords differ; nothing was changed.")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def create_lead_command(email: str, reset_password: bool, url: Optional[str]) -> int:
    """Create a lead (or reset their password) in the console's database."""
    from console import auth
    from console.app import prepare_database

    settings = load_console_settings()
    engine = make_engine(url or settings.db_url)
    try:
        prepare_database(engine)
        password = _read_password()
        try:
            with write_transaction(engine) as conn:
                auth.create_lead(conn, email, password, now=time.time(), reset_password=reset_password)
        except auth.LeadError as error:
            print(error, file=sys.stderr)
            return 1
    finally:
        engine.dispose()
    action = "Password changed for" if reset_password else "Created lead"
    print(f"{action} {auth.normalize_email(email)}.")
    return 0


def serve() -> int:
    """Serve the console until interrupted."""
    from aiohttp import web

    from console.app import create_app, prepare_database

    settings = load_console_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(name)s %(message)s")
    engine = make_engine(settings.db_url)
    prepare_database(engine)
    app = create_app(settings, engine)

    async def _dispose(_app: web.Application) -> None:
        engine.dispose()

    app.on_cleanup.append(_dispose)
    logging.getLogger("console").info("Review console on %s", settings.local_url)
    web.run_app(app, host=settings.host, port=settings.port, print=None, access_log=None)
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """Run one command; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m console", description="Conversation review console.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="serve the console on CONSOLE_HOST:CONSOLE_PORT")
    lead = commands.add_parser("create-lead", help="add a support lead (password from a prompt or stdin)")
    lead.add_argument("email")
    lead.add_argument("--reset-password", action="store_true", help="set a new password for an existing lead")
    lead.add_argument("--url", help="database URL (default: TRACKER_DB_URL or var/tracker.db)")
    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve()
    return create_lead_command(args.email, args.reset_password, args.url)


if __name__ == "__main__":
    sys.exit(main())
