"""The REST and Socket.IO channels in front of an echoing assistant, configured from the environment.

``python -m tests.channels.scripted_channels_server PORT`` serves
``channels.rest.VerifiedRestInput`` and ``channels.socketio.PortalSocketIOInput``
(the real channels, built by ``from_credentials`` as Rasa builds them) on
127.0.0.1:PORT. Every message is answered with ``echo: <text>``, so tests of
what the channels let through (rate limits) need no model and no Rasa.
"""

from __future__ import annotations

import sys

from rasa.core.channels.channel import UserMessage
from sanic import Sanic

from channels.rest import VerifiedRestInput
from channels.socketio import PortalSocketIOInput


async def echo(message: UserMessage) -> None:
    """Answer through the channel's own output, as the assistant would."""
    await message.output_channel.send_response(message.sender_id, {"text": f"echo: {message.text}"})


def main(port: int) -> None:
    """Serve until terminated."""
    app = Sanic("scripted_channels_server")
    app.blueprint(VerifiedRestInput.from_credentials(None).blueprint(echo),
                  url_prefix="/webhooks/rest")
    app.blueprint(PortalSocketIOInput.from_credentials(None).blueprint(echo),
                  url_prefix="/webhooks/socketio")
    app.run(host="127.0.0.1", port=port, access_log=False)


if __name__ == "__main__":
    main(int(sys.argv[1]))
