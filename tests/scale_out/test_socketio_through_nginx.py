"""The widget's Socket.IO through nginx: websocket upgrade, and long-polling kept on one instance.

With two Rasa instances, a long-polling Socket.IO session breaks unless every
one of its HTTP requests reaches the instance that holds it: this is what the
sticky ``/socket.io/`` upstream is for. The websocket transport needs nginx to
pass the ``Upgrade`` headers.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, List

import aiohttp
import pytest
import socketio

from channels.widget_tickets import anonymous_conversation_id
from supportbot.cluster import Cluster
from tests.scale_out.conftest import stored_events
from tests.scale_out.test_shared_state import turns

pytestmark = pytest.mark.slow

# WIDGET_ALLOWED_ORIGINS' default: the chat page on 127.0.0.1:WEB_PORT (8080)
ORIGIN = "http://127.0.0.1:8080"
QUESTIONS = ["how do I close my account?", "what is two-factor authentication?",
             "what account types are there?"]
REPLY_SECONDS = 20


class RawWebsocketClient:
    """Socket.IO over a websocket only, spoken by hand (Engine.IO 4 packets over aiohttp).

    python-socketio's own websocket client needs a newer aiohttp than Rasa pins.
    """

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def emit(self, event: str, data: Any) -> None:
        await self.ws.send_str("42" + json.dumps([event, data]))

    async def receive(self, event: str) -> Any:
        """The next ``event``; answers the server's pings meanwhile."""
        while True:
            message = await asyncio.wait_for(self.ws.receive(), REPLY_SECONDS)
            assert message.type == aiohttp.WSMsgType.TEXT, message
            packet = message.data
            if packet == "2":
                await self.ws.send_str("3")
            elif packet.startswith("42"):
                name, payload = json.loads(packet[2:])
                if name == event:
                    return payload


async def websocket_conversation(url: str) -> tuple:
    """The widget's conversation over a websocket through nginx; (session id, reply texts)."""
    ws_url = url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(ws_url, headers={"Origin": ORIGIN}) as ws:
            opened = await asyncio.wait_for(ws.receive(), REPLY_SECONDS)
            assert opened.data.startswith("0{"), opened.data  # Engine.IO open
            await ws.send_str("40")  # Socket.IO connect to "/"
            connected = await asyncio.wait_for(ws.receive(), REPLY_SECONDS)
            assert connected.data.startswith("40"), connected.data
            client = RawWebsocketClient(ws)
            await client.emit("session_request", {"session_id": None})
            session_id = (await client.receive("session_confirm"))["session_id"]
            texts: List[str] = []
            for question in QUESTIONS:
                await client.emit("user_uttered", {"message": question, "customData": {},
                                                   "session_id": session_id})
                texts.append((await client.receive("bot_uttered")).get("text", ""))
            return session_id, texts


async def polling_conversation(url: str) -> tuple:
    """The widget's conversation over long-polling through nginx; (session id, reply texts)."""
    sio = socketio.AsyncClient(reconnection=False)
    replies: "asyncio.Queue[dict]" = asyncio.Queue()
    confirmations: "asyncio.Queue[dict]" = asyncio.Queue()
    sio.on("bot_uttered", replies.put)
    sio.on("session_confirm", confirmations.put)
    await sio.connect(url, headers={"Origin": ORIGIN}, transports=["polling"],
                      socketio_path="/socket.io", wait_timeout=10)
    try:
        await sio.emit("session_request", {"session_id": None})
        session_id = (await asyncio.wait_for(confirmations.get(), REPLY_SECONDS))["session_id"]
        texts: List[str] = []
        for question in QUESTIONS:
            await sio.emit("user_uttered", {"message": question, "customData": {},
                                            "session_id": session_id})
            texts.append((await asyncio.wait_for(replies.get(), REPLY_SECONDS)).get("text", ""))
            await asyncio.sleep(0.3)  # several polls between messages
        assert sio.transport() == "polling"
        return session_id, texts
    finally:
        await sio.eio.disconnect(abort=True)


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_a_widget_conversation_through_nginx_gets_every_reply(cluster: Cluster, transport: str):
    talk = websocket_conversation if transport == "websocket" else polling_conversation
    session_id, texts = asyncio.run(talk(cluster.url))
    assert all(texts), texts
    stored = turns(stored_events(cluster, anonymous_conversation_id(session_id)))
    assert [text for text, _ in stored] == QUESTIONS
    assert [bot_texts[0] for _, bot_texts in stored] == texts
