"""Slack: Rasa's Slack channel with a configurable Web API and retry de-duplication.

Rasa's stock ``SlackInput`` checks the request signature (kept here), but runs
a retried event again unless Slack's retry reason is ``http_timeout``, and its
Web API base URL is fixed. This channel:

* takes its secrets from the environment (``SLACK_BOT_TOKEN``,
  ``SLACK_SIGNING_SECRET``); without them its routes answer 503;
* verifies ``X-Slack-Signature`` (v0, HMAC-SHA256 of ``v0:timestamp:body``,
  five-minute window) before anything else;
* remembers the ``event_id`` of every event it accepts (and the
  ``trigger_id`` of every button click) for an hour, so a redelivery, with or
  without ``X-Slack-Retry-Num``, never runs a turn twice. The memory is per
  process, or shared by every Rasa instance in Redis when ``REDIS_URL`` is
  set (channels/dedup.py); Redis unreachable: 503, and Slack retries later;
* posts to ``SLACK_API_BASE_URL`` (default ``https://slack.com/api/``), turns
  buttons into Block Kit buttons whose clicks come back as ``block_actions``;
* puts the Slack user under metadata ``channel_user`` (not a verified
  identity) as ``team_id:user_id`` (:func:`slack_user_id`: user ids are only
  unique within a workspace), marked ``shared`` unless the message is a direct
  message, so a channel link (and with it any account detail) never acts in
  a channel others read;
* stores each event in the durable inbox before answering 200 (channels/inbox.py):
  a turn an instance could not finish is run by another one, once (message id
  ``slack:<event or click id>``, channels/idempotency.py).
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
from http import HTTPStatus
from typing import Any, Awaitable, Callable, Dict, List, Optional, Set, Text

from rasa.core.channels.channel import OutputChannel, UserMessage
from rasa.core.channels.slack import SlackBot, SlackInput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from slack_sdk.web.async_client import AsyncWebClient

from channels.common import (
    channel_user_metadata,
    env_value,
    max_message_chars,
    not_configured_blueprint,
    too_long_text,
)
from channels.dedup import DedupUnavailable, RecentIds, SeenIds, dedup_unavailable, recent_ids
from channels.idempotency import IdempotentTurns, tracker_lookup
from channels.inbox import Inbox, InboxEntry, InboxWorker

logger = logging.getLogger(__name__)

CHANNEL_NAME = "slack"
DEFAULT_API_BASE_URL = "https://slack.com/api/"
RETRY_NUM_HEADER = "X-Slack-Retry-Num"
MAX_BUTTONS = 25  # Block Kit: at most 25 elements in an actions block
MAX_BUTTON_TITLE = 75


class PortalSlackBot(SlackBot):
    """Posts replies through the Web API at a configurable base URL."""

    def __init__(self, token: Text, slack_channel: Optional[Text] = None,
                 thread_id: Optional[Text] = None, proxy: Optional[Text] = None,
                 api_base_url: Text = DEFAULT_API_BASE_URL) -> None:
        super().__init__(token, slack_channel, thread_id, proxy)
        self.client = AsyncWebClient(token, base_url=api_base_url, proxy=proxy)

    async def send_text_message(self, recipient_id: Text, text: Text, **kwargs: Any) -> None:
        """One Slack message per paragraph."""
        for part in text.strip().split("\n\n"):
            await self._post_message(channel=self.slack_channel or recipient_id, text=part)

    async def send_image_url(self, recipient_id: Text, image: Text, **kwargs: Any) -> None:
        """An image block (the URL must be reachable by Slack)."""
        await self._post_message(
            channel=self.slack_channel or recipient_id, text=image,
            blocks=[{"type": "image", "image_url": image, "alt_text": "image"}],
        )

    async def send_text_with_buttons(self, recipient_id: Text, text: Text,
                                     buttons: List[Dict[Text, Any]], **kwargs: Any) -> None:
        """A section with the text and an actions block with one button per choice."""
        elements = []
        for index, button in enumerate(buttons[:MAX_BUTTONS]):
            element: Dict[str, Any] = {
                "type": "button",
                "action_id": f"choice_{index}",
                "text": {"type": "plain_text", "text": button["title"][:MAX_BUTTON_TITLE]},
            }
            if button.get("url"):
                element["url"] = button["url"]
            else:
                element["value"] = button["payload"]
            elements.append(element)
        blocks = [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
            {"type": "actions", "elements": elements},
        ]
        await self._post_message(channel=self.slack_channel or recipient_id, text=text,
                                 blocks=blocks)

    async def send_custom_json(self, recipient_id: Text, json_message: Dict[Text, Any],
                               **kwargs: Any) -> None:
        """A ``chat.postMessage`` with the custom payload's arguments."""
        message = dict(json_message)
        channel = message.pop("channel", self.slack_channel or recipient_id)
        await self._post_message(channel=channel, **message)


def slack_user_id(team_id: Optional[str], user_id: Optional[str]) -> Optional[str]:
    """The chat identity of a Slack user: ``team_id:user_id``; None without both."""
    return f"{team_id}:{user_id}" if team_id and user_id else None


def _is_direct_message(channel_id: Optional[str], channel_type: Optional[str]) -> bool:
    """True for a direct message with the bot (Slack's ``im``; DM channel ids start with D)."""
    if channel_type:
        return channel_type == "im"
    return bool(channel_id) and str(channel_id).startswith("D")


def _content_type(request: Request) -> str:
    return (request.headers.get("content-type") or "").split(";")[0].strip().lower()


class PortalSlackInput(SlackInput):
    """Slack Events API and interactivity webhook; see the module docstring."""

    @classmethod
    def name(cls) -> Text:
        return CHANNEL_NAME

    def __init__(
        self,
        slack_token: Optional[Text],
        slack_signing_secret: Optional[Text],
        api_base_url: Text = DEFAULT_API_BASE_URL,
        slack_channel: Optional[Text] = None,
        proxy: Optional[Text] = None,
        use_threads: bool = False,
        conversation_granularity: Text = "sender",
        max_chars: int = 2000,
        seen: Optional[SeenIds] = None,
        inbox: Optional[InboxWorker] = None,
        turns: Optional[IdempotentTurns] = None,
    ) -> None:
        self.missing = [name for name, value in (("SLACK_BOT_TOKEN", slack_token),
                                                 ("SLACK_SIGNING_SECRET", slack_signing_secret))
                        if not value]
        super().__init__(
            slack_token or "", slack_channel, proxy, use_threads=use_threads,
            slack_signing_secret=slack_signing_secret or "",
            conversation_granularity=conversation_granularity,
        )
        self.api_base_url = api_base_url if api_base_url.endswith("/") else api_base_url + "/"
        self.max_chars = max_chars
        self.seen = seen or RecentIds()
        self.inbox = inbox  # None: turns run in this process only (tests of the webhook alone)
        self.turns = turns or IdempotentTurns()
        self._tasks: Set[asyncio.Task] = set()

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> "PortalSlackInput":
        """Secrets and the API URL from the environment, the rest from credentials.yml."""
        credentials = credentials or {}
        return cls(
            slack_token=env_value("SLACK_BOT_TOKEN"),
            slack_signing_secret=env_value("SLACK_SIGNING_SECRET"),
            api_base_url=env_value("SLACK_API_BASE_URL") or DEFAULT_API_BASE_URL,
            slack_channel=credentials.get("slack_channel"),
            proxy=credentials.get("proxy"),
            use_threads=bool(credentials.get("use_threads", False)),
            conversation_granularity=credentials.get("conversation_granularity", "sender"),
            max_chars=max_message_chars(),
            seen=recent_ids(CHANNEL_NAME),
            inbox=(InboxWorker(Inbox.from_env(), CHANNEL_NAME)
                   if env_value("SLACK_BOT_TOKEN") and env_value("SLACK_SIGNING_SECRET") else None),
        )

    def _validate_credentials(self) -> None:
        # An unconfigured channel is allowed: its routes answer 503 instead.
        if not self.missing:
            super()._validate_credentials()

    def get_output_channel(self, channel: Optional[Text] = None,
                           thread_id: Optional[Text] = None) -> OutputChannel:
        """Replies go to ``channel`` (the conversation's), through the configured API."""
        return PortalSlackBot(self.slack_token, channel or self.slack_channel, thread_id,
                              self.proxy, self.api_base_url)

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        """``/webhooks/slack/webhook`` for events and button clicks."""
        if self.missing:
            return not_configured_blueprint("portal_slack_webhook", "Slack", self.missing)
        blueprint = Blueprint("portal_slack_webhook", __name__)

        @blueprint.listener("after_server_start")
        async def start_inbox(app: Any, _loop: Any) -> None:
            if self.inbox is not None:
                lookup = tracker_lookup(app)

                async def handle(entry: InboxEntry) -> None:
                    message_id = f"{CHANNEL_NAME}:{entry.event_key}"

                    async def turn() -> list:
                        await self._deliver(entry.message, on_new_message, message_id)
                        return []
                    await self.turns.run(entry.conversation, message_id, lookup, turn)
                self.inbox.start(handle)

        @blueprint.listener("before_server_stop")
        async def close_seen(_app: Any, _loop: Any) -> None:
            if self.inbox is not None:
                await self.inbox.stop()
            await self.turns.claims.close()
            await self.seen.close()

        @blueprint.route("/", methods=["GET"])
        async def health(_request: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @blueprint.route("/webhook", methods=["POST"])
        async def webhook(request: Request) -> HTTPResponse:
            if not self.is_request_from_slack_authentic(request):
                logger.warning("Slack request refused: bad or missing signature")
                return response.json({"error": "invalid Slack signature"},
                                     status=HTTPStatus.UNAUTHORIZED)
            kind = _content_type(request)
            try:
                if kind == "application/json":
                    return await self._handle_event(request, on_new_message)
                if kind == "application/x-www-form-urlencoded":
                    return await self._handle_interaction(request, on_new_message)
            except (ValueError, KeyError, TypeError, AttributeError):
                logger.warning("Slack request refused: malformed %s payload", kind)
                return response.json({"error": "malformed payload"},
                                     status=HTTPStatus.BAD_REQUEST)
            return response.json({"error": "unsupported content type"},
                                 status=HTTPStatus.UNSUPPORTED_MEDIA_TYPE)

        return blueprint

    async def _handle_event(self, request: Request,
                            on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> HTTPResponse:
        """An Events API callback: a URL check, or a message to the bot."""
        body = json.loads(request.body)
        if body.get("type") == "url_verification":
            return response.json({"challenge": body.get("challenge")})
        event = body.get("event") or {}
        if body.get("type") != "event_callback" or not self._is_user_message(body) \
                or event.get("subtype"):
            return response.text("ignored: not a user message")
        metadata = self._event_metadata(body)
        if not self._is_supported_channel(body, metadata):
            return response.text("ignored: channel not supported")
        text = html.unescape(self._sanitize_user_message(event["text"], metadata["users"]))
        sender_id = self._get_conversation_id(event.get("user"), metadata.get("out_channel"),
                                              metadata.get("thread_id"))
        key = f"event:{body['event_id']}" if body.get("event_id") else None
        chat_user = slack_user_id(body.get("team_id") or event.get("team"), event.get("user"))
        direct = _is_direct_message(event.get("channel"), event.get("channel_type"))
        return await self._accept(request, on_new_message, key, text, sender_id, chat_user,
                                  metadata, shared=not direct)

    async def _handle_interaction(self, request: Request,
                                  on_new_message: Callable[[UserMessage], Awaitable[Any]]
                                  ) -> HTTPResponse:
        """A ``block_actions`` payload: the click of one of our buttons."""
        payload = json.loads(request.form.get("payload"))
        if not self._is_interactive_message(payload):
            return response.text("ignored: unsupported interaction")
        action = payload["actions"][0]
        value = self._get_interactive_response(action)
        if value is None:
            return response.text("ignored: link button")
        user_id = payload["user"]["id"]
        metadata = self._interaction_metadata(payload)
        sender_id = self._get_conversation_id(user_id, metadata.get("out_channel"),
                                              metadata.get("thread_id"))
        click_id = payload.get("trigger_id") or action.get("action_ts")
        key = f"action:{click_id}" if click_id else None
        team = (payload.get("team") or {}).get("id") or payload["user"].get("team_id")
        channel = payload.get("channel") or {}
        direct = channel.get("name") == "directmessage" or _is_direct_message(channel.get("id"), None)
        return await self._accept(request, on_new_message, key, value, sender_id,
                                  slack_user_id(team, user_id), metadata, shared=not direct)

    @staticmethod
    def _event_metadata(body: Dict[str, Any]) -> Dict[str, Any]:
        """Where to answer an event: its channel and thread, and the bot's own user ids."""
        event = body.get("event") or {}
        users = list(body.get("authed_users") or [])
        users += [auth.get("user_id") for auth in body.get("authorizations") or []
                  if isinstance(auth, dict) and auth.get("user_id")]
        return {"out_channel": event.get("channel"),
                "thread_id": event.get("thread_ts", event.get("ts")),
                "users": users}

    @staticmethod
    def _interaction_metadata(payload: Dict[str, Any]) -> Dict[str, Any]:
        """Where to answer a button click: the channel and thread of the clicked message."""
        message = payload.get("message") or {}
        return {"out_channel": (payload.get("channel") or {}).get("id"),
                "thread_id": message.get("thread_ts", message.get("ts")),
                "users": []}

    async def _accept(self, request: Request, on_new_message: Callable[[UserMessage], Awaitable[Any]],
                      key: Optional[str], text: str, sender_id: Optional[str],
                      slack_user: Optional[str], metadata: Dict[str, Any],
                      shared: bool = True) -> HTTPResponse:
        """Run the turn in the background once per event; answer Slack at once."""
        retry = request.headers.get(RETRY_NUM_HEADER)
        if key is None:
            logger.warning("Slack event without an id: it cannot be de-duplicated")
        else:
            try:
                first = await self.seen.claim(key)
            except DedupUnavailable:
                return dedup_unavailable()
            if not first:
                logger.info("Slack %s already handled; ignoring delivery (retry %s)", key, retry)
                return response.text("already handled", headers={"X-Slack-No-Retry": "1"})
        if retry:
            logger.info("Slack retry #%s of %s, not seen before: handling it", retry, key)
        if not sender_id or not slack_user:
            return response.text("ignored: no sender")
        message = {"text": text, "sender_id": sender_id, "slack_user": slack_user, "metadata": metadata,
                   "shared": shared}
        if self.inbox is not None and key is not None:
            try:
                await self.inbox.put(key, sender_id, message)  # durable before the 200
                return response.text("")
            except Exception:  # noqa: BLE001 - the event is marked seen: run it here rather than lose it
                logger.exception("Slack %s could not be stored in the inbox; running it in this process", key)
        task = asyncio.create_task(self._run(self._deliver(message, on_new_message), key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return response.text("")

    async def _deliver(self, message: Dict[str, Any], on_new_message: Callable[[UserMessage], Awaitable[Any]],
                       message_id: Optional[str] = None) -> None:
        """Run the turn of an accepted event (or answer that it is too long)."""
        text, sender_id, metadata = message["text"], message["sender_id"], message["metadata"]
        output = self.get_output_channel(metadata.get("out_channel"),
                                         metadata.get("thread_id") if self.use_threads else None)
        if len(text) > self.max_chars:
            await output.send_text_message(sender_id, too_long_text(self.max_chars))
            return
        message_metadata = dict(metadata, **channel_user_metadata(CHANNEL_NAME, message["slack_user"],
                                                                  shared=message.get("shared", True)))
        await on_new_message(UserMessage(text, output, sender_id, input_channel=self.name(),
                                         metadata=message_metadata, message_id=message_id))

    @staticmethod
    async def _run(turn: Awaitable[Any], key: Optional[str]) -> None:
        try:
            await turn
        except Exception:  # noqa: BLE001 - a background turn has nobody else to report to
            logger.exception("Slack %s could not be handled", key)
