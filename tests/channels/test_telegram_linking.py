"""Issue #12 over Telegram: a TFA owner links a chat with the e-mailed code and the app's code, lists and unlinks it."""

from __future__ import annotations

from pathlib import Path
from typing import List

import pyotp
import pytest

from accounts.channel_links import find_linked_actor
from accounts.deps import Deps
from tests.channels.conftest import ChannelAssistant
from tests.channels.test_telegram import new_chat_id, text_update
from tests.operations.conftest import Store

pytestmark = pytest.mark.slow


class TelegramUser:
    """A Telegram user chatting with the assistant; each message is answered before the next."""

    def __init__(self, channels: ChannelAssistant) -> None:
        self.channels = channels
        self.chat = new_chat_id()
        self.received = 0

    def says(self, text: str, replies: int = 1) -> str:
        assert self.channels.telegram_update(text_update(self.chat, text)).status_code == 200
        self.received += replies
        sent = self.channels.telegram.wait_for(self.channels.telegram.messages_to(self.chat), count=self.received)
        return "\n".join(call.params["text"] for call in sent[self.received - replies:self.received])


@pytest.fixture(scope="module")
def store(channels: ChannelAssistant) -> Store:
    running = channels.running
    folder = Path(running.log_path).parent  # assistant_env: accounts.db and mail/ beside the log
    return Store(running.accounts_db_url or f"sqlite:///{folder / 'accounts.db'}", mail_dir=folder / "mail")


def linked(store: Store, chat: int) -> List[str]:
    actor = find_linked_actor(Deps(session_factory=store.factory), "telegram", str(chat))
    return [] if actor is None else [actor.member_email]


def test_a_tfa_owner_links_telegram_with_both_codes_then_unlinks_it(channels: ChannelAssistant, store: Store):
    account_id, owner = store.create_customer()
    secret = store.enable_tfa(account_id, owner)
    user = TelegramUser(channels)

    assert "primary address" in user.says("can u verify me")
    assert "6-digit code" in user.says(f"its {owner}")
    asked = user.says(store.latest_code(owner))
    assert "authenticator app" in asked
    assert linked(store, user.chat) == []  # the e-mailed code alone links nothing
    assert "isn't right" in user.says("verified", replies=2)  # and the question again
    assert linked(store, user.chat) == []

    done = user.says(pyotp.TOTP(secret).now())

    assert f"verified as {owner}" in done and "90 days" in done
    assert linked(store, user.chat) == [owner]
    assert "channel_linked" in store.notifications(account_id)

    listing = user.says("which chats are linked?")
    assert "Telegram" in listing and owner in listing
    assert "removed 1 Telegram link" in user.says("unlink telegram")
    assert linked(store, user.chat) == []
