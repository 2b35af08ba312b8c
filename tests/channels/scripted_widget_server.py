"""The widget's Socket.IO channel in front of a scripted assistant, for rendering tests.

``python -m tests.channels.scripted_widget_server PORT ALLOWED_ORIGIN`` serves
``channels.socketio.PortalSocketIOInput`` (the real channel and its output)
on 127.0.0.1:PORT (with ``PORTAL_TOKEN_SECRET``, for signed-in customers
too; with ``REDIS_URL``, used connect tickets are remembered across a
restart). Instead of Rasa, every message gets the same replies, one
of each kind the widget must render: a text with a link, an image, buttons
(one of them a link) and quick replies. A picked choice is echoed back.
"""

from __future__ import annotations

import sys
from typing import Any, Dict, List

from rasa.core.channels.channel import UserMessage
from sanic import Sanic

from channels.dedup import recent_ids
from channels.socketio import PortalSocketIOInput
from channels.widget_tickets import ConnectTickets
from supportbot.portal_token import verifier_from_env

GUIDE_URL = "https://portal.example/help/guide"
HELP_CENTRE_URL = "https://portal.example/help"
# A 24x24 square: a data URI, so the page still loads nothing from outside.
IMAGE = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAABgAAAAYCAIAAABvFaqvAAAAH0lEQVR4nGNQ"
         "toylCmIYNWjUoFGDRg0aNWjUoIE3CAAyyKBQuYshHQAAAABJRU5ErkJggg==")
GREETING = "Hi! I'm the scripted assistant."

REPLIES: List[Dict[str, Any]] = [
    {"text": f"The guide is at {GUIDE_URL}"},
    {"image": IMAGE},
    {"text": "Was that helpful?",
     "buttons": [{"title": "Yes", "payload": "/affirm"},
                 {"title": "Open the help centre", "url": HELP_CENTRE_URL}]},
    {"text": "Anything else?",
     "quick_replies": [{"title": "No, thanks", "payload": "/deny"},
                       {"title": "Talk to support", "payload": "/human_handoff"}]},
]


async def scripted_turn(message: UserMessage) -> None:
    """Answer like the assistant would, through the channel's own output."""
    output, recipient = message.output_channel, message.sender_id
    if message.text == "/greet":
        await output.send_response(recipient, {"text": GREETING})
    elif message.text.startswith("/"):
        await output.send_response(recipient, {"text": f"You picked {message.text}"})
    else:
        for reply in REPLIES:
            await output.send_response(recipient, dict(reply))


def main(port: int, allowed_origin: str) -> None:
    """Serve until terminated."""
    verifier = verifier_from_env()  # PORTAL_TOKEN_SECRET set: signed-in customers, connect tickets
    tickets = ConnectTickets.for_verifier(verifier, recent_ids("widget-ticket")) if verifier else None
    channel = PortalSocketIOInput(verifier=verifier, allowed_origins=[allowed_origin], max_chars=2000,
                                  tickets=tickets)
    app = Sanic("scripted_widget_server")
    app.blueprint(channel.blueprint(scripted_turn), url_prefix="/webhooks/socketio")
    app.run(host="127.0.0.1", port=port, access_log=False)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
