"""Clients of the helpdesk's HTTP API: a documented generic format and Zendesk.

:mod:`accounts.helpdesk_dispatch` hands each stored support request to a
:class:`HelpdeskClient` as a :class:`TicketRequest`, and each later message of
the conversation as a :class:`TicketComment`. A client returns the ticket
(:class:`TicketRef`) or raises:

* :class:`HelpdeskUnavailable`: connection refused or lost, timeout, HTTP 408,
  429 or 5xx. Retried with backoff, never given up.
* :class:`HelpdeskRejected`: any other 4xx, or a 2xx whose body has no ticket
  id (malformed). The request is marked ``failed`` for staff to look at.

A ``409`` is the helpdesk saying "I already have this one" (the idempotency
key or the reference was seen before): it counts as delivered, with the
existing ticket's id.

Every request carries ``Idempotency-Key: support-request-<id>`` (a comment:
``support-request-<id>-message-<message id>``), so a retry after a lost
response never creates a second ticket on a helpdesk that honours the key.
Error texts keep the status and at most 200 characters of the answer, with
the token removed; the token never appears in a log line or ``last_error``.

Adapters, chosen by ``HELPDESK_KIND``:

* ``generic`` (:class:`GenericHelpdesk`): ``POST {HELPDESK_URL}/tickets`` with
  the JSON payload of :meth:`GenericHelpdesk.ticket_payload`, answered by
  ``{"id": ..., "url": ...}``; comments ``POST {HELPDESK_URL}/tickets/{id}/messages``.
* ``zendesk`` (:class:`ZendeskHelpdesk`): ``POST {HELPDESK_URL}/api/v2/tickets.json``
  with ``{"ticket": {...}}`` (``external_id`` = the reference, the transcript as
  a private first comment), answered by ``{"ticket": {"id": ...}}``; comments
  ``PUT /api/v2/tickets/{id}.json``; on 409 the existing ticket is found with
  ``GET /api/v2/tickets.json?external_id=<reference>``.

Authentication is ``Authorization: Bearer HELPDESK_TOKEN`` for both (for
Zendesk an OAuth access token).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Dict, List, Mapping, Optional, Protocol, Sequence, Tuple

import requests

from accounts.redaction import mask_known_secrets

HELPDESK_KINDS = ("generic", "zendesk")
DEFAULT_TIMEOUT_SECONDS = 10.0
RETRY_STATUSES = frozenset({408, 429})
ERROR_SNIPPET = 200
USER_AGENT = "supportbot-helpdesk/1"


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class TicketRequest:
    """A support request as sent to the helpdesk (already redacted when stored).

    Attributes:
        support_request_id: Our row id.
        reference: ``SR-000042``, shown to the customer.
        reason: Machine code of why the assistant handed over.
        summary: One line for the agent.
        channel: Where the customer asked.
        account_id: The verified customer's account, or None.
        email: Contact address, or None.
        transcript: ``[{"from": "customer"|"assistant", "text": ...}, ...]``, redacted.
        created_at: When the request was stored.
    """

    support_request_id: int
    reference: str
    reason: str
    summary: str
    channel: str
    account_id: Optional[int]
    email: Optional[str]
    transcript: Tuple[Mapping[str, str], ...]
    created_at: datetime

    @property
    def idempotency_key(self) -> str:
        """``support-request-<id>``: the same on every attempt."""
        return f"support-request-{self.support_request_id}"


@dataclass(frozen=True)
class TicketComment:
    """A later message of the conversation, appended to the ticket.

    Attributes:
        support_request_id: Our request id.
        message_id: Our message id.
        reference: The request's reference.
        ticket_id: The helpdesk's ticket id.
        author: ``customer``, ``assistant`` (or ``agent``).
        text: The message, redacted by whoever stored it.
        created_at: When it was written.
    """

    support_request_id: int
    message_id: int
    reference: str
    ticket_id: str
    author: str
    text: str
    created_at: datetime

    @property
    def idempotency_key(self) -> str:
        """``support-request-<id>-message-<message id>``."""
        return f"support-request-{self.support_request_id}-message-{self.message_id}"


@dataclass(frozen=True)
class TicketRef:
    """The helpdesk's ticket for a request.

    Attributes:
        ticket_id: Its id, as a string.
        url: Where an agent opens it, if known.
        duplicate: True when the helpdesk already had it (409 or a replayed key).
    """

    ticket_id: str
    url: Optional[str] = None
    duplicate: bool = False


class HelpdeskError(Exception):
    """A failed call; the message is short and free of secrets.

    Attributes:
        retry: True when trying again later can help.
    """

    retry = False


class HelpdeskUnavailable(HelpdeskError):
    """Down, slow or overloaded (connection error, timeout, 408, 429, 5xx): retry later."""

    retry = True


class HelpdeskRejected(HelpdeskError):
    """Refused (other 4xx) or answered something we cannot read: retrying will not help."""


class HelpdeskClient(Protocol):
    """What the dispatcher needs from a helpdesk."""

    kind: str

    def create_ticket(self, ticket: TicketRequest) -> TicketRef:
        """Create (or find, if it exists) the ticket of a request."""

    def add_comment(self, comment: TicketComment) -> None:
        """Append one message to an existing ticket."""


# --------------------------------------------------------------------------- HTTP


def render_transcript(transcript: Sequence[Mapping[str, str]]) -> str:
    """Plain text of a transcript, one ``Customer: ...`` line per message."""
    return "\n".join(f"{str(line.get('from', '?')).capitalize()}: {line.get('text', '')}" for line in transcript)


@dataclass
class _HttpHelpdesk:
    """Common HTTP handling: headers, timeout, status classification, scrubbing."""

    base_url: str
    token: str = field(repr=False)
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    session: requests.Session = field(default_factory=requests.Session, repr=False)
    kind: str = "http"

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")

    def _scrub(self, text: str) -> str:
        return mask_known_secrets(" ".join(text.split()), [self.token])[:ERROR_SNIPPET]

    def _call(self, method: str, path: str, key: str, payload: Optional[Dict[str, Any]] = None,
              params: Optional[Dict[str, str]] = None) -> Tuple[int, Any]:
        """Send one request; return (status, parsed JSON or None) for 2xx and 409.

        Raises:
            HelpdeskUnavailable: Connection error, timeout, 408, 429, 5xx.
            HelpdeskRejected: Any other status.
        """
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Idempotency-Key": key,
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        where = f"{method} {path}"
        try:
            response = self.session.request(method, self.base_url + path, json=payload, params=params,
                                            headers=headers, timeout=self.timeout, allow_redirects=False)
        except requests.Timeout:
            raise HelpdeskUnavailable(f"{where}: no answer within {self.timeout:g} s") from None
        except requests.ConnectionError:
            raise HelpdeskUnavailable(f"{where}: cannot connect to the helpdesk") from None
        except requests.RequestException as exc:
            raise HelpdeskUnavailable(self._scrub(f"{where}: {type(exc).__name__}")) from None
        status = response.status_code
        if status in RETRY_STATUSES or status >= 500:
            raise HelpdeskUnavailable(self._scrub(f"{where}: HTTP {status} {response.text}"))
        if not (200 <= status < 300 or status == 409):
            raise HelpdeskRejected(self._scrub(f"{where}: HTTP {status} {response.text}"))
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = _MALFORMED
        return status, body

    def _malformed(self, where: str, status: int) -> HelpdeskRejected:
        return HelpdeskRejected(f"{where}: HTTP {status} with a malformed body (no ticket id)")


_MALFORMED = object()


def _ticket_id(value: Any) -> Optional[str]:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int) or (isinstance(value, str) and value.strip() and len(value) <= 64):
        return str(value).strip()
    return None


@dataclass
class GenericHelpdesk(_HttpHelpdesk):
    """The documented JSON API (accounts/README.md, "Helpdesk delivery")."""

    kind: str = "generic"

    @staticmethod
    def ticket_payload(ticket: TicketRequest) -> Dict[str, Any]:
        """The JSON body of ``POST /tickets``."""
        return {
            "reference": ticket.reference,
            "reason": ticket.reason,
            "summary": ticket.summary,
            "channel": ticket.channel,
            "customer": {"account_id": ticket.account_id, "email": ticket.email},
            "transcript": [dict(line) for line in ticket.transcript],
            "created_at": ticket.created_at.isoformat(),
        }

    def create_ticket(self, ticket: TicketRequest) -> TicketRef:
        """``POST /tickets``; 2xx or 409 with ``{"id": ..., "url"?: ...}``."""
        status, body = self._call("POST", "/tickets", ticket.idempotency_key, self.ticket_payload(ticket))
        ident = _ticket_id(body.get("id")) if isinstance(body, dict) else None
        if ident is None:
            raise self._malformed("POST /tickets", status)
        url = body.get("url") if isinstance(body.get("url"), str) else None
        return TicketRef(ticket_id=ident, url=url, duplicate=status == 409)

    def add_comment(self, comment: TicketComment) -> None:
        """``POST /tickets/{id}/messages``; any 2xx (or 409: already there) is success."""
        self._call("POST", f"/tickets/{comment.ticket_id}/messages", comment.idempotency_key, {
            "reference": comment.reference,
            "author": comment.author,
            "text": comment.text,
            "created_at": comment.created_at.isoformat(),
        })


@dataclass
class ZendeskHelpdesk(_HttpHelpdesk):
    """Zendesk Support's Tickets API (``HELPDESK_URL=https://<subdomain>.zendesk.com``)."""

    kind: str = "zendesk"

    @staticmethod
    def ticket_payload(ticket: TicketRequest) -> Dict[str, Any]:
        """The JSON body of ``POST /api/v2/tickets.json``."""
        lines = [ticket.summary, "", f"Reference: {ticket.reference}", f"Reason: {ticket.reason}",
                 f"Channel: {ticket.channel}",
                 f"Account: {ticket.account_id if ticket.account_id is not None else 'not verified'}"]
        if ticket.transcript:
            lines += ["", "Conversation:", render_transcript(ticket.transcript)]
        body: Dict[str, Any] = {
            "subject": f"[{ticket.reference}] {ticket.reason}"[:150],
            "comment": {"body": "\n".join(lines), "public": False},
            "external_id": ticket.reference,
            "tags": ["supportbot", f"channel_{ticket.channel}"],
        }
        if ticket.email:
            body["requester"] = {"email": ticket.email, "name": ticket.email}
        return {"ticket": body}

    def _ref(self, ident: str, duplicate: bool) -> TicketRef:
        return TicketRef(ticket_id=ident, url=f"{self.base_url}/agent/tickets/{ident}", duplicate=duplicate)

    def create_ticket(self, ticket: TicketRequest) -> TicketRef:
        """Create the ticket; on 409 find it by ``external_id``."""
        path = "/api/v2/tickets.json"
        status, body = self._call("POST", path, ticket.idempotency_key, self.ticket_payload(ticket))
        if status == 409:
            return self._find(ticket)
        inner = body.get("ticket") if isinstance(body, dict) else None
        ident = _ticket_id(inner.get("id")) if isinstance(inner, dict) else None
        if ident is None:
            raise self._malformed(f"POST {path}", status)
        return self._ref(ident, duplicate=False)

    def _find(self, ticket: TicketRequest) -> TicketRef:
        path = "/api/v2/tickets.json"
        status, body = self._call("GET", path, ticket.idempotency_key, params={"external_id": ticket.reference})
        found = body.get("tickets") if isinstance(body, dict) else None
        if isinstance(found, list) and found and isinstance(found[0], dict):
            ident = _ticket_id(found[0].get("id"))
            if ident is not None:
                return self._ref(ident, duplicate=True)
        raise HelpdeskRejected(f"POST {path}: HTTP 409 and no ticket with external_id {ticket.reference}")

    def add_comment(self, comment: TicketComment) -> None:
        """``PUT /api/v2/tickets/{id}.json`` with a private comment."""
        body = f"{comment.author.capitalize()}: {comment.text}"
        self._call("PUT", f"/api/v2/tickets/{comment.ticket_id}.json", comment.idempotency_key,
                   {"ticket": {"comment": {"body": body, "public": False}}})


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class HelpdeskSettings:
    """``HELPDESK_URL``, ``HELPDESK_TOKEN``, ``HELPDESK_KIND``, ``HELPDESK_TIMEOUT``.

    Attributes:
        url: Base URL, or None when no helpdesk is configured.
        token: Bearer token (hidden from ``repr``).
        kind: ``generic`` or ``zendesk``.
        timeout: Seconds for connecting and for the answer.
    """

    url: Optional[str] = None
    token: Optional[str] = field(default=None, repr=False)
    kind: str = "generic"
    timeout: float = DEFAULT_TIMEOUT_SECONDS

    @property
    def configured(self) -> bool:
        """True when ``HELPDESK_URL`` is set."""
        return bool(self.url)

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None) -> "HelpdeskSettings":
        """Read the settings.

        Raises:
            ValueError: Unknown kind, bad URL or timeout, or a URL without a token.
        """
        env = os.environ if environ is None else environ
        url = (env.get("HELPDESK_URL") or "").strip() or None
        token = (env.get("HELPDESK_TOKEN") or "").strip() or None
        kind = (env.get("HELPDESK_KIND") or "generic").strip().lower()
        if kind not in HELPDESK_KINDS:
            raise ValueError(f"HELPDESK_KIND must be one of {', '.join(HELPDESK_KINDS)}, got {kind!r}")
        try:
            timeout = float(env.get("HELPDESK_TIMEOUT") or DEFAULT_TIMEOUT_SECONDS)
        except ValueError:
            raise ValueError("HELPDESK_TIMEOUT must be a number of seconds") from None
        if timeout <= 0:
            raise ValueError("HELPDESK_TIMEOUT must be positive")
        if url is not None:
            if not url.startswith(("https://", "http://")):
                raise ValueError("HELPDESK_URL must start with https:// (or http:// for a local helpdesk)")
            if not token:
                raise ValueError("HELPDESK_URL is set but HELPDESK_TOKEN is not")
        return cls(url=url, token=token, kind=kind, timeout=timeout)


def make_helpdesk(settings: HelpdeskSettings, session: Optional[requests.Session] = None) -> Optional[HelpdeskClient]:
    """Build the client the settings ask for, or None when no helpdesk is configured.

    Args:
        settings: Helpdesk settings.
        session: A ``requests.Session`` to use (default: a new one).
    """
    if not settings.configured:
        return None
    adapter = ZendeskHelpdesk if settings.kind == "zendesk" else GenericHelpdesk
    return adapter(base_url=settings.url or "", token=settings.token or "", timeout=settings.timeout,
                   session=session or requests.Session())


def helpdesk_from_env(environ: Optional[Mapping[str, str]] = None,
                      session: Optional[requests.Session] = None) -> Optional[HelpdeskClient]:
    """:func:`make_helpdesk` from the environment (None: ``HELPDESK_URL`` unset)."""
    return make_helpdesk(HelpdeskSettings.from_env(environ), session)


def transcript_of(context: Any) -> List[Dict[str, str]]:
    """The ``transcript`` list stored in a support request's context, as plain strings."""
    lines = context.get("transcript") if isinstance(context, Mapping) else None
    if not isinstance(lines, list):
        return []
    out = []
    for line in lines:
        if isinstance(line, Mapping):
            out.append({"from": str(line.get("from", "")), "text": str(line.get("text", ""))})
        elif isinstance(line, str):
            out.append({"from": "", "text": line})
    return out


__all__ = [
    "GenericHelpdesk",
    "HELPDESK_KINDS",
    "HelpdeskClient",
    "HelpdeskError",
    "HelpdeskRejected",
    "HelpdeskSettings",
    "HelpdeskUnavailable",
    "TicketComment",
    "TicketRef",
    "TicketRequest",
    "ZendeskHelpdesk",
    "helpdesk_from_env",
    "make_helpdesk",
    "render_transcript",
    "transcript_of",
]
