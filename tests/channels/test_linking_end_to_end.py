"""Chat linking where customers use it: Slack, Telegram and widget users verify themselves by an e-mailed code, then
change their currency with a step-up code; an unknown address gets the same answer; an expired link stops working;
the review console's index shows the conversation as the account's, verified by that channel's link.

The assistant runs as ``make run`` starts it (tests/channels/conftest.py), with the fake Slack and Telegram APIs
on 127.0.0.1. The codes are read from the account store's outbox, as the customer's mailbox would receive them.
Customers are fresh accounts without TFA.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Callable, Dict, List

import pytest
import sqlalchemy as sa

from accounts.db import write_session
from accounts.models import ChannelLink, OutboxNotification
from tests.channels.conftest import ChannelAssistant, unique
from tests.channels.fakes import Call
from tests.channels.test_slack import TEAM, message_event
from channels.widget_tickets import anonymous_conversation_id
from tests.channels.test_socketio import WidgetClient
from tests.channels.test_telegram import new_chat_id, text_update
from tests.conftest import wait_for
from tests.operations.conftest import Store

pytestmark = pytest.mark.slow


class ChatUser:
    """A customer typing in one chat: each ``says`` waits until the assistant has answered the turn."""

    def __init__(self, channels: ChannelAssistant, sender: str, send: Callable[[str], Any],
                 replies: Callable[[], List[Call]]) -> None:
        self.channels, self.sender, self.send, self.replies = channels, sender, send, replies
        self.turns = 0

    def _turn_done(self) -> bool:
        events = self.channels.tracker_events(self.sender)
        users = sum(1 for e in events if e["event"] == "user")
        return users >= self.turns and events[-1].get("event") == "action" \
            and events[-1].get("name") == "action_listen"

    def says(self, text: str) -> str:
        before = len(self.replies())
        self.turns += 1
        self.send(text)
        assert wait_for(self._safe_done, timeout=90), f"no answer to {text!r}"
        assert wait_for(lambda: len(self.replies()) > before, timeout=30), f"nothing sent back for {text!r}"
        return " ".join(call.params.get("text", "") for call in self.replies()[before:])

    def _safe_done(self) -> bool:
        try:
            return self._turn_done()
        except Exception:  # noqa: BLE001 - the conversation may not exist yet
            return False


def slack_user(channels: ChannelAssistant) -> ChatUser:
    user, dm = unique("U"), unique("D")
    return ChatUser(channels, user, lambda text: channels.slack_event(message_event(text, user, dm)),
                    lambda: channels.slack.calls_where(channels.slack.messages_to(dm)))


def telegram_user(channels: ChannelAssistant) -> ChatUser:
    chat = new_chat_id()
    return ChatUser(channels, str(chat), lambda text: channels.telegram_update(text_update(chat, text)),
                    lambda: channels.telegram.calls_where(channels.telegram.messages_to(chat)))


class WidgetReplies:
    """What the widget received so far (Socket.IO ``bot_uttered``), as the fakes' calls look."""

    def __init__(self, client: WidgetClient) -> None:
        self.client, self.calls = client, []

    def __call__(self) -> List[Any]:
        while not self.client.replies.empty():
            self.calls.append(Call("bot_uttered", self.client.replies.get(), {}))
        return list(self.calls)


def widget_user(channels: ChannelAssistant) -> ChatUser:
    client = WidgetClient(channels).connect()
    OPEN_WIDGETS.append(client)
    session = client.start_session()  # the visitor's session key; the conversation is a digest of it
    return ChatUser(channels, anonymous_conversation_id(session), lambda text: client.say(text, session_id=session),
                    WidgetReplies(client))


OPEN_WIDGETS: List[WidgetClient] = []

MAKERS: Dict[str, Callable[[ChannelAssistant], ChatUser]] = {
    "slack": slack_user, "telegram": telegram_user, "socketio": widget_user}


@pytest.fixture(autouse=True)
def close_widgets() -> Any:
    yield
    while OPEN_WIDGETS:
        OPEN_WIDGETS.pop().close()


@pytest.fixture
def store(channels: ChannelAssistant) -> Store:
    return Store(f"sqlite:///{channels.running.log_path.parent / 'accounts.db'}",
                 mail_dir=channels.running.log_path.parent / "mail")


@pytest.mark.parametrize("channel", ["slack", "telegram", "socketio"])
def test_verify_me_then_a_currency_change_with_step_up(channels: ChannelAssistant, store: Store,
                                                       channel: str) -> None:
    account_id, email = store.create_customer()
    customer = MAKERS[channel](channels)

    assert "email" in customer.says("hey can u verify me pls").lower()
    sent = customer.says(f"sure its {email}")
    assert "code" in sent.lower()
    verified = customer.says(store.latest_code(email))
    assert f"verified as {email}" in verified

    assert "Which currency" in customer.says("ok now i need to change my account currency")
    assert "to USD?" in customer.says("to dollars please")
    assert "6-digit code" in customer.says("yes")
    assert "now USD" in customer.says(store.latest_code(email))
    assert store.account(account_id).currency == "USD"
    with store.factory() as session:
        [link] = session.execute(sa.select(ChannelLink).where(ChannelLink.account_id == account_id)).scalars()
    chat_user_id = f"{TEAM}:{customer.sender}" if channel == "slack" else customer.sender  # Slack: per workspace
    assert (link.channel, link.channel_user_id) == (channel, chat_user_id)
    assert review_index_customer(channels, customer.sender) == (str(account_id), f"{channel} link")


def review_index_customer(channels: ChannelAssistant, sender: str) -> tuple:
    """(customer id, how verified) of a conversation in the console's review index."""
    engine = sa.create_engine(f"sqlite:///{channels.running.log_path.parent / 'tracker.db'}", future=True)
    try:
        with engine.connect() as conn:
            return tuple(conn.execute(sa.text(
                "SELECT customer_id, verified_by FROM conversation_summary WHERE sender_id = :s"),
                {"s": sender}).one())
    finally:
        engine.dispose()


def test_an_unknown_address_gets_the_same_answer_as_a_known_one(channels: ChannelAssistant, store: Store) -> None:
    _, email = store.create_customer()
    known, unknown = slack_user(channels), slack_user(channels)
    nobody = f"nobody-{uuid.uuid4().hex[:8]}@test.example"
    known.says("verify me")
    unknown.says("verify me")
    assert known.says(email).replace(email, "ADDRESS") == unknown.says(nobody).replace(nobody, "ADDRESS")
    with store.factory() as session:
        mailed = session.execute(sa.select(sa.func.count()).select_from(OutboxNotification)
                                 .where(OutboxNotification.recipient_email == nobody)).scalar_one()
    assert mailed == 0


def test_an_expired_link_no_longer_lets_the_chat_act_for_the_account(channels: ChannelAssistant,
                                                                     store: Store) -> None:
    account_id, email = store.create_customer()
    customer = telegram_user(channels)
    customer.says("verify me please")
    customer.says(email)
    assert f"verified as {email}" in customer.says(store.latest_code(email))

    with write_session(store.factory) as session:  # 90 days later
        session.execute(sa.update(ChannelLink).where(ChannelLink.account_id == account_id)
                        .values(expires_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)))
    reply = customer.says("change my account currency pls")
    assert "Which currency" not in reply
    assert store.account(account_id).currency == "EUR"
