"""A scriptable fake helpdesk on 127.0.0.1 (http.server in a thread) for delivery tests.

It speaks both formats of :mod:`accounts.helpdesk`: the generic API
(``POST /tickets``, ``POST /tickets/{id}/messages``) and Zendesk's
(``POST /api/v2/tickets.json``, ``PUT /api/v2/tickets/{id}.json``,
``GET /api/v2/tickets.json?external_id=``). It records every request and
de-duplicates ticket creation by ``Idempotency-Key`` like a real helpdesk
honouring it: a replayed key gets the existing ticket (200), or a 409 when
``duplicate_status = 409``.

Script the next answers to ticket creations and comments with
:meth:`FakeHelpdesk.script`: ``"ok"``, ``"500"``, ``"503"``, ``"429"``,
``"400"``, ``"malformed"`` (201 with a non-JSON body), ``"no_id"`` (201 with
JSON lacking an id), ``"409"`` (duplicate; creates nothing), ``"slow"``
(creates the ticket, then answers after ``slow_seconds``: a lost response).
"Down" is :meth:`stop`; :meth:`start` brings it back on the same port.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional
from urllib.parse import parse_qs, urlparse

from tests.smtp_server import free_port


@dataclass
class Recorded:
    """One request the fake received."""

    method: str
    path: str
    headers: Dict[str, str]
    body: Any


@dataclass
class Ticket:
    """A ticket the fake created."""

    id: int
    key: Optional[str]
    external_id: Optional[str]
    payload: Any
    comments: List[Any] = field(default_factory=list)


class FakeHelpdesk:
    """The fake; ``url`` is its base URL."""

    def __init__(self, port: Optional[int] = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests: List[Recorded] = []
        self.tickets: List[Ticket] = []
        self.duplicate_status = 200
        self.slow_seconds = 1.0
        self._script: List[str] = []
        self._lock = threading.Lock()
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    # -------------------------------------------------------------- control

    def script(self, *answers: str) -> None:
        """Queue the next answers (to creations and comments); then "ok"."""
        with self._lock:
            self._script.extend(answers)

    def start(self) -> "FakeHelpdesk":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                fake._handle(self)

            def do_PUT(self) -> None:
                fake._handle(self)

            def do_GET(self) -> None:
                fake._handle(self)

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def creations(self) -> List[Recorded]:
        return [r for r in self.requests if r.method == "POST" and r.path in ("/tickets", "/api/v2/tickets.json")]

    # -------------------------------------------------------------- handling

    def _next(self) -> str:
        with self._lock:
            return self._script.pop(0) if self._script else "ok"

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        parsed = urlparse(handler.path)
        with self._lock:
            self.requests.append(Recorded(handler.command, parsed.path, dict(handler.headers.items()), body))
        zendesk = parsed.path.startswith("/api/v2/")
        if handler.command == "GET":
            external = parse_qs(parsed.query).get("external_id", [""])[0]
            found = [{"id": t.id, "external_id": t.external_id} for t in self.tickets if t.external_id == external]
            return self._send(handler, 200, {"tickets": found})
        answer = self._next()
        if answer in ("500", "503", "429", "400", "401"):
            return self._send(handler, int(answer), {"error": f"scripted {answer}"})
        if answer == "malformed":
            return self._send(handler, 201, "<html>not json", raw_text=True)
        comment = re.match(r"^(?:/tickets/(\d+)/messages|/api/v2/tickets/(\d+)\.json)$", parsed.path)
        if comment:
            ident = int(comment.group(1) or comment.group(2))
            with self._lock:
                ticket = next((t for t in self.tickets if t.id == ident), None)
                if ticket is None:
                    return self._send(handler, 404, {"error": "no such ticket"})
                ticket.comments.append(body)
            return self._send(handler, 200 if zendesk else 201, {"ticket": {"id": ident}} if zendesk else {"ok": True})
        if answer == "409":
            return self._send(handler, 409, {"error": "duplicate"})
        key = handler.headers.get("Idempotency-Key")
        with self._lock:
            existing = next((t for t in self.tickets if key and t.key == key), None)
            if existing is None:
                external = (body.get("ticket") or {}).get("external_id") if zendesk and isinstance(body, dict) else None
                existing = Ticket(id=1000 + len(self.tickets) + 1, key=key, external_id=external, payload=body)
                self.tickets.append(existing)
                status = 201
            else:
                status = self.duplicate_status
        if answer == "no_id":
            return self._send(handler, 201, {"status": "created"})
        if answer == "slow":
            time.sleep(self.slow_seconds)
        if zendesk:
            return self._send(handler, status, {"ticket": {"id": existing.id, "external_id": existing.external_id}})
        return self._send(handler, status, {"id": existing.id, "url": f"{self.url}/t/{existing.id}"})

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, body: Any, raw_text: bool = False) -> None:
        data = (body if raw_text else json.dumps(body)).encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "text/html" if raw_text else "application/json")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        except OSError:  # the client gave up (timeout test)
            pass
