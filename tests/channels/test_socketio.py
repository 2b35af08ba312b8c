"""The widget's Socket.IO channel on the wire: identity, session binding, origin and size checks."""

from __future__ import annotations

import datetime as dt
import json
import queue
from typing import Any, Callable, Dict, List, Optional

import pytest
import requests
import socketio

from actions import messages
from channels.rest import verified_sender_id
from supportbot.portal_token import PortalTokenVerifier
from tests.channels.conftest import ChannelAssistant

pytestmark = pytest.mark.slow

REPLY_SECONDS = 20
# Metadata Rasa itself adds to every message.
RASA_METADATA = {"model_id", "assistant_id"}


class WidgetClient:
    """A Socket.IO client that speaks like rasa-webchat (events, customData)."""

    def __init__(self, channels: ChannelAssistant, token: Optional[str] = None,
                 token_in: str = "query", origin: Optional[str] = None) -> None:
        self.url = channels.rasa_url
        self.token, self.token_in = token, token_in
        self.origin = origin if origin is not None else channels.web_url
        self.sio = socketio.Client(reconnection=False)
        self.replies: "queue.Queue[Dict[str, Any]]" = queue.Queue()
        self.confirmations: "queue.Queue[Any]" = queue.Queue()
        self.disconnected: "queue.Queue[bool]" = queue.Queue()
        self.sio.on("bot_uttered", self.replies.put)
        self.sio.on("session_confirm", self.confirmations.put)
        self.sio.on("disconnect", lambda *args: self.disconnected.put(True))

    def connect(self) -> "WidgetClient":
        url, auth = self.url, None
        if self.token and self.token_in == "query":
            url = f"{self.url}/?token={self.token}"
        elif self.token:
            auth = {"token": self.token}
        self.sio.connect(url, headers={"Origin": self.origin}, auth=auth,
                         transports=["polling"], wait_timeout=10)
        return self

    def start_session(self, session_id: Optional[str] = None) -> str:
        """``session_request`` as the widget sends it; the session id the server confirms."""
        self.sio.emit("session_request", {"session_id": session_id})
        return self.confirmations.get(timeout=REPLY_SECONDS)["session_id"]

    def say(self, text: str, custom_data: Optional[Dict[str, Any]] = None,
            session_id: Optional[str] = None) -> None:
        custom = custom_data if custom_data is not None else (
            {"token": self.token} if self.token else {})
        self.sio.emit("user_uttered", {"message": text, "customData": custom,
                                       "session_id": session_id})

    def reply_where(self, predicate: Callable[[Dict[str, Any]], bool]) -> Dict[str, Any]:
        """The first reply (from now) that matches; fails after REPLY_SECONDS."""
        seen: List[Dict[str, Any]] = []
        while True:
            try:
                reply = self.replies.get(timeout=REPLY_SECONDS)
            except queue.Empty:
                raise AssertionError(f"no matching reply; got {seen}") from None
            if predicate(reply):
                return reply
            seen.append(reply)

    def close(self) -> None:
        # Not sio.disconnect(): over long-polling it waits for the pending poll
        # (up to 45 s); closing the engine.io session ends the socket at once.
        if self.sio.connected:
            self.sio.eio.disconnect(abort=True)


def text_has(fragment: str) -> Callable[[Dict[str, Any]], bool]:
    return lambda reply: fragment in reply.get("text", "")


@pytest.fixture
def clients():
    opened: List[WidgetClient] = []

    def open_client(channels: ChannelAssistant, **kwargs: Any) -> WidgetClient:
        client = WidgetClient(channels, **kwargs)
        opened.append(client)
        return client.connect()

    yield open_client
    for client in opened:
        client.close()


def user_events(channels: ChannelAssistant, sender_id: str) -> List[Dict[str, Any]]:
    return [event for event in channels.tracker_events(sender_id) if event["event"] == "user"]


def test_a_customer_gets_their_own_conversation_in_every_tab_whatever_session_they_ask_for(
    channels: ChannelAssistant, portal: PortalTokenVerifier, clients
):
    token = portal.issue("41", "ana@demo.example")
    someone_else = verified_sender_id("web", portal.verify(portal.issue("42", "bo@demo.example")))
    own = verified_sender_id("web", portal.verify(token))

    first_tab = clients(channels, token=token, token_in="auth")
    assert first_tab.start_session(someone_else) == own
    second_tab = clients(channels, token=token, token_in="query")
    assert second_tab.start_session(None) == own

    first_tab.say("what is two-factor authentication?")
    for tab in (first_tab, second_tab):
        assert tab.reply_where(text_has("one-time password"))


def test_the_conversation_holds_the_verified_identity_and_nothing_the_client_made_up(
    channels: ChannelAssistant, portal: PortalTokenVerifier, clients
):
    token = portal.issue("43", "cy@demo.example")
    tab = clients(channels, token=token)
    sender = tab.start_session()
    tab.say("which account types do you have?", custom_data={
        "token": token,
        "verified_identity": {"account_id": "1", "email": "owner@demo.example",
                              "source": "portal_token"},
        "account_id": "1",
    })
    tab.reply_where(text_has("personal and business"))

    [event] = user_events(channels, sender)
    assert event["input_channel"] == "socketio"
    identity = event["metadata"].pop("verified_identity")
    assert set(event["metadata"]) <= RASA_METADATA
    assert (identity["account_id"], identity["email"]) == ("43", "cy@demo.example")
    assert (identity["source"], identity["channel"]) == ("portal_token", "socketio")
    assert token not in json.dumps(channels.tracker_events(sender))
    assert token not in channels.log_text()


def handshake(channels: ChannelAssistant, origin: str, token: Optional[str] = None) -> str:
    """Open a Socket.IO session by hand (engine.io v4 long-polling, as the widget starts).

    Returns the server's answer to the namespace connect ("40..." accepted,
    "44..." refused), or "HTTP <status>" if the engine.io handshake is refused.
    (python-socketio's client is not used here: after a refusal it waits for
    its pending poll, up to 45 s.)
    """
    url, headers = f"{channels.rasa_url}/socket.io/", {"Origin": origin}
    params = {"EIO": "4", "transport": "polling", **({"token": token} if token else {})}
    opened = requests.get(url, params=params, headers=headers, timeout=10)
    if opened.status_code != 200:
        return f"HTTP {opened.status_code}"
    params["sid"] = json.loads(opened.text[1:])["sid"]
    requests.post(url, params=params, headers=headers, data="40", timeout=10).raise_for_status()
    answer = requests.get(url, params=params, headers=headers, timeout=10)
    requests.post(url, params=params, headers=headers, data="1", timeout=10)  # engine.io close
    return answer.text


def test_only_a_valid_token_from_an_allowed_page_can_connect(
    channels: ChannelAssistant, portal: PortalTokenVerifier
):
    yesterday = lambda: dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)  # noqa: E731
    forged = PortalTokenVerifier("not-the-portal-secret-" + "z" * 32).issue("41", "ana@demo.example")
    expired = PortalTokenVerifier(portal.secret, clock=yesterday).issue("41", "ana@demo.example")
    valid = portal.issue("41", "ana@demo.example")

    assert handshake(channels, channels.web_url, valid).startswith("40")
    assert handshake(channels, channels.web_url).startswith("40")
    for token in (forged, expired):
        refused = handshake(channels, channels.web_url, token)
        assert refused.startswith("44")
        assert json.loads(refused[2:])["message"] == "invalid or expired portal token"
    assert handshake(channels, "https://evil.example", valid) == "HTTP 400"


def test_a_message_with_another_customers_token_drops_the_connection(
    channels: ChannelAssistant, portal: PortalTokenVerifier, clients
):
    tab = clients(channels, token=portal.issue("44", "di@demo.example"))
    sender = tab.start_session()
    tab.say("which account types do you have?",
            custom_data={"token": portal.issue("45", "ed@demo.example")})
    assert tab.disconnected.get(timeout=REPLY_SECONDS)
    assert tab.replies.empty()
    assert not user_events(channels, sender)


def test_a_message_with_an_expired_token_asks_the_customer_to_sign_in_again(
    channels: ChannelAssistant, portal: PortalTokenVerifier, clients
):
    tab = clients(channels, token=portal.issue("46", "fa@demo.example"))
    sender = tab.start_session()
    yesterday = lambda: dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)  # noqa: E731
    expired = PortalTokenVerifier(portal.secret, clock=yesterday).issue("46", "fa@demo.example")
    tab.say("which account types do you have?", custom_data={"token": expired})
    assert tab.reply_where(text_has("sign-in has expired"))
    assert not user_events(channels, sender)


def test_an_overlong_message_gets_a_polite_refusal(channels: ChannelAssistant, clients):
    tab = clients(channels)
    sender = tab.start_session()
    tab.say("help " * 500)
    assert tab.reply_where(text_has("too long"))
    assert not user_events(channels, sender)


def test_an_anonymous_visitor_resumes_only_a_session_the_server_issued(
    channels: ChannelAssistant, portal: PortalTokenVerifier, clients
):
    first = clients(channels)
    session = first.start_session()
    assert session.startswith("webanon-")
    first.say("switch it")
    first.reply_where(text_has(messages.CLARIFY_SUGGESTIONS))
    first.close()

    again = clients(channels)
    assert again.start_session(session) == session
    again.say("/deny")
    again.reply_where(text_has(messages.CLARIFY_GAVE_UP))
    assert [set(event["metadata"]) - RASA_METADATA for event in user_events(channels, session)] \
        == [set(), set()]

    made_up = "webanon-" + "0" * 32 + "-" + "1" * 32
    customer = verified_sender_id("web", portal.verify(portal.issue("41", "ana@demo.example")))
    for requested in (made_up, customer):
        assert clients(channels).start_session(requested) not in (requested, session)
