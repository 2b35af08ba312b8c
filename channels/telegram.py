"""Telegram: Rasa's Telegram channel, working, authenticated and pointed at a configurable API.

Rasa's stock ``TelegramInput`` answers every update with HTTP 500 "Event loop
is closed" on this install: it creates the bot's HTTP session inside a
throw-away ``asyncio.run()`` at start-up and reuses it after that loop closed.
It also accepts unauthenticated webhook calls and asks Telegram ``getMe`` on
every update. This channel:

* takes its secrets from the environment (``TELEGRAM_BOT_TOKEN``,
  ``TELEGRAM_WEBHOOK_SECRET``); without them its routes answer 503;
* creates the bot (and its HTTP session) lazily inside the server's own event
  loop and closes it when the server stops;
* refuses to start with a webhook secret under 32 characters, refuses any
  update whose ``X-Telegram-Bot-Api-Secret-Token`` header is not the webhook
  secret, and registers the webhook with that secret at start-up
  when ``TELEGRAM_WEBHOOK_URL`` is set;
* talks to ``TELEGRAM_API_BASE_URL`` (default ``https://api.telegram.org``);
* handles private chats only (text messages and button presses), ignores edits,
  and never handles one ``update_id`` twice (Telegram re-sends updates): the
  memory is per process, or shared by every Rasa instance in Redis when
  ``REDIS_URL`` is set (channels/dedup.py); Redis unreachable: 503, and
  Telegram re-sends the update later;
* sends buttons as an inline keyboard, one button per row, and acknowledges
  each press (``answerCallbackQuery``) so the client stops its spinner;
* puts the Telegram user under metadata ``channel_user`` (not a verified identity);
* stores each update in the durable inbox before answering 200 (channels/inbox.py):
  an update an instance could not finish is run by another one, once (message id
  ``telegram:<update id>``, channels/idempotency.py).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
from http import HTTPStatus
from typing import Any, Awaitable, Callable, Dict, List, Optional, Text

from aiogram import Bot
from aiogram.bot.api import TelegramAPIServer
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from rasa.core.channels.channel import InputChannel, UserMessage
from rasa.core.channels.telegram import TelegramOutput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from channels.common import (
    channel_user_metadata,
    env_value,
    max_message_chars,
    not_configured_blueprint,
    too_long_text,
)
from channels.idempotency import IdempotentTurns, tracker_lookup
from channels.inbox import Inbox, InboxEntry, InboxWorker
from channels.dedup import DedupUnavailable, RecentIds, SeenIds, dedup_unavailable, recent_ids

logger = logging.getLogger(__name__)

CHANNEL_NAME = "telegram"
DEFAULT_API_BASE_URL = "https://api.telegram.org"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# Telegram: 1-256 characters, A-Z, a-z, 0-9, _ and -; we want at least 32 (guessing must be hopeless).
_SECRET_FORMAT = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
MIN_SECRET_CHARS = 32
MAX_CALLBACK_DATA_BYTES = 64
START_COMMAND = "/start"
START_PAYLOAD = "/greet"
ALLOWED_UPDATES = ["message", "callback_query"]


class PortalTelegramOutput(TelegramOutput):
    """A Telegram bot at a configurable API server; buttons as a one-per-row inline keyboard."""

    def __init__(self, access_token: Text, server: TelegramAPIServer) -> None:
        Bot.__init__(self, access_token, server=server)

    async def send_text_with_buttons(self, recipient_id: Text, text: Text,
                                     buttons: List[Dict[Text, Any]], **kwargs: Any) -> None:
        """The text with an inline keyboard; link buttons open their URL."""
        keyboard = InlineKeyboardMarkup()
        for button in buttons:
            if button.get("url"):
                keyboard.row(InlineKeyboardButton(button["title"], url=button["url"]))
            elif len(button["payload"].encode()) <= MAX_CALLBACK_DATA_BYTES:
                keyboard.row(InlineKeyboardButton(button["title"], callback_data=button["payload"]))
            else:
                logger.warning("Telegram button %r left out: its payload is over %d bytes",
                               button["title"], MAX_CALLBACK_DATA_BYTES)
        await self.send_message(recipient_id, text, reply_markup=keyboard)

    async def close_session(self) -> None:
        """Close the HTTP session, if one was opened."""
        session = self._session
        if session is not None and not session.closed:
            await session.close()


class PortalTelegramInput(InputChannel):
    """Telegram webhook input channel; see the module docstring."""

    @classmethod
    def name(cls) -> Text:
        return CHANNEL_NAME

    def __init__(
        self,
        access_token: Optional[Text],
        webhook_secret: Optional[Text],
        api_base_url: Text = DEFAULT_API_BASE_URL,
        bot_username: Optional[Text] = None,
        webhook_url: Optional[Text] = None,
        max_chars: int = 2000,
        seen: Optional[SeenIds] = None,
        inbox: Optional[InboxWorker] = None,
        turns: Optional[IdempotentTurns] = None,
    ) -> None:
        self.missing = [name for name, value in (("TELEGRAM_BOT_TOKEN", access_token),
                                                 ("TELEGRAM_WEBHOOK_SECRET", webhook_secret))
                        if not value]
        if webhook_secret and not _SECRET_FORMAT.match(webhook_secret):
            raise ValueError("TELEGRAM_WEBHOOK_SECRET must be 1-256 characters of A-Z, a-z, "
                             "0-9, _ and -")
        if webhook_secret and len(webhook_secret) < MIN_SECRET_CHARS:
            raise ValueError(f"TELEGRAM_WEBHOOK_SECRET is {len(webhook_secret)} characters long; it "
                             f"must be at least {MIN_SECRET_CHARS} (for example: python -c "
                             "\"import secrets; print(secrets.token_urlsafe(32))\")")
        self.access_token = access_token
        self.webhook_secret = webhook_secret
        self.server = TelegramAPIServer.from_base(api_base_url)
        self.bot_username = (bot_username or "").lstrip("@") or None
        self.webhook_url = webhook_url
        self.max_chars = max_chars
        self.seen = seen or RecentIds()
        self.inbox = inbox  # None: updates run while their webhook call waits (tests of the webhook alone)
        self.turns = turns or IdempotentTurns()
        self._output: Optional[PortalTelegramOutput] = None

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> "PortalTelegramInput":
        """Everything from the environment; credentials.yml only documents the keys."""
        return cls(
            access_token=env_value("TELEGRAM_BOT_TOKEN"),
            webhook_secret=env_value("TELEGRAM_WEBHOOK_SECRET"),
            api_base_url=env_value("TELEGRAM_API_BASE_URL") or DEFAULT_API_BASE_URL,
            bot_username=env_value("TELEGRAM_BOT_USERNAME"),
            webhook_url=env_value("TELEGRAM_WEBHOOK_URL"),
            max_chars=max_message_chars(),
            seen=recent_ids(CHANNEL_NAME),
            inbox=(InboxWorker(Inbox.from_env(), CHANNEL_NAME)
                   if env_value("TELEGRAM_BOT_TOKEN") and env_value("TELEGRAM_WEBHOOK_SECRET") else None),
        )

    def get_output_channel(self) -> PortalTelegramOutput:
        """The bot, created on first use inside the running event loop."""
        if self._output is None:
            self._output = PortalTelegramOutput(self.access_token, self.server)
        return self._output

    def secret_matches(self, request: Request) -> bool:
        """True if the request carries our webhook secret (constant-time comparison)."""
        sent = request.headers.get(SECRET_HEADER, "")
        return hmac.compare_digest(sent.encode(), (self.webhook_secret or "").encode())

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        """``/webhooks/telegram/webhook`` for updates."""
        if self.missing:
            return not_configured_blueprint("portal_telegram_webhook", "Telegram", self.missing)
        blueprint = Blueprint("portal_telegram_webhook", __name__)

        @blueprint.listener("after_server_start")
        async def register_webhook(app: Any, _loop: Any) -> None:
            if self.webhook_url:
                asyncio.create_task(self.set_webhook())
            if self.inbox is not None:
                lookup = tracker_lookup(app)

                async def handle(entry: InboxEntry) -> None:
                    message_id = f"{CHANNEL_NAME}:{entry.event_key}"

                    async def turn() -> list:
                        await self.handle_update(entry.message, on_new_message, message_id)
                        return []
                    await self.turns.run(entry.conversation, message_id, lookup, turn)
                self.inbox.start(handle)

        @blueprint.listener("before_server_stop")
        async def close_bot(_app: Any, _loop: Any) -> None:
            if self.inbox is not None:
                await self.inbox.stop()
            if self._output is not None:
                await self._output.close_session()
            await self.turns.claims.close()
            await self.seen.close()

        @blueprint.route("/", methods=["GET"])
        async def health(_request: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @blueprint.route("/webhook", methods=["POST"])
        async def webhook(request: Request) -> HTTPResponse:
            if not self.secret_matches(request):
                logger.warning("Telegram update refused: the webhook secret header is missing "
                               "or wrong")
                return response.json({"error": "invalid secret token"},
                                     status=HTTPStatus.UNAUTHORIZED)
            try:
                update = json.loads(request.body)
                update_id = int(update["update_id"])
            except (ValueError, KeyError, TypeError):
                return response.json({"error": "not a Telegram update"},
                                     status=HTTPStatus.BAD_REQUEST)
            try:
                first = await self.seen.claim(update_id)
            except DedupUnavailable:
                return dedup_unavailable()
            if not first:
                logger.info("Telegram update %s already handled; ignoring it", update_id)
                return response.text("already handled")
            if self.inbox is not None:
                try:
                    await self.inbox.put(str(update_id), _conversation_of(update, update_id), update)
                    return response.text("ok")  # durable: the inbox worker runs it
                except Exception:  # noqa: BLE001 - marked seen: run it here rather than lose it
                    logger.exception("Telegram update %s could not be stored in the inbox; running it "
                                     "in this process", update_id)
            try:
                await self.handle_update(update, on_new_message)
            except Exception:  # noqa: BLE001 - a 5xx would make Telegram re-send the update
                logger.exception("Telegram update %s could not be handled", update_id)
            return response.text("ok")

        return blueprint

    async def set_webhook(self) -> bool:
        """Tell Telegram where to send updates, with our secret; False if that failed."""
        try:
            await self.get_output_channel().request("setWebhook", {
                "url": self.webhook_url,
                "secret_token": self.webhook_secret,
                "allowed_updates": json.dumps(ALLOWED_UPDATES),
            })
        except Exception as error:  # noqa: BLE001 - start-up must not fail on it
            logger.error("Telegram webhook registration failed: %s", type(error).__name__)
            return False
        logger.info("Telegram webhook registered")
        return True

    def _command_text(self, text: str) -> str:
        """``/start`` greets; ``/cmd@OurBot`` (group-style commands) loses the bot's name."""
        if self.bot_username:
            text = text.replace(f"@{self.bot_username}", "").strip()
        return START_PAYLOAD if text == START_COMMAND else text

    async def handle_update(self, update: Dict[str, Any],
                            on_new_message: Callable[[UserMessage], Awaitable[Any]],
                            message_id: Optional[str] = None) -> None:
        """Run the turn of one update: a text message or a button press in a private chat."""
        output = self.get_output_channel()
        callback = update.get("callback_query")
        if callback:
            await self._answer_callback(output, callback.get("id"))
            chat = (callback.get("message") or {}).get("chat") or {}
            user, text = callback.get("from") or {}, callback.get("data")
        else:
            message = update.get("message") or {}
            chat, user = message.get("chat") or {}, message.get("from") or {}
            text = message.get("text")
        if not isinstance(text, str) or not text.strip() or chat.get("id") is None:
            return
        if chat.get("type") != "private":
            logger.info("Telegram update from a %s chat ignored: private chats only",
                        chat.get("type"))
            return
        sender_id = str(chat["id"])
        if len(text) > self.max_chars:
            await output.send_text_message(sender_id, too_long_text(self.max_chars))
            return
        await on_new_message(UserMessage(
            self._command_text(text), output, sender_id, input_channel=self.name(),
            metadata=channel_user_metadata(CHANNEL_NAME, user.get("id", chat["id"])),
            message_id=message_id,
        ))

    @staticmethod
    async def _answer_callback(output: PortalTelegramOutput, callback_id: Optional[str]) -> None:
        if not callback_id:
            return
        try:
            await output.answer_callback_query(callback_id)
        except Exception as error:  # noqa: BLE001 - the spinner is cosmetic; the turn goes on
            logger.warning("answerCallbackQuery failed: %s", type(error).__name__)


def _conversation_of(update: Dict[str, Any], update_id: int) -> str:
    """The chat an update belongs to (its conversation id), for running one chat's updates in order."""
    message = (update.get("callback_query") or {}).get("message") or update.get("message") or {}
    chat_id = (message.get("chat") or {}).get("id")
    return str(chat_id) if chat_id is not None else f"update-{update_id}"
