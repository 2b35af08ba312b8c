"""Commands of the review console.

``python -m console serve``
    Serve the console on ``CONSOLE_HOST:CONSOLE_PORT`` (the runner does this).
``python -m console create-lead EMAIL [--admin] [--reset-password]``
    Add a support lead (``--admin``: an admin, who also manages leads). The
    password is asked twice at a terminal, or read from the first line of
    standard input (``... < password.txt``); it never goes on the command line.
    ``--reset-password`` sets a new password for an existing lead instead.
``python -m console reset-password EMAIL``
    Set a new password (asked as above); the lead's sessions end.
``python -m console disable-lead EMAIL`` / ``enable-lead EMAIL``
    Stop (ending their sessions) or allow a lead's sign-in.

Every change is recorded in the admin audit trail as made by the command line
(see :mod:`console.admin`).
"""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
import time
from typing import TYPE_CHECKING, List, Optional

from console.settings import load_console_settings
from tracking.db import make_engine, write_transaction

if TYPE_CHECKING:
    from console.admin import Actor


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("Password for the new lead: ")
        second = getpass.getpass("Repeat the password: ")
        if first != second:
            raise SystemExit("The passwords differ; nothing was changed.")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def _cli_actor() -> "Actor":
    from console.admin import Actor

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown user"
    return Actor(None, f"command line ({user})")


def lead_command(command: str, email: str, url: Optional[str], *, admin_role: bool = False) -> int:
    """Create a lead, reset their password, disable or re-enable them; audited as the command line."""
    from console import admin, auth
    from console.app import prepare_database

    settings = load_console_settings()
    engine = make_engine(url or settings.db_url)
    actor, now, address = _cli_actor(), time.time(), auth.normalize_email(email)
    try:
        prepare_database(engine)
        password = _read_password() if command in ("create-lead", "reset-password") else ""
        try:
            with write_transaction(engine) as conn:
                if command == "create-lead":
                    role = admin.ADMIN if admin_role else admin.LEAD
                    admin.create(conn, actor, email, password, now=now, role=role)
                    message = f"Created {role} {address}."
                elif command == "reset-password":
                    admin.reset_password(conn, actor, email, password, now=now, admins_too=True)
                    message = f"Password changed for {address}."
                else:
                    disable = command == "disable-lead"
                    changed = admin.set_disabled(conn, actor, email, disable, now=now, admins_too=True)
                    state = "disabled" if disable else "enabled"
                    message = f"{'Already ' + state if not changed else state.capitalize()}: {address}."
        except auth.LeadError as error:
            print(error, file=sys.stderr)
            return 1
    finally:
        engine.dispose()
    print(message)
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
    lead.add_argument("--reset-password", action="store_true", help="set a new password for an existing lead")
    lead.add_argument("--admin", action="store_true", help="an admin, who also manages leads")
    for name, help_text in (("reset-password", "set a new password (from a prompt or stdin); ends sessions"),
                            ("disable-lead", "stop a lead's sign-in and end their sessions"),
                            ("enable-lead", "allow a disabled lead to sign in again")):
        commands.add_parser(name, help=help_text)
    for sub in commands.choices.values():
        if sub.prog.endswith(" serve"):
            continue
        sub.add_argument("email")
        sub.add_argument("--url", help="database URL (default: TRACKER_DB_URL or var/tracker.db)")
    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve()
    if args.command == "create-lead" and args.reset_password:
        return lead_command("reset-password", args.email, args.url)
    return lead_command(args.command, args.email, args.url, admin_role=getattr(args, "admin", False))


if __name__ == "__main__":
    sys.exit(main())
