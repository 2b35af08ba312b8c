"""The widget's Socket.IO channel on the wire: identity, session binding, origin and size checks."""

from __future__ import annotations

import base64
import datetime as dt
import json
import queue
from typing import Any, Callable, Dict, List, Optional

import pytest
import requests
import socketio

from actions import messages
from channels.rest import verified_sender_id
from channels.widget_tickets import anonymous_conversation_id
from supportbot.portal_token import PortalTokenVerifier
from tests.channels.conftest import ChannelAssistant

pytestmark = pytest.mark.slow

REPLY_SECONDS = 20
# Metadata Rasa itself adds to every message.
RASA_METADATA = {"model_id", "assistant_id"}


class WidgetClient:
    """A Socket.IO client that speaks like rasa-webchat (events, customData)."""

    def __init__(self, channels: ChannelAssistant, token: Optional[str] = None,
                 token_in: str = "ticket", origin: Optional[str] = None) -> None:
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
        if self.token and self.token_in == "ticket":  # as the widget page does
            url = f"{self.url}/?ticket={connect_ticket(self.url, self.origin, self.token)}"
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


def connect_ticket(rasa_url: str, origin: str, token: str) -> str:
    """Exchange a portal token for a connect ticket, as widget.js does (text/plain, no preflight)."""
    answer = requests.post(f"{rasa_url}/webhooks/socketio/ticket", data=json.dumps({"token": token}),
                           headers={"Origin": origin, "Content-Type": "text/plain"}, timeout=10)
    answer.raise_for_status()
    assert answer.headers["Access-Control-Allow-Origin"] == origin
    return answer.json()["ticket"]


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
    second_tab = clients(channels, token=token, token_in="ticket")
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


def handshake(channels: ChannelAssistant, origin: Optional[str], token: Optional[str] = None,
              query: Optional[Dict[str, str]] = None) -> str:
    """Open a Socket.IO session by hand (engine.io v4 long-polling, as the widget starts).

    ``token`` goes in the CONNECT packet's auth, ``query`` in the URL. Returns
    the server's answer to the namespace connect ("40..." accepted, "44..."
    refused), or "HTTP <status>" if the engine.io handshake is refused.
    (python-socketio's client is not used here: after a refusal it waits for
    its pending poll, up to 45 s.)
    """
    url, headers = f"{channels.rasa_url}/socket.io/", {"Origin": origin} if origin else {}
    params = {"EIO": "4", "transport": "polling", **(query or {})}
    opened = requests.get(url, params=params, headers=headers, timeout=10)
    if opened.status_code != 200:
        return f"HTTP {opened.status_code}"
    params["sid"] = json.loads(opened.text[1:])["sid"]
    connect = "40" + (json.dumps({"token": token}) if token else "")
    requests.post(url, params=params, headers=headers, data=connect, timeout=10).raise_for_status()
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


def refusal(answer: str) -> str:
    assert answer.startswith("44"), answer
    return json.loads(answer[2:])["message"]


def test_a_portal_token_in_the_socket_url_is_refused_and_a_ticket_takes_its_place(
    channels: ChannelAssistant, portal: PortalTokenVerifier
):
    token = portal.issue("47", "gus@demo.example")
    assert refusal(handshake(channels, channels.web_url, query={"token": token})) \
        == "invalid or expired portal token"

    ticket = connect_ticket(channels.rasa_url, channels.web_url, token)
    assert b"gus@demo.example" not in ticket.encode() + base64.urlsafe_b64decode(ticket)
    assert handshake(channels, channels.web_url, query={"ticket": ticket}).startswith("40")
    assert refusal(handshake(channels, channels.web_url, query={"ticket": ticket})) \
        == "invalid or expired connect ticket"  # once only: a logged URL opens nothing
    forged = ticket[:-8] + ("A" * 8 if not ticket.endswith("A" * 8) else "B" * 8)
    assert refusal(handshake(channels, channels.web_url, query={"ticket": forged})) \
        == "invalid or expired connect ticket"


def test_only_an_allowed_page_gets_a_connect_ticket_for_a_valid_token(
    channels: ChannelAssistant, portal: PortalTokenVerifier
):
    url = f"{channels.rasa_url}/webhooks/socketio/ticket"
    body = json.dumps({"token": portal.issue("48", "hal@demo.example")})
    assert requests.post(url, data=body, headers={"Origin": "https://evil.example"},
                         timeout=10).status_code == 403
    assert requests.post(url, data=body, timeout=10).status_code == 403
    forged = PortalTokenVerifier("not-the-portal-secret-" + "z" * 32).issue("48", "hal@demo.example")
    refused = requests.post(url, data=json.dumps({"token": forged}),
                            headers={"Origin": channels.web_url}, timeout=10)
    assert refused.status_code == 401


def test_a_client_without_an_origin_header_cannot_connect(
    channels: ChannelAssistant, portal: PortalTokenVerifier
):
    assert refusal(handshake(channels, None)) == "origin not allowed"
    assert refusal(handshake(channels, None, token=portal.issue("49", "ida@demo.example"))) \
        == "origin not allowed"
    assert handshake(channels, channels.web_url).startswith("40")


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
    conversation = anonymous_conversation_id(session)
    assert [set(event["metadata"]) - RASA_METADATA
            for event in user_events(channels, conversation)] == [set(), set()]

    made_up = "webanon-" + "0" * 32 + "-" + "6" * 8 + "-" + "1" * 32
    customer = verified_sender_id("web", portal.verify(portal.issue("41", "ana@demo.example")))
    for requested in (made_up, customer, conversation):
        assert clients(channels).start_session(requested) not in (requested, session)


def test_the_stored_conversation_id_of_an_anonymous_visitor_is_not_their_session_key(
    channels: ChannelAssistant, clients
):
    visitor = clients(channels)
    session = visitor.start_session()
    visitor.say("which account types do you have?")
    visitor.reply_where(text_has("personal and business"))
    conversation = anonymous_conversation_id(session)
    assert [event["text"] for event in user_events(channels, conversation)] \
        == ["which account types do you have?"]
    assert session not in json.dumps(channels.tracker_events(conversation))

    # Whoever reads the conversation id (review console, export) cannot write into it.
    intruder = clients(channels)
    intruders_session = intruder.start_session(conversation)
    intruder.say("which account types do you have?")
    intruder.reply_where(text_has("personal and business"))
    assert intruders_session != session
    assert len(user_events(channels, conversation)) == 1
