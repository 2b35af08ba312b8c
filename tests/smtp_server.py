"""A real SMTP server on 127.0.0.1 for the tests (aiosmtpd), with scripted answers.

``SmtpTestServer(port).start()`` listens until ``stop()``. Every message it
accepts is kept in ``messages`` (parsed, with the envelope). ``data_replies``
and ``rcpt_replies`` are queues of answers for the next DATA / RCPT commands
(e.g. ``"451 4.3.0 Try again later"``); a ``None`` entry, or an empty queue,
means accept.
"""

from __future__ import annotations

import collections
import email
import email.policy
import ssl
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Deque, List, Optional

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from supportbot.runner import free_port


@dataclass
class Received:
    """One message the server accepted."""

    mail_from: str
    rcpt_tos: List[str]
    message: EmailMessage
    raw: bytes


class _Handler:
    def __init__(self, server: "SmtpTestServer") -> None:
        self.server = server

    async def handle_RCPT(self, smtp: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: List[str]) -> str:
        with self.server.lock:
            self.server.commands.append(f"RCPT {address}")
            reply = self.server.rcpt_replies.popleft() if self.server.rcpt_replies else None
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, smtp: Any, session: Any, envelope: Any) -> str:
        with self.server.lock:
            self.server.commands.append("DATA")
            reply = self.server.data_replies.popleft() if self.server.data_replies else None
            if reply:
                return reply
            raw = bytes(envelope.content)
            parsed = email.message_from_bytes(raw, policy=email.policy.default)
            self.server.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), parsed, raw))
            self.server.lock.notify_all()
        return "250 Message accepted for delivery"


class SmtpTestServer:
    """aiosmtpd on 127.0.0.1:``port`` with scripted replies (see module docstring)."""

    def __init__(self, port: Optional[int] = None, *, tls_context: Optional[ssl.SSLContext] = None,
                 credentials: Optional[tuple] = None) -> None:
        self.port = port or free_port()
        self.messages: List[Received] = []
        self.commands: List[str] = []
        self.data_replies: Deque[Optional[str]] = collections.deque()
        self.rcpt_replies: Deque[Optional[str]] = collections.deque()
        self.lock = threading.Condition()
        kwargs: dict = {"server_hostname": "localhost", "ready_timeout": 10}
        if tls_context is not None:
            kwargs.update(tls_context=tls_context, require_starttls=True)
        if credentials is not None:
            user, password = credentials

            def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
                ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
                    user.encode(), password.encode())
                return AuthResult(success=ok, handled=False)

            kwargs.update(authenticator=authenticate, auth_required=True,
                          auth_require_tls=tls_context is not None)
        self._controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port, **kwargs)

    def start(self) -> "SmtpTestServer":
        """Start listening (returns when the server answers)."""
        self._controller.start()
        return self

    def stop(self) -> None:
        """Stop listening."""
        self._controller.stop()

    def wait_for(self, count: int, timeout: float = 10.0) -> List[Received]:
        """Wait until ``count`` messages arrived (or the timeout passed); return them all."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while len(self.messages) < count and time.monotonic() < deadline:
                self.lock.wait(timeout=max(0.01, deadline - time.monotonic()))
            return list(self.messages)

    def __enter__(self) -> "SmtpTestServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
