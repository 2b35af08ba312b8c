"""Export or erase everything held about one customer, in both databases (GDPR art. 15, 17, 20).

Usage (other tools call these; both read ``ACCOUNTS_DB_URL`` and ``TRACKER_DB_URL``)::

    python -m supportbot.privacy export --email ADDRESS            # JSON on standard output
    python -m supportbot.privacy export --account-id N
    python -m supportbot.privacy export --channel slack|telegram|socketio --channel-user ID
    python -m supportbot.privacy erase  --email ADDRESS --yes      # same selectors; --yes is required

The customer is resolved in the account store (:func:`accounts.privacy.find_subject`),
their conversations in the tracker store (:func:`tracking.erasure.find_conversations`).
Erasure removes the conversations first (events, review index, the console's
tags, notes, review records and NLU labels; :func:`tracking.erasure.erase_conversations`),
then the account store's personal data (:func:`accounts.privacy.erase_account_data`),
each in one transaction. Running it again finds nothing more to erase, so a run
interrupted between the two databases is finished by running it again.
Exit codes: 0 done (also when nothing was held), 2 bad arguments or settings.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional

from sqlalchemy.engine import Engine

from accounts.deps import Deps
from accounts.privacy import erase_account_data, export_account_data, find_subject, record_export
from console.models import CONVERSATION_TABLES
from tracking.erasure import erase_conversations, export_conversations, find_conversations

logger = logging.getLogger("supportbot.privacy")

#: Chat channels whose user ids identify a customer.
CHANNELS = ("slack", "telegram", "socketio")


@dataclass(frozen=True)
class Selector:
    """How the operator names the customer (exactly one kind)."""

    email: Optional[str] = None
    account_id: Optional[int] = None
    channel: Optional[str] = None
    channel_user_id: Optional[str] = None

    def describe(self) -> str:
        """The selector for messages, without the identifier itself."""
        if self.email is not None:
            return "e-mail"
        if self.account_id is not None:
            return f"account {self.account_id}"
        return f"{self.channel} user"


def _subject_and_conversations(deps: Deps, tracker: Engine, selector: Selector) -> tuple:
    subject = find_subject(deps, email=selector.email, account_id=selector.account_id,
                           channel=selector.channel, channel_user_id=selector.channel_user_id)
    conversations = find_conversations(
        tracker, account_ids=[subject.account_id] if subject.account_id is not None else [],
        chat_identities=subject.chat_identities, sender_ids=subject.conversation_ids)
    return subject, conversations


def preview_customer(deps: Deps, tracker: Engine, selector: Selector) -> Dict[str, Any]:
    """What an erasure would touch (for a confirmation): the account, whether it is closed, how many chats."""
    subject, conversations = _subject_and_conversations(deps, tracker, selector)
    return {"found": subject.found or bool(conversations), "account_id": subject.account_id,
            "account_closed": subject.account_closed, "conversations": len(conversations),
            "chat_identities": len(subject.chat_identities)}


def export_customer(deps: Deps, tracker: Engine, selector: Selector, *,
                    actor: str = "operator:privacy-cli") -> Dict[str, Any]:
    """Everything held about the customer, as one JSON-ready document (the export is audited)."""
    subject, conversations = _subject_and_conversations(deps, tracker, selector)
    if subject.found or conversations:
        record_export(deps, subject, actor=actor, conversations=len(conversations))
    return {
        "subject": {"account_id": subject.account_id, "emails": list(subject.emails),
                    "chat_identities": [{"channel": c, "channel_user_id": u} for c, u in subject.chat_identities]},
        "account_store": export_account_data(deps, subject, extra_conversations=conversations),
        "conversations": export_conversations(tracker, conversations, CONVERSATION_TABLES),
    }


def erase_customer(deps: Deps, tracker: Engine, selector: Selector, *, actor: str) -> Dict[str, Any]:
    """Erase the customer's conversations, then their personal data in the account store; return counts."""
    subject, conversations = _subject_and_conversations(deps, tracker, selector)
    if not subject.found and not conversations:
        logger.info("erasure by %s: nothing held for this %s", actor, selector.describe())
        return {"found": False}
    erased = erase_conversations(tracker, conversations, CONVERSATION_TABLES)
    report = erase_account_data(deps, subject, actor=actor, extra_conversations=conversations)
    logger.info("erasure by %s of a %s: %d conversations, %d events, account store %s (pseudonym %s)",
                actor, selector.describe(), erased.conversations, erased.events, dict(report.counts),
                report.pseudonym)
    return {"found": True, "pseudonym": report.pseudonym, "account_id": report.account_id,
            "account_pseudonymised": report.account_pseudonymised, "conversations": asdict(erased),
            "account_store": dict(report.counts)}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m supportbot.privacy", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (("export", "print everything held about one customer as JSON"),
                       ("erase", "erase one customer's conversations and personal data")):
        command = sub.add_parser(name, help=text)
        who = command.add_mutually_exclusive_group(required=True)
        who.add_argument("--email", help="an address of the customer's account")
        who.add_argument("--account-id", type=int, help="the account's id")
        who.add_argument("--channel", choices=CHANNELS, help="a chat channel (with --channel-user)")
        command.add_argument("--channel-user", help="the chat platform's user id (with --channel)")
        if name == "erase":
            command.add_argument("--yes", action="store_true", help="really erase (required)")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run ``export`` or ``erase``; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if (args.channel is None) != (args.channel_user is None):
        parser.error("--channel and --channel-user go together")
    if args.command == "erase" and not args.yes:
        parser.error("erase needs --yes: it cannot be undone")
    logging.basicConfig(level="INFO", format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    selector = Selector(email=args.email, account_id=args.account_id, channel=args.channel,
                        channel_user_id=args.channel_user)

    from accounts import settings as account_settings
    from accounts.db import make_engine, make_session_factory, upgrade
    from tracking.db import make_engine as make_tracker_engine
    from tracking.migrate import upgrade_tracker
    from tracking.settings import tracker_db_url

    accounts_url = account_settings.database_url()
    upgrade(accounts_url)
    accounts_engine = make_engine(accounts_url)
    tracker = make_tracker_engine(tracker_db_url())
    try:
        upgrade_tracker(tracker)
        deps = Deps(session_factory=make_session_factory(accounts_engine))
        if args.command == "export":
            document = export_customer(deps, tracker, selector)
        else:
            document = erase_customer(deps, tracker, selector, actor="operator:privacy-cli")
        json.dump(document, sys.stdout, indent=2, sort_keys=True, default=str)
        sys.stdout.write("\n")
        return 0
    finally:
        accounts_engine.dispose()
        tracker.dispose()


if __name__ == "__main__":
    sys.exit(main())
