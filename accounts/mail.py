"""E-mail for outbox notifications: rendering, Message-IDs and mailers.

* :func:`render` turns a notification kind and its payload into a subject and
  a friendly plain-text body. Every kind written by the operations has its own
  wording; an unknown kind gets a generic but readable message, and nothing
  here raises on a missing or odd payload field. Values of ``secret_*`` keys
  (``secret_link``, ``secret_code``, ``secret_report_link``) only ever go into
  the body, never into a header; :func:`accounts.redaction.mask_known_secrets` keeps them out of error texts.
* :func:`compose` builds the :class:`~email.message.EmailMessage`, with the
  deterministic Message-ID :func:`message_id` (``<outbox-{id}@{domain}>``), so
  a receiver can recognise a message sent twice (see :mod:`accounts.dispatch`).
* A :class:`Mailer` sends one message or raises a :class:`MailError` whose text
  is short and free of secrets: :class:`SmtpMailer` (``smtplib``) for real
  delivery, :class:`FileMailer` (``.eml`` files in a folder) for local
  development. :func:`mailer_from_env` picks one from the environment; nothing
  connects or touches the disk before the first :meth:`Mailer.send`.

====================  =====================================================
Environment variable  Meaning (default)
====================  =====================================================
``MAIL_BACKEND``      ``file`` (write ``.eml`` files) or ``smtp`` (``file``)
``MAIL_DIR``          folder of the ``file`` backend
                      (``<project root>/var/mail``)
``MAIL_FROM``         From address, also gives the Message-ID domain
                      (``Customer Support <no-reply@example.com>``)
``SMTP_HOST``         SMTP server (``127.0.0.1``)
``SMTP_PORT``         SMTP port (``587``)
``SMTP_STARTTLS``     ``1`` upgrades the connection with STARTTLS and
                      verifies the certificate; ``0`` sends in clear (``1``)
``SMTP_USERNAME``     login name; empty = no login (empty)
``SMTP_PASSWORD``     login password, required with a user name (no default)
``SMTP_TIMEOUT``      seconds per SMTP connection and command (``10``)
====================  =====================================================

A login without STARTTLS is refused unless the server is on loopback, so a
password never crosses the network in clear.
"""

from __future__ import annotations

import ipaddress
import os
import smtplib
import socket
import ssl
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Protocol, Tuple

from accounts.outbox import SECRET_PREFIX
from accounts.settings import PROJECT_ROOT

#: Default folder of the file mailer.
DEFAULT_MAIL_DIR: Path = PROJECT_ROOT / "var" / "mail"

DEFAULT_FROM = "Customer Support <no-reply@example.com>"
DEFAULT_SMTP_HOST = "127.0.0.1"
DEFAULT_SMTP_PORT = 587
DEFAULT_SMTP_TIMEOUT = 10.0
BACKENDS = ("file", "smtp")

#: Longest error description a mailer reports (the column holds 500).
MAX_ERROR_LENGTH = 300

SIGNATURE = (
    "\n\n"
    "Kind regards,\n"
    "Customer Support\n"
    "\n"
    "This is an automatic message; replies to it are not read. If something\n"
    "looks wrong, contact us through the Help section of the customer portal.\n"
)

GENERIC_SUBJECT = "A notice about your account"


# --------------------------------------------------------------------------- errors


class MailError(Exception):
    """Sending failed. ``str(error)`` is a short description without secrets or body text.

    Attributes:
        permanent: The server rejected this message for good (5xx); retrying is useless.
        server_unavailable: The server could not be used at all (down, timed out,
            refused the login or TLS); other messages would fail the same way.
    """

    permanent: bool = False
    server_unavailable: bool = False


class TemporaryMailError(MailError):
    """The server answered this message with a temporary (4xx) failure; try again later."""


class PermanentMailError(MailError):
    """The server rejected this message with a permanent (5xx) failure."""

    permanent = True


class MailServerUnavailable(TemporaryMailError):
    """The server could not be reached or used; nothing was accepted."""

    server_unavailable = True


# --------------------------------------------------------------------------- rendering


@dataclass(frozen=True)
class RenderedMail:
    """Subject and plain-text body of one notification."""

    subject: str
    body: str


def _text(payload: Mapping[str, Any], key: str, default: str = "") -> str:
    value = payload.get(key)
    if value is None or value == "":
        return default
    return str(value)


def _one_line(value: str) -> str:
    """Collapse whitespace (header values must not contain line breaks)."""
    return " ".join(value.split())


def _when(payload: Mapping[str, Any], key: str, default: str = "") -> str:
    """Format an ISO timestamp of the payload as '3 June 2024 at 09:00 UTC'."""
    raw = payload.get(key)
    if raw is None or raw == "":
        return default
    try:
        moment = raw if isinstance(raw, datetime) else datetime.fromisoformat(str(raw))
    except ValueError:
        return str(raw)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    moment = moment.astimezone(timezone.utc)
    return f"{moment.day} {moment:%B %Y} at {moment:%H:%M} UTC"


def _day(payload: Mapping[str, Any], key: str, default: str = "") -> str:
    text = _when(payload, key, default)
    return text.split(" at ")[0] if " at " in text else text


def _role(payload: Mapping[str, Any]) -> str:
    role = _text(payload, "role", "member")
    article = "an" if role[:1].lower() in "aeiou" else "a"
    return f"{article} {role}"


def _minutes(payload: Mapping[str, Any], default: str = "") -> str:
    minutes = _text(payload, "expires_in_minutes")
    return f"{minutes} minutes" if minutes else default


def _humanize(key: str) -> str:
    return key.replace("_", " ").strip().capitalize()


def _expiry(p: Mapping[str, Any]) -> str:
    """'expires in 30 minutes', 'expires on 3 June 2024 at 09:30 UTC' or ''."""
    if _minutes(p):
        return f"expires in {_minutes(p)}"
    return f"expires on {_when(p, 'expires_at')}" if p.get("expires_at") else ""


def _password_reset(p: Mapping[str, Any]) -> Tuple[str, str]:
    expiry = _expiry(p) or "expires soon"
    return "Reset your password", (
        "Hello,\n\n"
        "We received a request to reset the password of your account. To choose a\n"
        "new password, open this link:\n\n"
        f"{_text(p, 'secret_link', '(the link is missing: please ask for a new one)')}\n\n"
        f"The link works once and {expiry}.\n\n"
        "If you did not ask for this, you can ignore this email: your password\n"
        "stays as it is."
    )


def _password_changed(p: Mapping[str, Any]) -> Tuple[str, str]:
    when = _when(p, "changed_at")
    return "Your password was changed", (
        "Hello,\n\n"
        f"The password of your account was changed{' on ' + when if when else ''}.\n\n"
        "If that was you, there is nothing else to do. If it was not, contact\n"
        "support right away so we can secure your account."
    )


def _member_invitation(p: Mapping[str, Any]) -> Tuple[str, str]:
    account = _text(p, "account_name", "an account")
    inviter = _text(p, "invited_by", "A colleague")
    expires = _when(p, "expires_at")
    return f"You're invited to join {_one_line(account)}", (
        "Hello,\n\n"
        f"{inviter} invited you to join the account {account} as {_role(p)}.\n"
        "To accept the invitation, open this link:\n\n"
        f"{_text(p, 'secret_link', '(the link is missing: please ask for a new invitation)')}\n\n"
        + (f"The invitation is valid until {expires}. " if expires else "")
        + "If you don't know this account, you can ignore this email."
    )


def _member_joined(p: Mapping[str, Any]) -> Tuple[str, str]:
    who = _text(p, "email", "A new member")
    return f"{_one_line(who)} joined your account", (
        "Hello,\n\n"
        f"{who} accepted the invitation and joined your account as {_role(p)}.\n\n"
        "You can review who has access to your account in the portal at any time."
    )


def _member_disabled(p: Mapping[str, Any]) -> Tuple[str, str]:
    account = _text(p, "account_name", "the account")
    by = _text(p, "disabled_by")
    return f"Your access to {_one_line(account)} was disabled", (
        "Hello,\n\n"
        f"Your access to the account {account} was disabled"
        + (f" by {by}" if by else "")
        + ".\n\n"
        "If you think this is a mistake, please talk to the owner of the account."
    )


def _closure_requested(p: Mapping[str, Any]) -> Tuple[str, str]:
    ends = _when(p, "grace_period_ends_at")
    day = _day(p, "grace_period_ends_at")
    by = _text(p, "requested_by")
    return (f"Your account will be closed on {day}" if day else "Your account is scheduled to close"), (
        "Hello,\n\n"
        "We received a request to close your account"
        + (f" from {by}" if by else "")
        + ".\n"
        + (f"The account will be closed on {ends}.\n\n" if ends else "\n")
        + "Changed your mind? Until then you can undo the closure in the portal or\n"
        "by asking our assistant to cancel it."
    )


def _closure_undone(p: Mapping[str, Any]) -> Tuple[str, str]:
    by = _text(p, "undone_by")
    return "Your account will stay open", (
        "Hello,\n\n"
        "The closure of your account was cancelled"
        + (f" by {by}" if by else "")
        + ". Your account stays open and\n"
        "everything works as before."
    )


def _account_closed(p: Mapping[str, Any]) -> Tuple[str, str]:
    when = _when(p, "closed_at")
    return "Your account is closed", (
        "Hello,\n\n"
        f"Your account was closed{' on ' + when if when else ''}, as requested.\n\n"
        "Thank you for having been our customer. If you want to come back, you are\n"
        "welcome to open a new account at any time."
    )


def _currency_changed(p: Mapping[str, Any]) -> Tuple[str, str]:
    old, new = _text(p, "old_currency"), _text(p, "new_currency")
    by = _text(p, "changed_by")
    change = f"from {old} to {new}" if old and new else (f"to {new}" if new else "")
    return (f"Your billing currency is now {_one_line(new)}" if new else "Your billing currency was changed"), (
        "Hello,\n\n"
        f"The billing currency of your account was changed {change}".rstrip()
        + (f" by {by}" if by else "")
        + ".\n\nYour next invoices will be issued in the new currency."
    )


def _switched_to_business(p: Mapping[str, Any]) -> Tuple[str, str]:
    company = _text(p, "company_name")
    vat = _text(p, "vat_id")
    method = _text(p, "payment_method")
    lines = [f"Company: {company}"] if company else []
    if vat:
        lines.append(f"VAT ID: {vat}")
    if method:
        lines.append(f"Payment method: {method.replace('_', ' ')}")
    details = ("\n".join(f"  {line}" for line in lines) + "\n\n") if lines else ""
    return "Your account is now a business account", (
        "Hello,\n\n"
        "Your account was switched to a business account.\n\n"
        + details
        + "From now on your invoices are issued to the company"
        + (" and paid by wire transfer." if method == "wire_transfer" else ".")
    )


def _support_request_received(p: Mapping[str, Any]) -> Tuple[str, str]:
    reference = _text(p, "reference")
    return (f"We received your support request {_one_line(reference)}" if reference
            else "We received your support request"), (
        "Hello,\n\n"
        "Thank you for contacting us. A member of our support team will get back to\n"
        "you as soon as possible"
        + (f"; please quote the reference {reference} if you write to us about it." if reference else ".")
    )


#: Why a verification code was sent (payload ``purpose``), as the mail says it.
CODE_PURPOSES = {
    "channel_link": "to link this chat to your account",
    "step_up": "to confirm a change to your account",
    "tfa_recovery": "to recover access to two-factor authentication",
}


def _verification_code(p: Mapping[str, Any]) -> Tuple[str, str]:
    expiry = _expiry(p)
    purpose = CODE_PURPOSES.get(_text(p, "purpose"), "")
    return "Your verification code", (
        "Hello,\n\n"
        f"Here is your verification code{' ' + purpose if purpose else ''}:\n\n"
        f"    {_text(p, 'secret_code', '(missing: please ask for a new code)')}\n\n"
        + (f"It {expiry}. " if expiry else "")
        + "Never share this code with anyone, not even with our support team.\n\n"
        "If you did not ask for a code, someone may be trying to use your account:\n"
        "do not pass the code on, and contact support."
    )


def _tfa_enrollment_link(p: Mapping[str, Any]) -> Tuple[str, str]:
    link = _text(p, "secret_link")
    code = _text(p, "secret_code")
    expiry = _expiry(p)
    return "Set up two-factor authentication", (
        "Hello,\n\n"
        "To set up two-factor authentication for your account, open this link:\n\n"
        f"{link or '(the link is missing: please ask for a new one)'}\n\n"
        + (f"Your code: {code}\n\n" if code else "")
        + (f"The link {expiry}. " if expiry else "")
        + "If you did not ask for this, contact support right away."
    )


def _tfa_reset(p: Mapping[str, Any]) -> Tuple[str, str]:
    who = _text(p, "member_email")
    when = _when(p, "reset_at")
    report = _text(p, "secret_report_link")
    link = _text(p, "secret_link")
    code = _text(p, "secret_code")
    return "Two-factor authentication was reset", (
        "Hello,\n\n"
        f"Two-factor authentication {'of ' + who if who else 'on your account'} was reset"
        + (f" on {when}" if when else "")
        + ".\n\n"
        + (f"Set it up again here:\n\n{link}\n\n" if link else "")
        + (f"Your code: {code}\n\n" if code else "")
        + (f"If this was not you, tell us at once with this link, and we will secure\n"
           f"your account:\n\n{report}" if report else
           "If you did not ask for this, contact support right away so we can secure\n"
           "your account.")
    )


def _tfa_enabled(p: Mapping[str, Any]) -> Tuple[str, str]:
    who = _text(p, "member_email")
    when = _when(p, "enabled_at")
    return "Two-factor authentication is on", (
        "Hello,\n\n"
        f"Two-factor authentication is now switched on {'for ' + who if who else 'for your account'}"
        + (f" (since {when})" if when else "")
        + ": signing in\n"
        "needs your password and a code from your authenticator app.\n\n"
        "If you did not do this, contact support right away."
    )


#: How customers know the chat channels named in ``channel_linked`` notices.
CHANNEL_NAMES = {"slack": "Slack", "telegram": "Telegram", "socketio": "the chat on our website"}


def _channel_linked(p: Mapping[str, Any]) -> Tuple[str, str]:
    raw = _text(p, "channel")
    channel = CHANNEL_NAMES.get(raw, raw or "a chat")
    who = _text(p, "member_email")
    when = _when(p, "linked_at")
    until = _when(p, "expires_at")
    report = _text(p, "secret_report_link")
    return f"A chat on {channel} can now act for your account", (
        "Hello,\n\n"
        f"A chat on {channel} asked to act for your account"
        + (f" as {who}" if who else "")
        + (f" and was linked on {when}" if when else " and was linked")
        + (", with the code we e-mailed you and a code from your authenticator app" if p.get("with_app")
           else ", with the code we e-mailed you")
        + ".\n"
        + (f"The link lasts until {until}.\n" if until else "")
        + "\n"
        + ("If this wasn't you, unlink it with one click (it removes every chat linked to\n"
           f"your account and tells our support team):\n\n{report}" if report else
           "If this wasn't you, contact support right away so we can unlink it.")
    )


#: Wording of every known notification kind: payload -> (subject, body).
TEMPLATES: Dict[str, Callable[[Mapping[str, Any]], Tuple[str, str]]] = {
    "account_closed": _account_closed,
    "closure_requested": _closure_requested,
    "closure_undone": _closure_undone,
    "currency_changed": _currency_changed,
    "member_disabled": _member_disabled,
    "member_invitation": _member_invitation,
    "member_joined": _member_joined,
    "password_changed": _password_changed,
    "password_reset": _password_reset,
    "support_request_received": _support_request_received,
    "switched_to_business": _switched_to_business,
    "verification_code": _verification_code,
    "tfa_reset": _tfa_reset,
    "tfa_enrollment_link": _tfa_enrollment_link,
    "tfa_enabled": _tfa_enabled,
    "channel_linked": _channel_linked,
}


def _generic(kind: str, p: Mapping[str, Any]) -> Tuple[str, str]:
    details = []
    for key, value in p.items():
        if key.startswith(SECRET_PREFIX) or value is None or isinstance(value, (dict, list)):
            continue
        details.append(f"  {_humanize(key)}: {_when(p, key) if key.endswith('_at') else value}")
    link, code = _text(p, "secret_link"), _text(p, "secret_code")
    other_secrets = [
        f"{_humanize(key[len(SECRET_PREFIX):])}: {value}"
        for key, value in p.items()
        if key.startswith(SECRET_PREFIX) and key not in ("secret_link", "secret_code") and value
    ]
    topic = _humanize(kind) if kind else "your account"
    body = (
        "Hello,\n\n"
        f"There is news about your account: {topic.lower()}.\n"
        + ("\n" + "\n".join(details) + "\n" if details else "")
        + (f"\nOpen this link to continue:\n\n{link}\n" if link else "")
        + (f"\nYour code: {code}\n" if code else "")
        + ("".join(f"\n{line}\n" for line in other_secrets))
        + "\nIf you did not expect this email, please contact support."
    )
    return GENERIC_SUBJECT, body


def render(kind: str, payload: Optional[Mapping[str, Any]]) -> RenderedMail:
    """Render a notification as a subject and a plain-text body; never raises.

    Args:
        kind: Notification kind (template name); unknown kinds get a generic message.
        payload: Template data; ``secret_*`` values end up in the body only.

    Returns:
        The rendered mail.
    """
    data: Mapping[str, Any] = payload if isinstance(payload, Mapping) else {}
    template = TEMPLATES.get(kind)
    try:
        subject, body = template(data) if template else _generic(kind, data)
    except Exception:  # noqa: BLE001 - a template bug must not block delivery
        subject, body = _generic(kind, data)
    subject = _one_line(subject)
    for key, value in data.items():  # a secret never rides in a header
        if key.startswith(SECRET_PREFIX) and value not in (None, "") and str(value) in subject:
            subject = GENERIC_SUBJECT
    return RenderedMail(subject=subject or GENERIC_SUBJECT, body=body.rstrip() + SIGNATURE)


def mail_domain(sender: str) -> str:
    """Return the domain of a From address (``localhost`` if it has none)."""
    address = parseaddr(sender)[1]
    local, at, domain = address.rpartition("@")
    domain = domain.strip().lower() if at and local else ""
    return domain or "localhost"


def message_id(notification_id: int, domain: str) -> str:
    """Return the deterministic Message-ID of an outbox row: ``<outbox-{id}@{domain}>``.

    Args:
        notification_id: Primary key of the outbox row.
        domain: Domain part, normally that of the From address.

    Returns:
        The Message-ID, angle brackets included.
    """
    return f"<outbox-{int(notification_id)}@{domain}>"


def compose(
    notification_id: int,
    kind: str,
    recipient: str,
    payload: Optional[Mapping[str, Any]],
    *,
    sender: str,
    date: datetime,
) -> EmailMessage:
    """Build the e-mail of one outbox row.

    Args:
        notification_id: Primary key of the row (gives the Message-ID).
        kind: Notification kind.
        recipient: The To address.
        payload: Template data.
        sender: The From address (its domain is the Message-ID domain).
        date: The Date header (aware).

    Returns:
        A plain-text :class:`EmailMessage`, marked ``Auto-Submitted: auto-generated``.
    """
    rendered = render(kind, payload)
    message = EmailMessage()
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = rendered.subject
    message["Date"] = format_datetime(date.astimezone(timezone.utc))
    message["Message-ID"] = message_id(notification_id, mail_domain(sender))
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(rendered.body)
    return message


def secret_values(payload: Optional[Mapping[str, Any]]) -> Tuple[str, ...]:
    """Return the values of a payload's ``secret_*`` keys (to scrub them from texts)."""
    if not isinstance(payload, Mapping):
        return ()
    return tuple(str(v) for k, v in payload.items() if k.startswith(SECRET_PREFIX) and v not in (None, ""))


# --------------------------------------------------------------------------- mailers


class Mailer(Protocol):
    """Sends one message, or raises :class:`MailError`.

    Attributes:
        sender: The From address the dispatcher puts on every message.
    """

    sender: str

    def send(self, message: EmailMessage) -> None:
        """Deliver ``message`` to its To address.

        Raises:
            MailError: With a short, secret-free description.
        """


def _short(text: str) -> str:
    text = _one_line(text)
    return text if len(text) <= MAX_ERROR_LENGTH else text[: MAX_ERROR_LENGTH - 3] + "..."


def _reply(code: int, reply: Any) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return _short(f"SMTP {code} {text}")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class SmtpMailer:
    """Delivers through an SMTP server, one connection per message.

    Attributes:
        host: Server name or address.
        port: Server port.
        sender: From address; its address part is the envelope sender.
        starttls: Upgrade with STARTTLS (certificate verified) before anything else.
        username: Login name, or None for no login.
        password: Login password (never shown in ``repr``).
        timeout: Seconds for connecting and for each command.
        ssl_context: TLS settings (default: :func:`ssl.create_default_context`).
    """

    host: str
    port: int
    sender: str = DEFAULT_FROM
    starttls: bool = True
    username: Optional[str] = None
    password: Optional[str] = field(default=None, repr=False)
    timeout: float = DEFAULT_SMTP_TIMEOUT
    ssl_context: Optional[ssl.SSLContext] = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.username and self.password is None:
            raise ValueError("SMTP_USERNAME is set but SMTP_PASSWORD is not")
        if self.username and not self.starttls and not _is_loopback(self.host):
            raise ValueError(
                f"refusing to log in to {self.host} without STARTTLS (the password would cross "
                "the network in clear); set SMTP_STARTTLS=1"
            )

    def send(self, message: EmailMessage) -> None:
        """Deliver ``message`` to its To address.

        Raises:
            MailServerUnavailable: Connection refused or lost, timeout, TLS or login failure,
                a 421 or a refused envelope sender.
            TemporaryMailError: A 4xx answer to the recipient or the message.
            PermanentMailError: A 5xx answer to the recipient or the message.
        """
        envelope_from = parseaddr(self.sender)[1]
        recipients = [parseaddr(message["To"] or "")[1]]
        where = f"{self.host}:{self.port}"
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                smtp.ehlo()
                if self.starttls:
                    smtp.starttls(context=self.ssl_context or ssl.create_default_context())
                    smtp.ehlo()
                if self.username:
                    smtp.login(self.username, self.password or "")
                smtp.send_message(message, from_addr=envelope_from, to_addrs=recipients)
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()), (0, b"recipient refused"))
            error = PermanentMailError if code >= 500 else TemporaryMailError
            raise error(_reply(code, reply)) from None
        except smtplib.SMTPSenderRefused as exc:
            raise MailServerUnavailable("sender refused: " + _reply(exc.smtp_code, exc.smtp_error)) from None
        except smtplib.SMTPAuthenticationError as exc:
            raise MailServerUnavailable("login failed: " + _reply(exc.smtp_code, exc.smtp_error)) from None
        except smtplib.SMTPDataError as exc:
            error = PermanentMailError if exc.smtp_code >= 500 else TemporaryMailError
            raise error(_reply(exc.smtp_code, exc.smtp_error)) from None
        except smtplib.SMTPResponseException as exc:  # HELO, 421 and other session-level answers
            raise MailServerUnavailable(_reply(exc.smtp_code, exc.smtp_error)) from None
        except smtplib.SMTPNotSupportedError:
            raise MailServerUnavailable(f"{where} does not offer STARTTLS or AUTH") from None
        except (socket.timeout, TimeoutError):
            raise MailServerUnavailable(f"timed out after {self.timeout:g} s talking to {where}") from None
        except smtplib.SMTPServerDisconnected as exc:  # smtplib reports a read timeout this way
            if "timed out" in str(exc):
                raise MailServerUnavailable(f"timed out after {self.timeout:g} s talking to {where}") from None
            raise MailServerUnavailable(f"{where} closed the connection") from None
        except ssl.SSLError as exc:
            raise MailServerUnavailable(_short(f"TLS with {where} failed: {exc.reason or type(exc).__name__}")) from None
        except ConnectionRefusedError:
            raise MailServerUnavailable(f"connection to {where} refused") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise MailServerUnavailable(_short(f"{type(exc).__name__} talking to {where}: {exc}")) from None


@dataclass
class FileMailer:
    """Writes each message as an ``.eml`` file named after its Message-ID (local development).

    A message written twice (same Message-ID) replaces its file.

    Attributes:
        folder: Where the files go (created on the first send).
        sender: From address.
    """

    folder: Path = DEFAULT_MAIL_DIR
    sender: str = DEFAULT_FROM

    def path_for(self, message: EmailMessage) -> Path:
        """Return the file a message is written to."""
        ident = (message["Message-ID"] or "").strip("<> ") or f"message-{datetime.now(timezone.utc):%Y%m%d%H%M%S%f}"
        safe = "".join(c if c.isalnum() or c in "-_.@" else "_" for c in ident)
        return Path(self.folder) / f"{safe}.eml"

    def send(self, message: EmailMessage) -> None:
        """Write ``message`` atomically into the folder.

        Raises:
            MailServerUnavailable: If the folder cannot be written.
        """
        path = self.path_for(message)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".eml.part")
            partial.write_bytes(bytes(message))
            os.replace(partial, path)
        except OSError as exc:
            raise MailServerUnavailable(_short(f"cannot write {path}: {exc.strerror or type(exc).__name__}")) from None


# --------------------------------------------------------------------------- configuration


def _flag(value: Optional[str], default: bool) -> bool:
    if value is None or value.strip() == "":
        return default
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected 1 or 0, got {value!r}")


@dataclass(frozen=True)
class MailSettings:
    """Mail delivery settings (see the module docstring for the variables).

    Attributes:
        backend: ``file`` or ``smtp``.
        mail_dir: Folder of the file backend.
        mail_from: From address.
        smtp_host: SMTP server.
        smtp_port: SMTP port.
        smtp_starttls: Whether to use STARTTLS.
        smtp_username: Login name or None.
        smtp_password: Login password or None (hidden from ``repr``).
        smtp_timeout: Seconds per connection and command.
    """

    backend: str = "file"
    mail_dir: Path = DEFAULT_MAIL_DIR
    mail_from: str = DEFAULT_FROM
    smtp_host: str = DEFAULT_SMTP_HOST
    smtp_port: int = DEFAULT_SMTP_PORT
    smtp_starttls: bool = True
    smtp_username: Optional[str] = None
    smtp_password: Optional[str] = field(default=None, repr=False)
    smtp_timeout: float = DEFAULT_SMTP_TIMEOUT

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None) -> "MailSettings":
        """Read the settings from ``environ`` (default ``os.environ``).

        Raises:
            ValueError: On an unknown backend or a malformed number or flag.
        """
        env = os.environ if environ is None else environ
        backend = (env.get("MAIL_BACKEND") or "file").strip().lower()
        if backend not in BACKENDS:
            raise ValueError(f"MAIL_BACKEND must be one of {', '.join(BACKENDS)}, got {backend!r}")
        try:
            port = int(env.get("SMTP_PORT") or DEFAULT_SMTP_PORT)
            timeout = float(env.get("SMTP_TIMEOUT") or DEFAULT_SMTP_TIMEOUT)
            starttls = _flag(env.get("SMTP_STARTTLS"), True)
        except ValueError as exc:
            raise ValueError(f"invalid SMTP setting: {exc}") from None
        if not 0 < port < 65536 or timeout <= 0:
            raise ValueError("SMTP_PORT must be 1-65535 and SMTP_TIMEOUT positive")
        mail_dir = Path(env.get("MAIL_DIR") or DEFAULT_MAIL_DIR)
        return cls(
            backend=backend,
            mail_dir=mail_dir if mail_dir.is_absolute() else PROJECT_ROOT / mail_dir,
            mail_from=env.get("MAIL_FROM") or DEFAULT_FROM,
            smtp_host=env.get("SMTP_HOST") or DEFAULT_SMTP_HOST,
            smtp_port=port,
            smtp_starttls=starttls,
            smtp_username=env.get("SMTP_USERNAME") or None,
            smtp_password=env.get("SMTP_PASSWORD") or None,
            smtp_timeout=timeout,
        )


def make_mailer(settings: MailSettings) -> Mailer:
    """Build the mailer the settings ask for (nothing is connected or written yet).

    Args:
        settings: Mail settings.

    Returns:
        A :class:`SmtpMailer` or a :class:`FileMailer`.
    """
    if settings.backend == "smtp":
        return SmtpMailer(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.mail_from,
            starttls=settings.smtp_starttls,
            username=settings.smtp_username,
            password=settings.smtp_password,
            timeout=settings.smtp_timeout,
        )
    return FileMailer(folder=settings.mail_dir, sender=settings.mail_from)


def mailer_from_env(environ: Optional[Mapping[str, str]] = None) -> Mailer:
    """Build the mailer from ``MAIL_BACKEND`` and friends (default: ``.eml`` files in var/mail/).

    Args:
        environ: Mapping to read; defaults to ``os.environ``.

    Returns:
        The mailer.
    """
    return make_mailer(MailSettings.from_env(environ))
