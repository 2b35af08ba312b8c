"""A support lead lists an account's chat links and revokes one (SQLite and PostgreSQL).

The links are made the customer's way (e-mailed code), then a lead revokes
one through :func:`accounts.channel_links.revoke_link_by_staff`.
"""

from __future__ import annotations

from datetime import timedelta

from accounts import channel_links
from accounts.deps import Actor
from accounts.models import ChannelLink
from accounts.results import Reason
from tests.accounts.verification_support import enable_tfa, key, last_code

LEAD = "console:lead.kadri@example.com"
TG = ("telegram", "100200300")
SLACK = ("slack", "T01:U0AB12CD")


def link(world, email, identity):
    channel, user = identity
    assert channel_links.request_link(world.deps, channel=channel, channel_user_id=user, email=email,
                                      idempotency_key=key("req")).ok
    linked = channel_links.confirm_link(world.deps, channel=channel, channel_user_id=user, code=last_code(world),
                                        idempotency_key=key("conf"))
    assert linked.ok, linked
    return linked.link_id


def test_a_lead_sees_every_link_of_an_account_by_id_or_primary_address(world):
    acc = world.account("owner@example.com")
    world.account("someone.else@example.com")
    tg = link(world, "owner@example.com", TG)
    slack = link(world, "owner@example.com", SLACK)
    link(world, "someone.else@example.com", ("telegram", "999"))
    world.clock.advance(days=91)  # the Telegram link expired... then the customer linked Telegram again
    again = link(world, "owner@example.com", TG)

    by_id = channel_links.account_links(world.deps, f" {acc} ")
    by_mail = channel_links.account_links(world.deps, "Owner@Example.COM")

    assert by_id == by_mail
    assert (by_id.account_id, by_id.primary_email) == (acc, "owner@example.com")
    assert [(v.link_id, v.channel, v.state, v.authenticators) for v in by_id.links] == [
        (again, "telegram", "active", "email_code"), (slack, "slack", "expired", "email_code"),
        (tg, "telegram", "revoked", "email_code")]


def test_an_unknown_account_is_named_in_the_refusal(world):
    world.account()
    for wanted in ("4711", "0", "99999999999999999999", "9" * 5000, "nobody@example.com", "not an account"):
        refused = channel_links.account_links(world.deps, wanted)
        assert refused.reason == Reason.ACCOUNT_NOT_FOUND and refused.details == {"account": wanted}


def test_a_lead_revokes_a_link_once_audited_under_their_name(world):
    acc = world.account()
    tg = link(world, "owner@example.com", TG)
    slack = link(world, "owner@example.com", SLACK)
    form_key = key("console")

    revoked = channel_links.revoke_link_by_staff(world.deps, tg, staff=LEAD, idempotency_key=form_key)
    world.clock.advance(seconds=5)
    replayed = channel_links.revoke_link_by_staff(world.deps, tg, staff=LEAD, idempotency_key=form_key)

    assert revoked.ok and replayed == revoked
    assert channel_links.find_linked_actor(world.deps, *TG) is None
    assert channel_links.find_linked_actor(world.deps, *SLACK) == Actor(acc, "owner@example.com")
    [row] = world.all(ChannelLink, ChannelLink.id == tg)
    assert row.revoked_at == world.clock() - timedelta(seconds=5)
    [audit] = world.audits(action="channel_link_revoked")
    assert (audit.actor, audit.account_id, audit.outcome) == (LEAD, acc, "succeeded")
    assert audit.details == {"link_id": tg, "channel": "telegram", "member_email": "owner@example.com",
                             "by": "staff"}
    assert slack != tg


def test_a_revoked_expired_or_missing_link_is_not_found_and_nothing_changes(world):
    world.account()
    tg = link(world, "owner@example.com", TG)
    assert channel_links.revoke_link_by_staff(world.deps, tg, staff=LEAD, idempotency_key=key()).ok
    slack = link(world, "owner@example.com", SLACK)
    world.clock.advance(days=90)
    before = world.snapshot()

    for link_id in (tg, slack, 10 ** 9, 2 ** 40, 0):
        refused = channel_links.revoke_link_by_staff(world.deps, link_id, staff=LEAD, idempotency_key=key())
        world.assert_refused(before, refused, "link_not_found")
    assert len(world.audits(action="channel_link_revoked")) == 1


def test_an_active_link_that_acts_for_nobody_now_says_why(world):
    acc = world.account()
    tg = link(world, "owner@example.com", TG)
    assert channel_links.account_links(world.deps, str(acc)).links[0].dormant_because is None

    enable_tfa(world, acc)

    [view] = channel_links.account_links(world.deps, str(acc)).links
    assert channel_links.find_linked_actor(world.deps, *TG) is None
    assert (view.link_id, view.state) == (tg, "active")
    assert view.dormant_because == "made without the app; the member has turned TFA on"
    assert channel_links.revoke_link_by_staff(world.deps, tg, staff=LEAD, idempotency_key=key()).ok
