"""Tests of accounts.demo: idempotent loading, and each demo account shows its branch."""

from __future__ import annotations

import pytest

from accounts import business, closing, currency, members
from accounts.demo import DEMO_ACCOUNTS, DEMO_RECOVERY_CODES, DEMO_TOTP_SECRET, demo_account_id, load_demo
from accounts.deps import Actor
from accounts.models import Account, Invitation, Member, TfaEnrolment, TfaRecoveryCode
from accounts.results import Reason
from accounts.security import hash_secret


@pytest.fixture
def demo(world):
    report = load_demo(world.session_factory, clock=world.clock, tokens=world.tokens)
    assert report.created == tuple(d.email for d in DEMO_ACCOUNTS)

    def actor(email, member=None):
        return Actor(demo_account_id(world.session_factory, email), member or email)

    return actor


def test_loading_twice_changes_nothing(world, demo):
    before = world.snapshot(exclude=())
    world.clock.advance(days=1)
    report = load_demo(world.session_factory, clock=world.clock)
    assert report.created == () and report.skipped == tuple(d.email for d in DEMO_ACCOUNTS)
    assert world.snapshot(exclude=()) == before


def test_loading_fills_in_missing_accounts_only(world):
    load_demo(world.session_factory, clock=world.clock, only=["clean@demo.example"])
    report = load_demo(world.session_factory, clock=world.clock)
    assert report.skipped == ("clean@demo.example",) and len(report.created) == len(DEMO_ACCOUNTS) - 1


def test_demo_accounts_are_documented():
    emails = [d.email for d in DEMO_ACCOUNTS]
    assert len(set(emails)) == len(emails) and all(e.endswith("@demo.example") for e in emails)
    assert all(d.description and "\n" not in d.description for d in DEMO_ACCOUNTS)


def test_clean_account_can_do_everything(world, demo):
    a = demo("clean@demo.example")
    assert business.check_switch_to_business(world.deps, a) is None
    assert currency.change_currency(world.deps, a, currency="USD", idempotency_key="c").ok
    assert closing.request_closure(world.deps, a, idempotency_key="x").ok


def test_unpaid_account_is_refused_with_its_invoice(world, demo):
    a = demo("unpaid@demo.example")
    result = closing.request_closure(world.deps, a, idempotency_key="x")
    assert result.reason == Reason.UNPAID_INVOICES and result.services == ()
    [invoice] = result.invoices
    assert (invoice.number, str(invoice.amount), invoice.currency) == ("DEMO-0001", "49.00", "EUR")
    assert business.check_switch_to_business(world.deps, a).reason == Reason.UNPAID_INVOICES


def test_services_account_is_refused_with_its_services(world, demo):
    result = closing.request_closure(world.deps, demo("services@demo.example"), idempotency_key="x")
    assert result.reason == Reason.ACTIVE_SERVICES
    assert [s.name for s in result.services] == ["Cloud VPS S", "Backup 100 GB"]


def test_payments_account_cannot_change_currency(world, demo):
    result = currency.change_currency(world.deps, demo("payments@demo.example"), currency="USD", idempotency_key="x")
    assert result.reason == Reason.PAYMENTS_EXIST and result.blocking == (Reason.PAYMENTS_EXIST,)


def test_negative_account_cannot_change_currency_or_go_business(world, demo):
    a = demo("negative@demo.example")
    result = currency.change_currency(world.deps, a, currency="EUR", idempotency_key="x")
    assert result.reason == Reason.NEGATIVE_BALANCE and result.details["balance"] == "-25.00"
    assert business.check_switch_to_business(world.deps, a).reason == Reason.NEGATIVE_BALANCE


def test_business_account_members(world, demo):
    owner = demo("business@demo.example")
    admin = Actor(owner.account_id, "admin@demo.example")
    account = world.get(Account, owner.account_id)
    assert (account.kind, account.payment_method, account.vat_id) == ("business", "wire_transfer", "DE123456789")
    assert business.check_vat_id(account.vat_id) == (True, None)
    roles = {m.email: (m.role, m.status) for m in world.all(Member, Member.account_id == owner.account_id)}
    assert roles == {
        "business@demo.example": ("owner", "active"),
        "admin@demo.example": ("admin", "active"),
        "member@demo.example": ("member", "active"),
        "invited@demo.example": ("member", "invited"),
    }
    [invitation] = world.all(Invitation)
    assert invitation.expires_at > world.clock() and invitation.token_hash not in world.tokens.issued
    assert members.invite_member(
        world.deps, admin, email="invited@demo.example", role="member", idempotency_key="i"
    ).reason == Reason.ALREADY_INVITED
    assert members.disable_member(
        world.deps, admin, email="business@demo.example", idempotency_key="d1"
    ).reason == Reason.CANNOT_DISABLE_OWNER
    assert members.disable_member(world.deps, owner, email="member@demo.example", idempotency_key="d2").ok
    assert business.check_switch_to_business(world.deps, owner).reason == Reason.ALREADY_BUSINESS


def test_tfa_account_has_enrolment_with_hashed_recovery_codes(world, demo):
    a = demo("tfa@demo.example")
    owner = world.member(a.account_id, "tfa@demo.example")
    [enrolment] = world.all(TfaEnrolment)
    assert (enrolment.member_id, enrolment.enabled, enrolment.secret) == (owner.id, True, DEMO_TOTP_SECRET)
    codes = world.all(TfaRecoveryCode)
    assert sorted(c.code_hash for c in codes) == sorted(hash_secret(c) for c in DEMO_RECOVERY_CODES)
    assert all(c.used_at is None for c in codes)
    dump = world.dump()
    assert not any(code in dump for code in DEMO_RECOVERY_CODES)


def test_demo_totp_secret_is_a_usable_base32_secret():
    import base64

    assert len(base64.b32decode(DEMO_TOTP_SECRET)) * 8 >= 160


def test_closing_account_can_be_undone(world, demo):
    a = demo("closing@demo.example")
    world.clock.advance(days=13)
    assert closing.undo_closure(world.deps, a, idempotency_key="u").ok


def test_readme_lists_every_demo_account():
    from pathlib import Path

    import accounts

    readme = (Path(accounts.__file__).parent / "README.md").read_text()
    for demo in DEMO_ACCOUNTS:
        assert f"| `{demo.email}` | {demo.description} |" in readme
    assert DEMO_TOTP_SECRET in readme


# --------------------------------------------------------------------------- where demo data may go


def test_demo_data_goes_only_into_the_default_sqlite_file_unless_demo_data_is_set():
    from accounts.demo import demo_data_wanted
    from accounts.settings import default_db_url

    assert demo_data_wanted(default_db_url(), {})
    assert not demo_data_wanted("postgresql://accounts@db.internal/accounts", {})
    assert not demo_data_wanted("sqlite:////srv/accounts.db", {"DEMO_DATA": "0"})
    assert demo_data_wanted("postgresql://accounts@db.internal/accounts", {"DEMO_DATA": "1"})


def _prepare(tmp_path, *command, **env):
    import os
    import subprocess
    import sys

    import sqlalchemy as sa

    from accounts.settings import PROJECT_ROOT

    tmp_path.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{tmp_path / 'accounts.db'}"
    environ = {k: v for k, v in os.environ.items() if k != "DEMO_DATA"}
    result = subprocess.run([sys.executable, "-m", "accounts", "--url", url, *command],
                            cwd=PROJECT_ROOT, env={**environ, "PYTHONPATH": str(PROJECT_ROOT), **env},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return set(conn.execute(sa.text("SELECT primary_email FROM accounts")).scalars())
    finally:
        engine.dispose()


def test_start_up_preparation_of_another_store_loads_no_published_secrets(tmp_path):
    assert _prepare(tmp_path, "prepare") == set()  # migrated, but no tfa@demo.example with its known secret


def test_demo_data_set_or_loading_by_hand_still_loads_the_demo_accounts(tmp_path):
    demo_emails = {d.email for d in DEMO_ACCOUNTS}
    assert _prepare(tmp_path / "a", "prepare", DEMO_DATA="1") == demo_emails
    assert _prepare(tmp_path / "b", "demo") == demo_emails
