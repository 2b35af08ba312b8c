"""Helpers of the state conversation tests: accounts set up as needed, chats.

The assistant (one per module) is the folder's ``conftest.assistant``; the
``store`` fixture here, imported by the modules that use it, overrides the
folder's with a :class:`StateStore`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import pytest
import sqlalchemy as sa
import yaml

from accounts.db import write_session
from accounts.models import Account, Invoice, Member, Payment, Service, SupportRequest, SupportRequestMessage
from supportbot.portal_token import PortalTokenVerifier
from supportbot.settings import PROJECT_ROOT
from tests.conftest import TEST_PORTAL_SECRET, RunningAssistant
from tests.operations.conftest import Store

NOW = dt.datetime.now(dt.timezone.utc)
GRACE_ENDS = NOW + dt.timedelta(days=14)


@pytest.fixture(scope="module")
def store(assistant: RunningAssistant) -> "StateStore":
    return StateStore(assistant.accounts_db_url, mail_dir=Path(assistant.log_path).parent / "mail")


class StateStore(Store):
    """The assistant's account store, with accounts in any state and support requests to count."""

    def account_with(self, *, status: str = "active", currency: str = "EUR", balance: str = "0.00",
                     invoices: Sequence[Tuple[str, str]] = (), services: Sequence[str] = (),
                     payments: int = 0, members: Dict[str, str] = None) -> Tuple[int, str]:
        """A fresh account with an active owner; invoices are (number, amount) unpaid; (id, owner)."""
        tag = uuid.uuid4().hex[:10]
        owner = f"owner-{tag}@test.example"
        with write_session(self.factory) as session:
            account = Account(kind="personal", currency=currency, status=status, primary_email=owner,
                              payment_method="card", balance=Decimal(balance), created_at=NOW,
                              closing_requested_at=NOW if status == "closing" else None,
                              grace_period_ends_at=GRACE_ENDS if status == "closing" else None)
            session.add(account)
            session.flush()
            session.add(Member(account_id=account.id, email=owner, role="owner", status="active",
                               joined_at=NOW, created_at=NOW))
            for email, role in (members or {}).items():
                session.add(Member(account_id=account.id, email=email, role=role, status="active",
                                   joined_at=NOW, created_at=NOW))
            for number, amount in invoices:
                session.add(Invoice(account_id=account.id, number=f"{number}-{tag}", amount=Decimal(amount),
                                    currency=currency, status="unpaid", issued_at=NOW,
                                    due_date=(NOW + dt.timedelta(days=10)).date()))
            for name in services:
                session.add(Service(account_id=account.id, name=name, status="active", created_at=NOW))
            for _ in range(payments):
                session.add(Payment(account_id=account.id, amount=Decimal("10.00"), currency=currency,
                                    paid_at=NOW))
            return account.id, owner

    def status(self, account_id: int) -> str:
        return self.account(account_id).status

    def invoice_numbers(self, account_id: int) -> List[str]:
        with self.factory() as session:
            return list(session.execute(sa.select(Invoice.number).where(Invoice.account_id == account_id)
                                        .order_by(Invoice.id)).scalars())

    def support_requests(self, account_id: Optional[int] = None) -> List[SupportRequest]:
        with self.factory() as session:
            query = sa.select(SupportRequest).order_by(SupportRequest.id)
            if account_id is not None:
                query = query.where(SupportRequest.account_id == account_id)
            return list(session.execute(query).scalars())

    def request_count(self) -> int:
        with self.factory() as session:
            return int(session.execute(sa.select(sa.func.count()).select_from(SupportRequest)).scalar_one())

    def requests_of_conversation(self, conversation: str) -> List[SupportRequest]:
        return [r for r in self.support_requests() if (r.context or {}).get("conversation") == conversation]

    def request_messages(self, request_id: int) -> List[Tuple[str, str]]:
        with self.factory() as session:
            rows = session.execute(sa.select(SupportRequestMessage.author, SupportRequestMessage.text)
                                   .where(SupportRequestMessage.support_request_id == request_id)
                                   .order_by(SupportRequestMessage.id)).all()
            return [tuple(row) for row in rows]


@dataclass
class Chat:
    """One customer's REST conversation (verified with a portal token, or anonymous)."""

    assistant: RunningAssistant
    account_id: Optional[int] = None
    email: Optional[str] = None
    sender: str = field(default_factory=lambda: f"state-{uuid.uuid4().hex}")

    @property
    def token(self) -> Optional[str]:
        if self.account_id is None:
            return None
        return PortalTokenVerifier(TEST_PORTAL_SECRET).issue(str(self.account_id), self.email)

    def replies(self, message: str) -> List[Dict]:
        """The assistant's replies (text and buttons) to one message."""
        return self.assistant.say(self.sender, message, token=self.token)

    def says(self, message: str) -> List[str]:
        """The texts of the assistant's replies to one message."""
        return [reply.get("text", "") for reply in self.replies(message)]

    @property
    def conversation_id(self) -> str:
        """The tracker's sender id (REST derives it from the verified customer, or scopes it to the address)."""
        if self.account_id is None:
            from channels.rest import anonymous_sender_id
            return anonymous_sender_id(self.sender, "127.0.0.1")
        from channels.rest import verified_sender_id
        from supportbot.portal_token import PortalTokenVerifier as Verifier

        identity = Verifier(TEST_PORTAL_SECRET).verify(self.token)
        return verified_sender_id("rest", identity)


def buttons(reply: Dict) -> List[str]:
    """The payloads of a reply's buttons."""
    return [button["payload"] for button in reply.get("buttons") or []]


def response_text(name: str, channel: Optional[str] = None) -> str:
    """The domain response ``name`` as the assistant says it on ``channel`` (default variation: None)."""
    domain = yaml.safe_load((PROJECT_ROOT / "domain.yml").read_text())
    [variant] = [v for v in domain["responses"][name] if v.get("channel") == channel]
    return variant["text"].strip()


def response_variants(name: str) -> List[str]:
    domain = yaml.safe_load((PROJECT_ROOT / "domain.yml").read_text())
    return [variant["text"].strip() for variant in domain["responses"][name]]
