"""Linking chat identities to accounts with an e-mailed code; listing, revoking, expiry.

Every test runs on SQLite and PostgreSQL (the ``world`` fixture).
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import timedelta

import pytest

from accounts import channel_links, step_up
from accounts.deps import Actor
from accounts.models import (
    Account, ChannelLink, Member, SecurityReportToken, SourceFailure, VerificationCode, VerificationFailure,
)
from accounts.results import Reason
from tests.accounts.verification_support import (
    SECRET, assert_no_secret_stored_or_logged, enable_tfa, key, last_code, mails, token_of, totp,
)

TG = ("telegram", "100200300")


def request(world, email, identity=TG):
    return channel_links.request_link(world.deps, channel=identity[0], channel_user_id=identity[1], email=email,
                                      idempotency_key=key("req"))


def confirm(world, code, identity=TG):
    return channel_links.confirm_link(world.deps, channel=identity[0], channel_user_id=identity[1], code=code,
                                      idempotency_key=key("conf"))


def wrong(code):
    return "000000" if code != "000000" else "111111"


def test_linking_with_the_code_sent_to_the_primary_address(world):
    acc = world.account()

    assert request(world, " Owner@Example.com ").expires_in_minutes == 10
    [mail] = mails(world, "verification_code")
    assert (mail.recipient_email, mail.payload["purpose"]) == ("owner@example.com", "channel_link")

    linked = confirm(world, mail.payload["secret_code"])

    assert linked.ok and (linked.account_id, linked.member_email, linked.channel) == (acc, "owner@example.com",
                                                                                     "telegram")
    assert (linked.expires_at - world.clock()).days == 90
    assert channel_links.find_linked_actor(world.deps, *TG) == Actor(acc, "owner@example.com")
    assert channel_links.find_linked_actor(world.deps, "slack", TG[1]) is None
    assert [m.recipient_email for m in mails(world, "channel_linked")] == ["owner@example.com"]
    assert [a.action for a in world.audits(outcome="succeeded")] == [
        "verification_code_sent", "channel_link_requested", "channel_linked"]


@pytest.mark.parametrize("email", ["nobody@example.com", "member@example.com", "closed@example.com",
                                   "disabled-owner@example.com"])
def test_the_answer_is_the_same_whether_or_not_the_address_can_be_linked(world, email):
    world.account(members=[("member@example.com", "member", "active")])
    world.account("closed@example.com", status="closed")
    disabled = world.account("disabled-owner@example.com")
    world.execute(Member.__table__.update().where(Member.account_id == disabled).values(status="disabled"))

    unknown = request(world, email)
    known = request(world, "owner@example.com", identity=("slack", "U1"))

    assert unknown == known and unknown.to_dict() == known.to_dict()
    assert [m.recipient_email for m in mails(world, "verification_code")] == ["owner@example.com"]
    assert confirm(world, "123456").reason == Reason.NO_CODE_PENDING
    audit = world.audits(action="channel_link_requested")[0]
    assert audit.account_id is None and email not in str(audit.details)


def test_only_a_syntactically_invalid_address_or_identity_is_refused(world):
    assert request(world, "not an address").reason == Reason.INVALID_EMAIL
    assert request(world, "owner@example.com", identity=("Tele gram", "1")).reason == Reason.INVALID_REQUEST
    assert request(world, "owner@example.com", identity=("telegram", "")).reason == Reason.INVALID_REQUEST


def test_link_codes_are_single_use_and_expire(world):
    world.account()
    request(world, "owner@example.com")
    code = last_code(world)
    world.clock.advance(minutes=10)
    assert confirm(world, code).reason == Reason.CODE_EXPIRED

    request(world, "owner@example.com")
    code = last_code(world)
    assert confirm(world, code).ok
    assert confirm(world, code).reason == Reason.NO_CODE_PENDING


def test_wrong_codes_are_counted_per_chat_identity_and_delay_after_five(world):
    acc = world.account()
    request(world, "owner@example.com")
    code = last_code(world)

    results = [confirm(world, wrong(code)) for _ in range(5)]

    assert [r.details["attempts_left"] for r in results] == [4, 3, 2, 1, 0]
    assert results[-1].details["retry_after_seconds"] == 30
    assert world.all(VerificationFailure) == []  # never on the account's own counters
    counter = world.all(SourceFailure, SourceFailure.source == channel_links.failure_source(*TG))[0]
    assert counter.failures == 5 and TG[1] not in counter.source
    world.clock.advance(seconds=30)
    assert confirm(world, code).reason == Reason.NO_CODE_PENDING  # the code was voided
    request(world, "owner@example.com")  # a new code does not reset the count
    assert confirm(world, wrong(last_code(world))).details["retry_after_seconds"] == 60
    assert world.count(ChannelLink) == 0


def test_a_chat_identity_has_one_active_link_and_relinking_replaces_it(world):
    first = world.account("first@example.com")
    second = world.account("second@example.com")
    request(world, "first@example.com")
    old = confirm(world, last_code(world))
    request(world, "second@example.com")
    new = confirm(world, last_code(world))

    assert channel_links.find_linked_actor(world.deps, *TG) == Actor(second, "second@example.com")
    rows = world.all(ChannelLink)
    assert [(r.id, r.revoked_at is not None) for r in rows] == [(old.link_id, True), (new.link_id, False)]
    assert channel_links.list_links(world.deps, world.actor(first, "first@example.com")).links == ()


def test_links_expire(world):
    world.account()
    request(world, "owner@example.com")
    confirm(world, last_code(world))
    world.clock.advance(days=90)
    assert channel_links.find_linked_actor(world.deps, *TG) is None


def test_a_disabled_member_or_closed_account_stops_a_link(world):
    acc = world.account()
    request(world, "owner@example.com")
    confirm(world, last_code(world))
    world.execute(Account.__table__.update().where(Account.id == acc).values(status="closed"))
    assert channel_links.find_linked_actor(world.deps, *TG) is None


def test_members_see_their_own_links_and_owners_all_and_revoke_them(world):
    acc = world.account(members=[("member@example.com", "member", "active")])
    other = world.account("other@example.com")
    request(world, "owner@example.com")
    owner_link = confirm(world, last_code(world))
    request(world, "other@example.com", identity=("slack", "U9"))
    other_link = confirm(world, last_code(world), identity=("slack", "U9"))
    member = world.member(acc, "member@example.com")
    now = world.clock()
    world.execute(ChannelLink.__table__.insert().values(
        channel="slack", channel_user_id="U2", account_id=acc, member_id=member.id,
        member_email=member.email, created_at=now, expires_at=now.replace(year=now.year + 1)))

    owner_view = channel_links.list_links(world.deps, world.actor(acc))
    member_view = channel_links.list_links(world.deps, world.actor(acc, "member@example.com"))
    assert [l.channel_user_id for l in owner_view.links] == [TG[1], "U2"]
    assert [l.channel_user_id for l in member_view.links] == ["U2"]

    member_actor = world.actor(acc, "member@example.com")
    for link_id in (owner_link.link_id, other_link.link_id, 99999):
        refused = channel_links.revoke_link(world.deps, member_actor, link_id, idempotency_key=key())
        assert refused.reason == Reason.LINK_NOT_FOUND
    assert channel_links.revoke_link(world.deps, world.actor(acc), other_link.link_id,
                                     idempotency_key=key()).reason == Reason.LINK_NOT_FOUND
    assert channel_links.revoke_link(world.deps, world.actor(acc), owner_link.link_id,
                                     idempotency_key=key()).ok
    assert channel_links.find_linked_actor(world.deps, *TG) is None
    assert channel_links.find_linked_actor(world.deps, "slack", "U9") == Actor(other, "other@example.com")
    assert channel_links.list_links(world.deps, world.actor(acc, "nobody@example.com")).reason == \
        Reason.NOT_PERMITTED


def test_link_codes_are_limited_per_address_without_telling(world):
    world.account()
    answers = {request(world, "owner@example.com", identity=("web", f"visitor-{i}")) for i in range(5)}
    assert len(answers) == 1 and len(mails(world, "verification_code")) == 3
    assert world.audits(action="channel_link_requested")[-1].details["suppressed"] == "send_limit"


def test_parallel_confirmations_of_one_code_link_once(world):
    world.account()
    request(world, "owner@example.com")
    code = last_code(world)

    results = world.run_threads(10, lambda i: confirm(world, code))

    assert sum(r.ok for r in results) == 1
    assert world.count(ChannelLink) == 1


def test_no_code_reaches_audit_events_or_logs(world, caplog):
    caplog.set_level(logging.DEBUG, logger="accounts")
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")
    world.account()
    request(world, "owner@example.com")
    code = last_code(world)
    confirm(world, wrong(code))
    confirm(world, code)
    assert world.all(VerificationCode)[0].code_hash != code
    assert_no_secret_stored_or_logged(world, [code], caplog.records)


def test_a_code_for_an_account_closed_meanwhile_links_nothing(world):
    acc = world.account()
    request(world, "owner@example.com")
    world.execute(Account.__table__.update().where(Account.id == acc).values(status="closed"))
    before = world.snapshot()

    world.assert_refused(before, confirm(world, last_code(world)), "account_closed")


def test_the_idempotency_record_of_a_confirmation_says_nothing_about_the_code(world):
    """The stored request fingerprint must not let anyone try the million 6-digit codes against it."""
    world.account()
    request(world, "owner@example.com")
    first_code = last_code(world)
    assert confirm(world, first_code).ok
    request(world, "owner@example.com")  # relinking the same chat identity with a new code
    second_code = last_code(world)
    assert confirm(world, second_code).ok

    confirmations = [r for r in world.idempotency_records() if r.operation == "confirm_link"]
    assert len(confirmations) == 2
    # same operation, channel and chat identity: the codes typed leave no trace in the fingerprint
    assert confirmations[0].request_hash == confirmations[1].request_hash


# --------------------------------------------------------------------------- issue #12


def app_confirm(world, code, identity=TG):
    return channel_links.confirm_link_app_code(world.deps, channel=identity[0], channel_user_id=identity[1],
                                               code=code, idempotency_key=key("app"))


def test_a_member_with_tfa_needs_the_app_code_as_well_as_the_emailed_code(world):
    """Issue #12: a chat linked by the e-mailed code alone acted for a TFA-enabled owner."""
    acc = world.account()
    enable_tfa(world, acc)
    request(world, "owner@example.com")
    code = last_code(world)

    assert confirm(world, code).reason == Reason.APP_CODE_REQUIRED
    assert channel_links.find_linked_actor(world.deps, *TG) is None
    assert confirm(world, code).reason == Reason.APP_CODE_REQUIRED  # no way round the app
    assert app_confirm(world, wrong(totp(SECRET, world.clock()))).reason == Reason.CODE_INVALID
    assert world.count(ChannelLink) == 0 and world.all(VerificationFailure) == []

    linked = app_confirm(world, totp(SECRET, world.clock()))

    assert linked.ok
    assert world.all(ChannelLink)[0].authenticators == "email_code+totp"
    assert channel_links.find_linked_actor(world.deps, *TG) == Actor(acc, "owner@example.com")
    assert app_confirm(world, totp(SECRET, world.clock())).reason == Reason.NO_CODE_PENDING


def test_the_app_code_step_needs_a_proved_emailed_code_first(world):
    acc = world.account()
    enable_tfa(world, acc)
    request(world, "owner@example.com")
    assert app_confirm(world, totp(SECRET, world.clock())).reason == Reason.NO_CODE_PENDING
    assert confirm(world, wrong(last_code(world))).reason == Reason.CODE_INVALID
    assert app_confirm(world, totp(SECRET, world.clock())).reason == Reason.NO_CODE_PENDING
    assert world.count(ChannelLink) == 0


def test_a_link_made_without_the_app_stops_when_the_member_turns_tfa_on(world):
    acc = world.account()
    request(world, "owner@example.com")
    assert confirm(world, last_code(world)).ok
    assert channel_links.find_linked_actor(world.deps, *TG) == Actor(acc, "owner@example.com")

    enable_tfa(world, acc)

    assert channel_links.find_linked_actor(world.deps, *TG) is None


def test_the_linked_mail_names_the_channel_and_carries_a_one_click_unlink(world):
    from accounts import tfa_recovery

    acc = world.account()
    request(world, "owner@example.com")
    linked = confirm(world, last_code(world))
    [mail] = mails(world, "channel_linked")
    assert mail.payload["channel"] == "telegram" and mail.recipient_email == "owner@example.com"
    link = mail.payload["secret_report_link"]
    assert link.startswith("https://portal.example.com/tfa/not-me?token=")
    [report] = world.all(SecurityReportToken)
    assert (report.event, report.channel_link_id) == ("channel_linked", linked.link_id)

    reported = tfa_recovery.report_not_me(world.deps, token=token_of(link), idempotency_key=key())

    assert reported.ok
    assert channel_links.find_linked_actor(world.deps, *TG) is None
    assert world.get(ChannelLink, linked.link_id).revoked_at == world.clock()


def test_widget_links_live_hours_not_days(world):
    world.account()
    widget = ("socketio", "f3b1c2d4-session")
    request(world, "owner@example.com", identity=widget)
    linked = confirm(world, last_code(world), identity=widget)
    assert linked.expires_at == world.clock() + timedelta(hours=12)
    world.clock.advance(hours=12)
    assert channel_links.find_linked_actor(world.deps, *widget) is None


def test_a_stranger_guessing_link_codes_never_locks_the_owner_out_of_step_up(world):
    """Issue #12: six hours of a stranger's guesses refused the owner's own right code for 22 minutes."""
    acc = world.account()
    stranger = ("telegram", "666")
    for _ in range(6 * 60):  # a guess a minute for six hours, with new codes as they run out
        if world.all(VerificationCode, VerificationCode.channel_user_id == "666", VerificationCode.used_at.is_(None),
                     VerificationCode.revoked_at.is_(None)) == []:
            request(world, "owner@example.com", identity=stranger)
        confirm(world, "000001", identity=stranger)
        world.clock.advance(minutes=1)

    assert step_up.start_step_up(world.deps, world.actor(acc), "close_account", idempotency_key=key()).ok
    granted = step_up.verify_step_up(world.deps, world.actor(acc), "close_account",
                                     last_code(world, "step_up"), idempotency_key=key())
    assert granted.ok, granted
    assert world.all(VerificationFailure) == []


def test_wrong_link_codes_from_all_chats_together_are_capped(world):
    world.settings = dataclasses.replace(world.settings, link_failure_global_cap=4, link_failure_window_minutes=60)
    world.deps = world.with_deps(settings=world.settings)
    chats = [("telegram", str(n)) for n in range(5)]
    for n, chat in enumerate(chats):
        world.account(f"owner{n}@example.com")
        request(world, f"owner{n}@example.com", identity=chat)
    assert [confirm(world, "000001", identity=chat).reason for chat in chats[:4]] == [Reason.CODE_INVALID] * 4

    capped = confirm(world, "000001", identity=chats[4])

    assert capped.reason == Reason.TOO_MANY_ATTEMPTS
    assert capped.details["retry_after_seconds"] == 60 * 60
    world.clock.advance(minutes=60)
    request(world, "owner4@example.com", identity=chats[4])
    assert confirm(world, "000001", identity=chats[4]).reason == Reason.CODE_INVALID


def test_parallel_wrong_codes_from_many_chats_are_all_counted(world):
    chats = [("telegram", f"77{n}") for n in range(8)]
    for n, chat in enumerate(chats):
        world.account(f"owner{n}@example.com")
        request(world, f"owner{n}@example.com", identity=chat)

    results = world.run_threads(len(chats), lambda i: confirm(world, "000001", identity=chats[i]))

    assert {r.reason for r in results} == {Reason.CODE_INVALID}
    [overall] = world.all(SourceFailure, SourceFailure.source == "channel_link:*")
    assert overall.failures == len(chats)
