"""Tests of accounts.mail: wording of every kind, Message-IDs, settings, and both mailers.

The SMTP tests talk to a real SMTP server (aiosmtpd) on 127.0.0.1.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Dict, Iterator, Tuple

import pytest

from accounts.mail import (
    DEFAULT_MAIL_DIR,
    GENERIC_SUBJECT,
    TEMPLATES,
    FileMailer,
    MailServerUnavailable,
    MailSettings,
    PermanentMailError,
    SmtpMailer,
    TemporaryMailError,
    compose,
    mail_domain,
    mailer_from_env,
    message_id,
    render,
)
from accounts.redaction import mask_known_secrets
from accounts.settings import PROJECT_ROOT
from tests.smtp_server import SmtpTestServer, free_port

SENDER = "Customer Support <no-reply@mail.example.com>"
NOW = dt.datetime(2024, 6, 3, 9, 0, tzinfo=dt.timezone.utc)
LINK = "https://portal.example.com/password-reset?token=SECRET-LINK-a1b2c3d4e5"
CODE = "SECRET-CODE-918273"

#: A realistic payload per kind, as the operations write them.
PAYLOADS: Dict[str, Dict[str, Any]] = {
    "account_closed": {"closed_at": "2024-06-17T09:00:00+00:00"},
    "closure_requested": {"grace_period_ends_at": "2024-06-17T09:00:00+00:00", "requested_by": "owner@example.com"},
    "closure_undone": {"undone_by": "owner@example.com"},
    "currency_changed": {"old_currency": "EUR", "new_currency": "USD", "changed_by": "owner@example.com"},
    "member_disabled": {"account_name": "Demo Widgets GmbH", "disabled_by": "owner@example.com"},
    "member_invitation": {"role": "admin", "invited_by": "owner@example.com", "account_name": "Demo Widgets GmbH",
                          "expires_at": "2024-06-10T09:00:00+00:00", "secret_link": LINK},
    "member_joined": {"email": "new@example.com", "role": "member"},
    "password_changed": {"changed_at": "2024-06-03T09:00:00+00:00"},
    "password_reset": {"expires_at": "2024-06-03T09:30:00+00:00", "expires_in_minutes": 30, "secret_link": LINK},
    "support_request_received": {"reference": "SR-000042", "reason": "switch_to_business"},
    "switched_to_business": {"company_name": "ACME Ltd", "vat_id": "DE123456789", "payment_method": "wire_transfer"},
    "verification_code": {"secret_code": CODE, "purpose": "step_up", "expires_in_minutes": 10},
    "tfa_reset": {"member_email": "owner@example.com", "reset_at": "2024-06-03T09:00:00+00:00",
                  "secret_report_link": LINK},
    "tfa_enrollment_link": {"secret_link": LINK, "expires_in_minutes": 60, "expires_at": "2024-06-03T10:00:00+00:00"},
    "tfa_enabled": {"enabled_at": "2024-06-03T09:00:00+00:00", "member_email": "owner@example.com"},
    "channel_linked": {"channel": "telegram", "member_email": "owner@example.com",
                       "linked_at": "2024-06-03T09:00:00+00:00", "expires_at": "2024-09-01T09:00:00+00:00",
                       "with_app": False, "secret_report_link": LINK},
}

#: What the subject (lower case) must mention, and what the body must contain.
EXPECTED: Dict[str, Tuple[str, Tuple[str, ...]]] = {
    "account_closed": ("closed", ("17 June 2024",)),
    "closure_requested": ("17 june 2024", ("undo", "owner@example.com")),
    "closure_undone": ("stay open", ("cancelled",)),
    "currency_changed": ("usd", ("from EUR to USD",)),
    "member_disabled": ("demo widgets gmbh", ("disabled", "owner@example.com")),
    "member_invitation": ("demo widgets gmbh", ("as an admin", LINK, "10 June 2024")),
    "member_joined": ("new@example.com", ("as a member",)),
    "password_changed": ("password", ("contact", "3 June 2024")),
    "password_reset": ("reset your password", (LINK, "30 minutes", "ignore")),
    "support_request_received": ("sr-000042", ("SR-000042",)),
    "switched_to_business": ("business", ("ACME Ltd", "DE123456789", "wire transfer")),
    "verification_code": ("verification code", (CODE, "10 minutes", "Never share", "confirm a change")),
    "tfa_reset": ("two-factor", (LINK, "owner@example.com", "3 June 2024", "not you")),
    "tfa_enrollment_link": ("two-factor", (LINK, "60 minutes")),
    "tfa_enabled": ("two-factor", ("authenticator", "owner@example.com")),
    "channel_linked": ("telegram", (LINK, "owner@example.com", "3 June 2024", "wasn't you", "unlink")),
}


def test_every_kind_in_use_has_its_own_wording():
    assert set(TEMPLATES) == set(PAYLOADS) == set(EXPECTED)


@pytest.mark.parametrize("kind", sorted(PAYLOADS))
def test_rendering_each_kind(kind):
    mail = render(kind, PAYLOADS[kind])
    subject_part, body_parts = EXPECTED[kind]
    assert subject_part in mail.subject.lower()
    assert mail.subject != GENERIC_SUBJECT
    for part in body_parts:
        assert part in mail.body
    assert mail.body.startswith("Hello,") and "Customer Support" in mail.body
    assert LINK not in mail.subject and CODE not in mail.subject
    assert "{" not in mail.body and "None" not in mail.body


@pytest.mark.parametrize("kind", sorted(PAYLOADS))
@pytest.mark.parametrize("payload", [{}, None, {"expires_at": "not a date", "role": None, "reference": 7,
                                                "grace_period_ends_at": 12, "email": ["x"]}])
def test_rendering_never_crashes_on_missing_or_odd_fields(kind, payload):
    mail = render(kind, payload)
    assert mail.subject and "\n" not in mail.subject and mail.body


def test_unknown_kind_gets_a_generic_but_complete_message():
    mail = render("parcel_lost", {"parcel_number": "P-1", "lost_at": "2024-06-03T09:00:00+00:00",
                                  "secret_link": LINK, "secret_code": CODE, "nested": {"a": 1}})
    assert mail.subject == GENERIC_SUBJECT
    assert "parcel lost" in mail.body
    assert "Parcel number: P-1" in mail.body and "3 June 2024 at 09:00 UTC" in mail.body
    assert LINK in mail.body and CODE in mail.body
    assert "nested" not in mail.body.lower()


def test_a_secret_never_reaches_a_header():
    # A payload whose subject field happens to carry the secret value.
    mail = render("member_invitation", {"account_name": LINK, "secret_link": LINK})
    assert mail.subject == GENERIC_SUBJECT and LINK in mail.body
    message = compose(5, "password_reset", "a@example.com", PAYLOADS["password_reset"], sender=SENDER, date=NOW)
    headers = "".join(f"{k}: {v}\n" for k, v in message.items())
    assert LINK not in headers
    assert LINK in message.get_content()


def test_message_id_is_deterministic_per_row_and_uses_the_sender_domain():
    assert message_id(42, "mail.example.com") == "<outbox-42@mail.example.com>"
    assert mail_domain(SENDER) == "mail.example.com" and mail_domain("nobody") == "localhost"
    first = compose(42, "closure_undone", "a@example.com", {}, sender=SENDER, date=NOW)
    again = compose(42, "closure_undone", "a@example.com", {}, sender=SENDER, date=NOW + dt.timedelta(hours=1))
    assert first["Message-ID"] == again["Message-ID"] == "<outbox-42@mail.example.com>"
    assert first["To"] == "a@example.com" and first["From"] == SENDER
    assert first["Auto-Submitted"] == "auto-generated" and first["Date"] == "Mon, 03 Jun 2024 09:00:00 +0000"
    assert first.get_content_type() == "text/plain"


def test_scrub_removes_secret_values():
    assert mask_known_secrets(f"550 rejected {LINK} x", [LINK, None, "ab"]) == "550 rejected [redacted] x"


# --------------------------------------------------------------------------- settings


def test_settings_defaults_write_files_under_var_mail():
    settings = MailSettings.from_env({})
    assert (settings.backend, settings.mail_dir) == ("file", PROJECT_ROOT / "var" / "mail")
    assert DEFAULT_MAIL_DIR == PROJECT_ROOT / "var" / "mail"
    mailer = mailer_from_env({})
    assert isinstance(mailer, FileMailer) and mailer.folder == DEFAULT_MAIL_DIR


def test_settings_for_smtp():
    env = {"MAIL_BACKEND": "smtp", "SMTP_HOST": "smtp.example.com", "SMTP_PORT": "2525", "SMTP_STARTTLS": "1",
           "SMTP_USERNAME": "bot", "SMTP_PASSWORD": "hunter2-secret", "SMTP_TIMEOUT": "3.5", "MAIL_FROM": SENDER}
    mailer = mailer_from_env(env)
    assert isinstance(mailer, SmtpMailer)
    assert (mailer.host, mailer.port, mailer.starttls, mailer.username, mailer.timeout, mailer.sender) == (
        "smtp.example.com", 2525, True, "bot", 3.5, SENDER)
    assert "hunter2" not in repr(mailer) and "hunter2" not in repr(MailSettings.from_env(env))


@pytest.mark.parametrize("env", [
    {"MAIL_BACKEND": "carrier-pigeon"},
    {"SMTP_PORT": "smtp"},
    {"SMTP_PORT": "0"},
    {"SMTP_STARTTLS": "maybe"},
    {"SMTP_TIMEOUT": "-1"},
])
def test_invalid_settings_are_refused(env):
    with pytest.raises(ValueError):
        MailSettings.from_env(env)


def test_a_login_without_starttls_is_refused_off_loopback():
    with pytest.raises(ValueError, match="STARTTLS"):
        mailer_from_env({"MAIL_BACKEND": "smtp", "SMTP_HOST": "smtp.example.com", "SMTP_STARTTLS": "0",
                         "SMTP_USERNAME": "bot", "SMTP_PASSWORD": "pw"})
    with pytest.raises(ValueError, match="SMTP_PASSWORD"):
        mailer_from_env({"MAIL_BACKEND": "smtp", "SMTP_USERNAME": "bot"})
    mailer_from_env({"MAIL_BACKEND": "smtp", "SMTP_HOST": "127.0.0.1", "SMTP_STARTTLS": "0",
                     "SMTP_USERNAME": "bot", "SMTP_PASSWORD": "pw"})


def test_nothing_connects_or_writes_at_import_or_construction(tmp_path):
    code = (
        "import socket\n"
        "def refuse(*a, **k): raise AssertionError('connected')\n"
        "socket.socket.connect = refuse\n"
        "import accounts.mail, accounts.dispatch, accounts.__main__\n"
        f"accounts.mail.mailer_from_env({{'MAIL_BACKEND': 'smtp'}})\n"
        f"accounts.mail.mailer_from_env({{'MAIL_DIR': {str(tmp_path / 'mail')!r}}})\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, check=True, timeout=60)
    assert not (tmp_path / "mail").exists()


# --------------------------------------------------------------------------- file mailer


def test_file_mailer_writes_one_eml_per_message_id(tmp_path):
    mailer = FileMailer(folder=tmp_path / "mail", sender=SENDER)
    message = compose(7, "password_reset", "a@example.com", PAYLOADS["password_reset"], sender=SENDER, date=NOW)
    mailer.send(message)
    mailer.send(message)  # a repeat replaces the file: duplicates are visible by name
    files = list((tmp_path / "mail").iterdir())
    assert [f.name for f in files] == ["outbox-7@mail.example.com.eml"]
    import email
    import email.policy

    parsed = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
    assert parsed["Subject"] == "Reset your password" and LINK in parsed.get_content()


def test_file_mailer_reports_an_unwritable_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    mailer = FileMailer(folder=blocker / "mail", sender=SENDER)
    with pytest.raises(MailServerUnavailable, match="cannot write"):
        mailer.send(compose(1, "tfa_enabled", "a@example.com", {}, sender=SENDER, date=NOW))


# --------------------------------------------------------------------------- SMTP mailer


@pytest.fixture
def smtp_server() -> Iterator[SmtpTestServer]:
    """A real SMTP server on 127.0.0.1."""
    with SmtpTestServer() as server:
        yield server


def _message(kind: str = "password_reset", to: str = "customer@example.com", ident: int = 1) -> EmailMessage:
    return compose(ident, kind, to, PAYLOADS.get(kind, {}), sender=SENDER, date=NOW)


def test_smtp_delivers_a_real_message(smtp_server):
    mailer = SmtpMailer(host="127.0.0.1", port=smtp_server.port, sender=SENDER, starttls=False, timeout=5)
    mailer.send(_message())
    [received] = smtp_server.wait_for(1)
    assert received.mail_from == "no-reply@mail.example.com"
    assert received.rcpt_tos == ["customer@example.com"]
    assert received.message["Subject"] == "Reset your password"
    assert received.message["Message-ID"] == "<outbox-1@mail.example.com>"
    assert LINK in received.message.get_content()


def test_smtp_classifies_answers(smtp_server):
    mailer = SmtpMailer(host="127.0.0.1", port=smtp_server.port, sender=SENDER, starttls=False, timeout=5)
    smtp_server.data_replies.append("451 4.3.0 Try again later")
    with pytest.raises(TemporaryMailError) as temporary:
        mailer.send(_message())
    assert not temporary.value.permanent and not temporary.value.server_unavailable
    assert str(temporary.value) == "SMTP 451 4.3.0 Try again later"
    smtp_server.rcpt_replies.append("550 5.1.1 No such user")
    with pytest.raises(PermanentMailError, match="550 5.1.1"):
        mailer.send(_message())
    smtp_server.data_replies.append("554 5.7.1 Message rejected as spam")
    with pytest.raises(PermanentMailError, match="554"):
        mailer.send(_message())
    assert smtp_server.messages == []


def test_smtp_with_nothing_listening_is_server_unavailable():
    port = free_port()
    mailer = SmtpMailer(host="127.0.0.1", port=port, sender=SENDER, starttls=False, timeout=2)
    with pytest.raises(MailServerUnavailable, match=f"connection to 127.0.0.1:{port} refused"):
        mailer.send(_message())


def test_smtp_timeout_is_server_unavailable():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)  # accepts connections, never greets
    try:
        mailer = SmtpMailer(host="127.0.0.1", port=listener.getsockname()[1], sender=SENDER,
                            starttls=False, timeout=0.3)
        with pytest.raises(MailServerUnavailable, match="timed out after 0.3 s"):
            mailer.send(_message())
    finally:
        listener.close()


def _self_signed(tmp_path: Path) -> Tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a fresh self-signed certificate for 127.0.0.1 and a client context trusting it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5))
        .not_valid_after(dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_path, key_path)
    client = ssl.create_default_context(cafile=str(cert_path))
    return server, client


def test_smtp_starttls_and_login(tmp_path):
    server_tls, client_tls = _self_signed(tmp_path)
    with SmtpTestServer(tls_context=server_tls, credentials=("bot", "s3cret-pw")) as server:
        good = SmtpMailer(host="127.0.0.1", port=server.port, sender=SENDER, starttls=True,
                          username="bot", password="s3cret-pw", timeout=5, ssl_context=client_tls)
        good.send(_message())
        assert len(server.wait_for(1)) == 1
        bad = SmtpMailer(host="127.0.0.1", port=server.port, sender=SENDER, starttls=True,
                         username="bot", password="wrong", timeout=5, ssl_context=client_tls)
        with pytest.raises(MailServerUnavailable, match="login failed") as failure:
            bad.send(_message())
        assert "wrong" not in str(failure.value)
        untrusting = SmtpMailer(host="127.0.0.1", port=server.port, sender=SENDER, starttls=True, timeout=5)
        with pytest.raises(MailServerUnavailable, match="TLS"):
            untrusting.send(_message())  # the self-signed certificate is not trusted by default
        plain = SmtpMailer(host="127.0.0.1", port=server.port, sender=SENDER, starttls=False, timeout=5)
        with pytest.raises(MailServerUnavailable):
            plain.send(_message())  # the server requires STARTTLS
        assert len(server.messages) == 1


