"""Lost authenticator app: two proofs, instant revocation, enrolment link, notices, "not me".

Every test runs on SQLite and PostgreSQL (the ``world`` fixture).
"""

from __future__ import annotations

import logging

import pyotp

from accounts import step_up, tfa_recovery
from accounts.demo import DEMO_RECOVERY_CODES, DEMO_TOTP_SECRET, demo_account_id, load_demo
from accounts.deps import Actor
from accounts.models import (
    SecurityReportToken,
    StepUpGrant,
    SupportRequest,
    TfaEnrolment,
    TfaEnrollmentToken,
    TfaRecoveryCode,
)
from accounts.results import Reason
from accounts.security import hash_secret
from tests.accounts.verification_support import (
    RECOVERY,
    SECRET,
    assert_no_secret_stored_or_logged,
    enable_tfa,
    key,
    last_code,
    mails,
    token_of,
    totp,
)

TEAM = [("admin@example.com", "admin", "active"), ("member@example.com", "member", "active"),
        ("invited@example.com", "member", "invited"), ("gone@example.com", "member", "disabled")]


def start(world, acc, email="owner@example.com", context=None):
    return tfa_recovery.start_tfa_recovery(world.deps, world.actor(acc, email), idempotency_key=key("start"),
                                           context=context)


def complete(world, acc, recovery_code, email_code, email="owner@example.com"):
    return tfa_recovery.complete_tfa_recovery(world.deps, world.actor(acc, email), recovery_code=recovery_code,
                                              email_code=email_code, idempotency_key=key("complete"))


def recovered(world, acc):
    """Run steps 1-3 successfully; return the enrolment token from the e-mailed link."""
    assert start(world, acc).ok
    assert complete(world, acc, RECOVERY[0], last_code(world, "tfa_recovery")).ok
    return token_of(mails(world, "tfa_enrollment_link")[-1].payload["secret_link"])


def wrong(code):
    return "000000" if code != "000000" else "111111"


# --------------------------------------------------------------------------- 1. start


def test_start_emails_a_code_to_the_member(world):
    acc = world.account()
    enable_tfa(world, acc)

    started = start(world, acc)

    assert started.ok and started.expires_in_minutes == 10
    [mail] = mails(world, "verification_code")
    assert (mail.recipient_email, mail.payload["purpose"]) == ("owner@example.com", "tfa_recovery")
    assert world.count(SupportRequest) == 0


def test_without_recovery_codes_support_gets_the_conversation_scrubbed_and_nothing_is_reset(world):
    acc = world.account()
    enrolment_id = enable_tfa(world, acc, recovery=())
    chat = {"conversation_id": "conv-7", "transcript": [
        {"from": "user", "text": "I lost my phone, my old code was 123 456"},
        {"from": "user", "text": "maybe ABCD-EFGH-JKLM-NPQR or https://x.example/tfa/enroll?token=abcdefghijklmnopqrstuv"},
        {"from": "user", "text": "password: hunter2"},
    ]}

    refused = start(world, acc, context=chat)

    assert refused.reason == Reason.NO_RECOVERY_CODES and refused.support_request_id
    assert refused.details["reference"].startswith("SR-")
    [request] = world.all(SupportRequest)
    assert request.reason == "lost_tfa_device" and request.contact_email == "owner@example.com"
    text = str(request.context)
    for secret in ("123 456", "ABCD-EFGH-JKLM-NPQR", "abcdefghijklmnopqrstuv", "hunter2"):
        assert secret not in text
    assert "I lost my phone" in text and request.context["conversation"]["conversation_id"] == "conv-7"
    assert world.get(TfaEnrolment, enrolment_id).enabled
    assert mails(world, "verification_code") == []
    # asking again reuses the open request
    assert start(world, acc, context=chat).support_request_id == refused.support_request_id
    assert world.count(SupportRequest) == 1


def test_without_tfa_support_is_asked_too(world):
    acc = world.account()
    refused = start(world, acc)
    assert refused.reason == Reason.TFA_NOT_ENABLED and refused.support_request_id
    assert world.count(SupportRequest) == 1


# --------------------------------------------------------------------------- 2.-4. complete


def test_both_proofs_revoke_the_old_secret_at_once_and_every_address_is_told(world):
    acc = world.account(members=TEAM)
    enrolment_id = enable_tfa(world, acc)
    assert step_up.verify_step_up(world.deps, world.actor(acc), "close_account", totp(SECRET, world.clock()),
                                  idempotency_key=key()).ok
    start(world, acc)

    done = complete(world, acc, " aaaa-bbbb-cccc-dddd ", last_code(world, "tfa_recovery"))

    assert done.ok and done.notified_addresses == 3
    enrolment = world.get(TfaEnrolment, enrolment_id)
    assert (enrolment.enabled, enrolment.secret, enrolment.revoked_at) == (False, "", world.clock())
    assert not step_up.has_step_up(world.deps, world.actor(acc), "close_account")
    world.clock.advance(seconds=30)
    old_app = step_up.start_step_up(world.deps, world.actor(acc), "close_account", idempotency_key=key())
    assert old_app.method == "email_code"  # the old app no longer counts
    [link] = mails(world, "tfa_enrollment_link")
    assert link.recipient_email == "owner@example.com" and link.payload["expires_in_minutes"] == 15
    assert link.payload["secret_link"].startswith("https://portal.example.com/tfa/enroll?token=")
    notices = mails(world, "tfa_reset")
    assert sorted(n.recipient_email for n in notices) == ["admin@example.com", "member@example.com",
                                                          "owner@example.com"]
    assert all("/tfa/not-me?token=" in n.payload["secret_report_link"] for n in notices)
    assert len({n.payload["secret_report_link"] for n in notices}) == 3
    assert world.count(SecurityReportToken) == 3
    steps = ["tfa_recovery_started", "tfa_recovery_verified", "tfa_secret_revoked", "tfa_enrollment_link_sent",
             "tfa_reset_notified"]
    assert [a.action for a in world.audits(outcome="succeeded") if a.action in steps] == steps


def test_a_recovery_code_is_single_use(world):
    acc = world.account()
    enable_tfa(world, acc)
    recovered(world, acc)
    start(world, acc)

    assert complete(world, acc, RECOVERY[0], last_code(world, "tfa_recovery")).reason == Reason.CODE_INVALID
    assert complete(world, acc, RECOVERY[1], last_code(world, "tfa_recovery")).ok  # the others still work
    used = world.all(TfaRecoveryCode, TfaRecoveryCode.used_at.is_not(None))
    assert {c.code_hash for c in used} == {hash_secret(RECOVERY[0]), hash_secret(RECOVERY[1])}
    # a second recovery revokes the first enrolment link
    tokens = world.all(TfaEnrollmentToken)
    assert tokens[0].revoked_at is not None and tokens[1].revoked_at is None


def test_one_wrong_proof_is_enough_to_refuse_without_saying_which(world):
    acc = world.account()
    enrolment_id = enable_tfa(world, acc)
    start(world, acc)
    code = last_code(world, "tfa_recovery")

    bad_recovery = complete(world, acc, "ZZZZ-ZZZZ-ZZZZ-ZZZZ", code)
    bad_email = complete(world, acc, RECOVERY[0], wrong(code))

    assert bad_recovery.to_dict() == bad_email.to_dict()
    assert bad_recovery.reason == Reason.CODE_INVALID and bad_recovery.details == {}
    assert world.get(TfaEnrolment, enrolment_id).enabled
    assert world.count(TfaRecoveryCode, TfaRecoveryCode.used_at.is_not(None)) == 0
    assert [a.details["failed"] for a in world.audits(outcome="refused", action="complete_tfa_recovery")] == [
        ["recovery_code"], ["email_code"]]
    assert complete(world, acc, RECOVERY[0], code).ok


def test_recovery_codes_are_brute_force_limited(world):
    acc = world.account()
    enable_tfa(world, acc)
    start(world, acc)
    code = last_code(world, "tfa_recovery")
    results = [complete(world, acc, f"XXXX-XXXX-XXXX-XXX{i}", code) for i in range(5)]

    assert results[-1].details["retry_after_seconds"] == 30
    assert complete(world, acc, RECOVERY[0], code).reason == Reason.TOO_MANY_ATTEMPTS
    world.clock.advance(seconds=30)
    assert complete(world, acc, RECOVERY[0], code).ok


def test_the_emailed_code_must_be_pending_and_fresh(world):
    acc = world.account()
    enable_tfa(world, acc)
    assert complete(world, acc, RECOVERY[0], "123456").reason == Reason.NO_CODE_PENDING
    start(world, acc)
    world.clock.advance(minutes=10)
    assert complete(world, acc, RECOVERY[0], last_code(world, "tfa_recovery")).reason == Reason.CODE_EXPIRED


def test_another_member_cannot_use_the_owners_proofs(world):
    acc = world.account(members=TEAM)
    enable_tfa(world, acc)
    start(world, acc)
    code = last_code(world, "tfa_recovery")
    assert complete(world, acc, RECOVERY[0], code, email="admin@example.com").reason == Reason.TFA_NOT_ENABLED
    other = world.account("other@example.com")
    assert complete(world, other, RECOVERY[0], code, email="owner@example.com").reason == Reason.NOT_PERMITTED


# --------------------------------------------------------------------------- 5. enrolment


def test_enrolment_activates_only_with_a_valid_code_and_shows_fresh_recovery_codes_once(world):
    acc = world.account()
    enrolment_id = enable_tfa(world, acc)
    token = recovered(world, acc)

    page = tfa_recovery.begin_enrollment(world.deps, token=token, idempotency_key=key())
    again = tfa_recovery.begin_enrollment(world.deps, token=token, idempotency_key=key())
    assert page.ok and page.secret == again.secret and len(page.secret) == 32 and page.secret != SECRET
    assert page.provisioning_uri == pyotp.TOTP(page.secret).provisioning_uri(
        name="owner@example.com", issuer_name="Example Portal")
    assert not world.get(TfaEnrolment, enrolment_id).enabled

    refused = tfa_recovery.complete_enrollment(world.deps, token=token, code=totp(SECRET, world.clock()),
                                               idempotency_key=key())
    assert refused.reason == Reason.CODE_INVALID and not world.get(TfaEnrolment, enrolment_id).enabled

    world.clock.advance(seconds=40)
    enrol_key = key("enrol")
    new_code = totp(page.secret, world.clock())
    done = tfa_recovery.complete_enrollment(world.deps, token=token, code=new_code, idempotency_key=enrol_key)
    assert done.ok and len(done.recovery_codes) == 10 and len(set(done.recovery_codes)) == 10
    enrolment = world.get(TfaEnrolment, enrolment_id)
    assert (enrolment.enabled, enrolment.secret, enrolment.revoked_at) == (True, page.secret, None)
    stored = {c.code_hash for c in world.all(TfaRecoveryCode, TfaRecoveryCode.enrolment_id == enrolment_id)}
    assert stored == {hash_secret(c) for c in done.recovery_codes}
    assert [m.recipient_email for m in mails(world, "tfa_enabled")] == ["owner@example.com"]
    assert world.all(TfaEnrollmentToken)[0].pending_secret is None

    # single use; the same code cannot then pass a step-up either
    assert tfa_recovery.complete_enrollment(world.deps, token=token, code=totp(page.secret, world.clock()),
                                            idempotency_key=key()).reason == Reason.TOKEN_USED
    assert tfa_recovery.begin_enrollment(world.deps, token=token, idempotency_key=key()).reason == Reason.TOKEN_USED
    assert step_up.verify_step_up(world.deps, world.actor(acc), "close_account", totp(page.secret, world.clock()),
                                  idempotency_key=key()).reason == Reason.CODE_USED
    world.clock.advance(seconds=30)
    assert step_up.verify_step_up(world.deps, world.actor(acc), "close_account", totp(page.secret, world.clock()),
                                  idempotency_key=key()).ok
    # a retried call with the same key replays the result, without the codes (never stored)
    replay = tfa_recovery.complete_enrollment(world.deps, token=token, code=new_code, idempotency_key=enrol_key)
    assert replay.ok and replay.recovery_codes is None


def test_enrolment_links_expire_after_fifteen_minutes_and_unknown_ones_are_refused(world):
    acc = world.account()
    enable_tfa(world, acc)
    token = recovered(world, acc)
    world.clock.advance(minutes=15)

    assert tfa_recovery.begin_enrollment(world.deps, token=token, idempotency_key=key()).reason == \
        Reason.TOKEN_EXPIRED
    assert tfa_recovery.begin_enrollment(world.deps, token="nope", idempotency_key=key()).reason == \
        Reason.INVALID_TOKEN
    assert tfa_recovery.complete_enrollment(world.deps, token=token, code="123456", idempotency_key=key()).reason \
        == Reason.TOKEN_EXPIRED


def test_enrolment_codes_are_brute_force_limited(world):
    acc = world.account()
    enable_tfa(world, acc)
    token = recovered(world, acc)
    page = tfa_recovery.begin_enrollment(world.deps, token=token, idempotency_key=key())
    right = totp(page.secret, world.clock())
    results = [tfa_recovery.complete_enrollment(world.deps, token=token, code=wrong(right), idempotency_key=key())
               for _ in range(5)]
    assert results[-1].details["retry_after_seconds"] == 30
    assert tfa_recovery.complete_enrollment(world.deps, token=token, code=right,
                                            idempotency_key=key()).reason == Reason.TOO_MANY_ATTEMPTS


# --------------------------------------------------------------------------- "not me"


def test_not_me_revokes_pending_links_and_opens_a_support_request_once(world):
    acc = world.account(members=TEAM)
    enable_tfa(world, acc)
    token = recovered(world, acc)
    report = token_of([n for n in mails(world, "tfa_reset") if n.recipient_email == "member@example.com"][0]
                      .payload["secret_report_link"])

    assert tfa_recovery.check_report_token(world.deps, report) is None
    reported = tfa_recovery.report_not_me(world.deps, token=report, idempotency_key=key())

    assert reported.ok and reported.reference.startswith("SR-")
    request = world.get(SupportRequest, reported.support_request_id)
    assert (request.reason, request.contact_email) == ("tfa_reset_not_me", "member@example.com")
    assert request.context["enrollment_links_revoked"] == 1
    assert tfa_recovery.begin_enrollment(world.deps, token=token, idempotency_key=key()).reason == \
        Reason.TOKEN_REVOKED
    assert tfa_recovery.report_not_me(world.deps, token=report, idempotency_key=key()).reason == Reason.TOKEN_USED
    assert tfa_recovery.check_report_token(world.deps, report) == Reason.TOKEN_USED
    assert tfa_recovery.report_not_me(world.deps, token="forged", idempotency_key=key()).reason == \
        Reason.INVALID_TOKEN
    assert world.audits(action="tfa_reset_reported_not_me")


def test_not_me_also_unlinks_every_chat_and_switches_off_an_app_enrolled_since(world):
    """Issue #12 item 15: an attacker's new app and linked chats survived a "this was not me"."""
    from accounts import channel_links
    from accounts.models import ChannelLink

    acc = world.account()
    enrolment_id = enable_tfa(world, acc)
    token = recovered(world, acc)
    report = token_of(mails(world, "tfa_reset")[-1].payload["secret_report_link"])
    page = tfa_recovery.begin_enrollment(world.deps, token=token, idempotency_key=key())
    world.clock.advance(seconds=40)
    assert tfa_recovery.complete_enrollment(world.deps, token=token, code=totp(page.secret, world.clock()),
                                            idempotency_key=key()).ok
    chat = ("telegram", "4242")
    channel_links.request_link(world.deps, channel=chat[0], channel_user_id=chat[1], email="owner@example.com",
                               idempotency_key=key())
    assert channel_links.confirm_link(world.deps, channel=chat[0], channel_user_id=chat[1],
                                      code=last_code(world, "channel_link"),
                                      idempotency_key=key()).reason == Reason.APP_CODE_REQUIRED
    world.clock.advance(seconds=30)
    assert channel_links.confirm_link_app_code(world.deps, channel=chat[0], channel_user_id=chat[1],
                                               code=totp(page.secret, world.clock()), idempotency_key=key()).ok

    reported = tfa_recovery.report_not_me(world.deps, token=report, idempotency_key=key())

    assert reported.ok
    assert channel_links.find_linked_actor(world.deps, *chat) is None
    assert [link.revoked_at for link in world.all(ChannelLink)] == [world.clock()]
    enrolment = world.get(TfaEnrolment, enrolment_id)
    assert (enrolment.enabled, enrolment.secret, enrolment.revoked_at) == (False, "", world.clock())
    assert world.all(TfaRecoveryCode, TfaRecoveryCode.enrolment_id == enrolment_id) == []
    request = world.get(SupportRequest, reported.support_request_id)
    assert (request.context["channel_links_revoked"], request.context["apps_switched_off"]) == (1, 1)


# --------------------------------------------------------------------------- secrets and the demo


def test_no_secret_of_the_whole_flow_is_stored_in_audit_support_or_logged(world, caplog):
    caplog.set_level(logging.DEBUG, logger="accounts")
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")
    acc = world.account(members=TEAM)
    enable_tfa(world, acc)
    start(world, acc, context={"transcript": [f"my codes are {RECOVERY[0]} and {RECOVERY[1]}"]})
    email_code = last_code(world, "tfa_recovery")
    complete(world, acc, RECOVERY[1], wrong(email_code))
    complete(world, acc, RECOVERY[0], email_code)
    token = token_of(mails(world, "tfa_enrollment_link")[-1].payload["secret_link"])
    reports = [token_of(n.payload["secret_report_link"]) for n in mails(world, "tfa_reset")]
    page = tfa_recovery.begin_enrollment(world.deps, token=token, idempotency_key=key())
    new_code = totp(page.secret, world.clock())
    done = tfa_recovery.complete_enrollment(world.deps, token=token, code=new_code, idempotency_key=key())
    tfa_recovery.report_not_me(world.deps, token=reports[0], idempotency_key=key())
    # no-codes path: the support request gets the conversation
    world.execute(TfaRecoveryCode.__table__.update().values(used_at=world.clock()))
    start(world, acc, context={"transcript": [f"code {email_code}, recovery {RECOVERY[2]}, link token {token}"]})

    secrets = [email_code, *RECOVERY, token, *reports, page.secret, new_code, *done.recovery_codes, SECRET]
    assert_no_secret_stored_or_logged(world, secrets, caplog.records)
    assert world.count(SupportRequest) == 2


def test_the_demo_tfa_account_recovers_and_enrols(world):
    load_demo(world.session_factory, clock=world.clock, tokens=world.tokens, only=["tfa@demo.example"])
    actor = Actor(demo_account_id(world.session_factory, "tfa@demo.example"), "tfa@demo.example")
    deps = world.deps
    assert step_up.start_step_up(deps, actor, "change_currency", idempotency_key=key()).method == "totp"
    assert step_up.verify_step_up(deps, actor, "change_currency", pyotp.TOTP(DEMO_TOTP_SECRET).at(world.clock()),
                                  idempotency_key=key()).ok

    assert tfa_recovery.start_tfa_recovery(deps, actor, idempotency_key=key()).ok
    assert tfa_recovery.complete_tfa_recovery(deps, actor, recovery_code=DEMO_RECOVERY_CODES[0].lower(),
                                              email_code=last_code(world), idempotency_key=key()).ok
    token = token_of(mails(world, "tfa_enrollment_link")[-1].payload["secret_link"])
    page = tfa_recovery.begin_enrollment(deps, token=token, idempotency_key=key())
    assert tfa_recovery.complete_enrollment(deps, token=token, code=totp(page.secret, world.clock()),
                                            idempotency_key=key()).ok
    assert world.count(StepUpGrant, StepUpGrant.expires_at > world.clock()) == 0


def test_the_demo_tfa_state_can_be_restored_after_a_recovery_demo(world):
    from accounts.demo import reset_demo_tfa

    load_demo(world.session_factory, clock=world.clock, tokens=world.tokens, only=["tfa@demo.example"])
    actor = Actor(demo_account_id(world.session_factory, "tfa@demo.example"), "tfa@demo.example")
    assert tfa_recovery.start_tfa_recovery(world.deps, actor, idempotency_key=key()).ok
    assert tfa_recovery.complete_tfa_recovery(world.deps, actor, recovery_code=DEMO_RECOVERY_CODES[0],
                                              email_code=last_code(world), idempotency_key=key()).ok

    assert reset_demo_tfa(world.session_factory, clock=world.clock)

    [enrolment] = world.all(TfaEnrolment)
    assert (enrolment.enabled, enrolment.secret, enrolment.revoked_at) == (True, DEMO_TOTP_SECRET, None)
    assert {c.code_hash for c in world.all(TfaRecoveryCode) if c.used_at is None} == {
        hash_secret(c) for c in DEMO_RECOVERY_CODES}
    assert all(t.revoked_at is not None for t in world.all(TfaEnrollmentToken))
