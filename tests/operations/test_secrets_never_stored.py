"""Every secret used in a conversation stays out of the tracker store, the logs and, once mailed, the account store.

Runs the identity flows over the REST channel (step-up with an emailed code,
step-up with the authenticator app, lost-TFA recovery with a recovery code and
an emailed code), lets the mail dispatcher deliver everything, then scans the
tracker database, the assistant's log output and the whole account database
for every code and token it used. The scan matches whole tokens only: a
6-digit code inside a SHA-256 hex digest or after a timestamp's decimal point
is not a leak.
"""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import pyotp
import pytest
import sqlalchemy as sa

from accounts.demo import DEMO_RECOVERY_CODES, DEMO_TOTP_SECRET
from accounts.deps import Deps
from accounts.dispatch import dispatch_pending
from accounts.mail import FileMailer
from accounts.models import Account, OutboxNotification, TfaEnrolment, TfaPendingProof, metadata
from tests.conftest import RunningAssistant
from tests.operations.conftest import Customer, Store
from tests.secret_scan import contains_secret

pytestmark = pytest.mark.slow


def tracker_dump(assistant: RunningAssistant) -> str:
    """Everything in the tracker database, as text."""
    path = assistant.log_path.parent / "tracker.db"
    with sqlite3.connect(path) as db:
        tables = [row[0] for row in db.execute("select name from sqlite_master where type='table'")]
        return "\n".join(str(row) for table in tables for row in db.execute(f'select * from "{table}"'))


def account_store_dump(store: Store) -> str:
    """Every row of every table of the account database, as text."""
    with store.factory() as session:
        return "\n".join(str(tuple(row)) for table in metadata.sorted_tables
                         for row in session.execute(sa.select(table)))


def test_codes_and_tokens_never_reach_the_tracker_store_or_logs(
    assistant: RunningAssistant, new_customer, store: Store,
):
    used = []

    # 1. step-up with an emailed code
    customer = new_customer()
    used.append(customer.token)
    customer.says("change my account currency")
    customer.says("USD")
    customer.says("yes")
    code = store.latest_code(customer.email)
    used.append(code)
    assert "now USD" in customer.says(code)

    # 2. step-up with the authenticator app, after a wrong code
    tfa_customer = new_customer()
    secret = store.enable_tfa(tfa_customer.account_id, tfa_customer.email)
    tfa_customer.says("change the currency")
    tfa_customer.says("GBP")
    tfa_customer.says("yes")
    totp = pyotp.TOTP(secret).now()
    wrong = str((int(totp) + 1) % 1_000_000).zfill(6)
    used += [totp, wrong]
    tfa_customer.says(wrong)
    assert "now GBP" in tfa_customer.says(totp)

    # 3. lost TFA app: recovery code + emailed code, on the demo TFA account
    with store.factory() as session:
        demo_id = session.execute(sa.select(Account.id).where(
            Account.primary_email == "tfa@demo.example")).scalar_one()
    demo = Customer(assistant, demo_id, "tfa@demo.example", f"op-{uuid.uuid4().hex}")
    used.append(demo.token)
    assert "recovery codes" in demo.says("I lost my phone with the authenticator app")
    recovery_code = DEMO_RECOVERY_CODES[2]
    used.append(recovery_code)
    assert "6-digit code" in demo.says(recovery_code)
    email_code = store.latest_code("tfa@demo.example")
    used.append(email_code)
    assert "old authenticator app no longer works" in demo.says(email_code)
    link = store.latest_secret("tfa@demo.example", "tfa_enrollment_link", "secret_link",
                               r"^(https?://\S+/tfa/enroll\?token=\S+)$")
    with store.factory() as session:
        old_secret_active = session.execute(sa.select(TfaEnrolment.id).where(
            TfaEnrolment.secret == DEMO_TOTP_SECRET, TfaEnrolment.enabled.is_(True))).first()
    assert old_secret_active is None  # the old authenticator is revoked at once
    used.append(link.split("token=")[1])
    report = store.latest_secret("tfa@demo.example", "tfa_reset", "secret_report_link",
                                 r"^(https?://\S+/tfa/not-me\?token=\S+)$")
    used.append(report.split("token=")[1])

    # deliver everything still waiting (the assistant's own dispatcher may have sent most already)
    mailer = FileMailer(folder=Path(assistant.log_path).parent / "mail")
    while dispatch_pending(Deps(session_factory=store.factory), mailer).handled:
        pass
    with store.factory() as session:
        waiting = session.execute(sa.select(sa.func.count()).select_from(OutboxNotification).where(
            OutboxNotification.sent_at.is_(None), OutboxNotification.failed_at.is_(None))).scalar_one()
    assert waiting == 0
    accounts = account_store_dump(store)
    assert "tfa@demo.example" in accounts and "verification_code" in accounts  # the scan sees the rows...

    stored = tracker_dump(assistant)
    logged = Path(assistant.log_path).read_text(errors="replace")
    with store.factory() as session:  # the lost-app form's pending proof, between its two messages
        proofs = [tuple(row) for row in session.execute(sa.select(TfaPendingProof.__table__))]
    assert [p for p in proofs if p[TfaPendingProof.__table__.c.keys().index("account_id")] == demo_id]
    assert "now USD" in stored  # the conversations are there...
    for secret_value in used:
        assert not contains_secret(stored, secret_value), f"a secret reached the tracker store: {secret_value[:4]}..."
        assert not contains_secret(logged, secret_value), f"a secret reached the logs: {secret_value[:4]}..."
        assert not contains_secret(str(proofs), secret_value), \
            f"a secret reached the pending proofs: {secret_value[:4]}..."
        assert not contains_secret(accounts, secret_value), \
            f"a secret stayed in the account store after delivery: {secret_value[:4]}..."
