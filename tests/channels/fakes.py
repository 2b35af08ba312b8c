"""Fake Slack Web API and Telegram Bot API servers on 127.0.0.1 that record every call.

Each runs an aiohttp application in a background thread, answers like the
real API (enough for slack_sdk and aiogram to accept the answer) and keeps the
calls it received, so tests can wait for a reply and read what the assistant
sent.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from aiohttp import web

from supportbot.runner import free_port

WAIT_SECONDS = 30.0


@dataclass
class Call:
    """One API call: its method name and its parameters (JSON-decoded where they are JSON)."""

    method: str
    params: Dict[str, Any]
    headers: Dict[str, str] = field(default_factory=dict)


class RecordingServer:
    """An aiohttp server in a thread; subclasses add the API's routes and answers."""

    def __init__(self) -> None:
        self.port = free_port()
        self.calls: List[Call] = []
        self._changed = threading.Condition()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: Optional[web.AppRunner] = None

    @property
    def url(self) -> str:
        """Base URL of the server."""
        return f"http://127.0.0.1:{self.port}"

    def routes(self, app: web.Application) -> None:
        """Add the API's routes to ``app``."""
        raise NotImplementedError

    def start(self) -> "RecordingServer":
        """Start serving; returns self."""
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(timeout=10)
        return self

    def stop(self) -> None:
        """Stop serving and end the thread."""
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _serve(self) -> None:
        app = web.Application()
        self.routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def record(self, call: Call) -> None:
        """Keep ``call`` and wake up waiting tests."""
        with self._changed:
            self.calls.append(call)
            self._changed.notify_all()

    def calls_where(self, predicate: Callable[[Call], bool]) -> List[Call]:
        """The calls so far that match ``predicate``."""
        with self._changed:
            return [call for call in self.calls if predicate(call)]

    def wait_for(self, predicate: Callable[[Call], bool], count: int = 1,
                 timeout: float = WAIT_SECONDS) -> List[Call]:
        """Wait until ``count`` calls match ``predicate``; return them (fails on timeout)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                matching = [call for call in self.calls if predicate(call)]
                remaining = deadline - time.monotonic()
                if len(matching) >= count or remaining <= 0:
                    break
                self._changed.wait(remaining)
        assert len(matching) >= count, (
            f"expected {count} matching call(s) within {timeout:.0f} s, got {len(matching)}; "
            f"all calls: {[(c.method, c.params) for c in self.calls][-10:]}"
        )
        return matching


class FakeSlackApi(RecordingServer):
    """Slack Web API at ``{url}/api/``: records ``chat.postMessage`` and the rest."""

    def routes(self, app: web.Application) -> None:  # noqa: D102
        app.router.add_post("/api/{method}", self._api)

    @property
    def api_base_url(self) -> str:
        """What SLACK_API_BASE_URL must be."""
        return f"{self.url}/api/"

    async def _api(self, request: web.Request) -> web.Response:
        if request.content_type == "application/json":
            params = await request.json()
        else:
            params = dict(await request.post())
        method = request.match_info["method"]
        self.record(Call(method, params, {"Authorization": request.headers.get("Authorization", "")}))
        return web.json_response({"ok": True, "channel": params.get("channel"),
                                  "ts": f"{time.time():.6f}"})

    def messages_to(self, channel: str) -> Callable[[Call], bool]:
        """Predicate: a ``chat.postMessage`` to ``channel``."""
        return lambda call: call.method == "chat.postMessage" and call.params.get("channel") == channel


class FakeTelegramApi(RecordingServer):
    """Telegram Bot API at ``{url}/bot<token>/<method>``."""

    def routes(self, app: web.Application) -> None:  # noqa: D102
        app.router.add_post("/bot{token}/{method}", self._api)

    async def _api(self, request: web.Request) -> web.Response:
        params: Dict[str, Any] = {}
        for key, value in (await request.post()).items():
            try:
                params[key] = json.loads(value) if isinstance(value, str) and value[:1] in "[{" else value
            except ValueError:
                params[key] = value
        method = request.match_info["method"]
        self.record(Call(method, params, {"token": request.match_info["token"]}))
        if method == "sendMessage":
            result: Any = {
                "message_id": len(self.calls), "date": int(time.time()),
                "chat": {"id": int(params["chat_id"]), "type": "private"},
                "from": {"id": 1, "is_bot": True, "first_name": "Support"},
                "text": params.get("text", ""),
            }
        elif method == "getMe":
            result = {"id": 1, "is_bot": True, "first_name": "Support", "username": "portal_support_bot"}
        else:
            result = True
        return web.json_response({"ok": True, "result": result})

    def messages_to(self, chat_id: int) -> Callable[[Call], bool]:
        """Predicate: a ``sendMessage`` to ``chat_id``."""
        return lambda call: call.method == "sendMessage" and str(call.params.get("chat_id")) == str(chat_id)
