"""Operation actions against a real account store, rasa-sdk style: real Trackers, real events."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any, Dict, List, Optional

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import SessionStarted, UserUttered
from rasa_sdk.executor import CollectingDispatcher

from accounts import channel_links
from accounts.db import make_session_factory, upgrade
from accounts.deps import Deps
from accounts.results import Refused
from actions import messages
from actions.account_store import use_deps
from actions.closing import ActionCheckClosure, ActionCloseAccount
from actions.currency import ActionChangeCurrency, ActionCheckCurrencyChange
from actions.members import ActionCheckInvite
from supportbot.action_claims import sign_action_call
from tests.conftest import TEST_ACTION_CLAIMS_KEY
from tests.operations.conftest import Store

EXPIRES = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)).isoformat()


@pytest.fixture
def store(tmp_path, monkeypatch) -> Store:
    url = f"sqlite:///{tmp_path / 'accounts.db'}"
    upgrade(url)
    use_deps(Deps(session_factory=make_session_factory(url)))
    monkeypatch.setenv("ACTION_CLAIMS_KEY", TEST_ACTION_CLAIMS_KEY)  # the action server's key
    yield Store(url)
    use_deps(None)


def tracker(account_id: Optional[int], email: str = "", slots: Optional[Dict[str, Any]] = None,
            intent: str = "close_account", form: Optional[str] = None) -> Tracker:
    metadata = {} if account_id is None else {"verified_identity": {
        "account_id": str(account_id), "email": email, "source": "portal_token",
        "expires_at": EXPIRES, "channel": "rest"}}
    parse = {"intent": {"name": intent, "confidence": 0.99}, "entities": [], "text": "..."}
    user = UserUttered("...", parse_data=parse, input_channel="rest")
    user.update(metadata=metadata, message_id="m1")  # as Rasa stores a message from our channels
    events = [SessionStarted(), user]
    loop = {"name": form} if form else {}
    sign_action_call({"tracker": {"sender_id": "conversation-1", "events": events}},
                     TEST_ACTION_CLAIMS_KEY.encode())  # as Rasa sends it to the action server
    return Tracker("conversation-1", slots or {}, parse, events, False, None, loop, "action_listen")


def run(action, tracker_: Tracker) -> tuple:
    dispatcher = CollectingDispatcher()
    events = asyncio.run(action.run(dispatcher, tracker_, {}))
    return events, " ".join(m.get("text") or "" for m in dispatcher.messages)


def slot(events: List[Dict], name: str) -> Any:
    return next((e["value"] for e in events if e.get("event") == "slot" and e["name"] == name), "unset")


def test_anonymous_customers_are_sent_to_the_faq_answer(store):
    events, _ = run(ActionCheckClosure(), tracker(None))
    assert slot(events, "operation_check") == "anonymous"


def test_a_clean_account_may_be_closed(store):
    account_id, email = store.create_customer()
    events, text = run(ActionCheckClosure(), tracker(account_id, email))
    assert slot(events, "operation_check") == "allowed"
    assert "no unpaid bills" in text


def test_closing_is_refused_with_the_invoice_and_a_support_offer(store):
    account_id, email = store.create_customer(unpaid_invoice=True)
    events, text = run(ActionCheckClosure(), tracker(account_id, email))
    assert slot(events, "operation_check") == "blocked"
    assert slot(events, "support_offer")["reason"] == "unpaid_invoices"
    assert slot(events, "last_operation") == {"operation": "close_account", "outcome": "refused",
                                              "reason": "unpaid_invoices"}
    assert "INV-" in text and "49.00 EUR" in text


def test_currency_change_refused_after_a_payment(store):
    account_id, email = store.create_customer(payment=True)
    events, text = run(ActionCheckCurrencyChange(), tracker(account_id, email, intent="change_currency"))
    assert slot(events, "operation_check") == "blocked"
    assert "payments have already been made" in text


def test_plain_members_may_not_invite(store):
    account_id, _ = store.create_customer(members={"bob@test.example": "member"})
    events, text = run(ActionCheckInvite(), tracker(account_id, "bob@test.example", intent="add_user"))
    assert slot(events, "operation_check") == "blocked"
    assert "Only account owners or admins" in text


def test_no_closure_without_a_verified_step_up(store):
    account_id, email = store.create_customer()
    events, text = run(ActionCloseAccount(), tracker(account_id, email, {"confirmed": True}))
    assert "couldn't confirm it's you" in text
    assert store.account(account_id).status == "active"


def test_a_typed_verified_slot_does_not_replace_the_grant(store):
    # whatever fills the customer's slot (typing, /intent{...}) is not a verdict
    account_id, email = store.create_customer()
    slots = {"confirmed": True, "step_up_code": "verified", "currency": "USD"}
    events, text = run(ActionChangeCurrency(), tracker(account_id, email, slots, "change_currency"))
    assert slot(events, "last_operation")["reason"] == "step_up_failed"
    assert "couldn't confirm it's you" in text
    assert store.account(account_id).currency == "EUR"


def validate_code(value: str, account_id: int, email: str, slots: Dict[str, Any]) -> tuple:
    from actions.currency import ValidateCurrencyForm

    dispatcher = CollectingDispatcher()
    result = asyncio.run(ValidateCurrencyForm().validate_step_up_code(
        value, dispatcher, tracker(account_id, email, slots, "change_currency", form="currency_form"), {}))
    return result, " ".join(m.get("text") or "" for m in dispatcher.messages)


def test_typing_verified_at_the_step_up_prompt_is_never_a_verdict(store):
    """Issue #12: "verified" was passed through as a verdict and the customer read "I can't ..."."""
    from accounts import step_up
    from accounts.deps import Actor
    from accounts.models import StepUpGrant
    from actions.account_store import account_deps

    account_id, email = store.create_customer()
    step_up.start_step_up(account_deps(), Actor(account_id, email), "change_currency", idempotency_key="s1")
    slots = {"confirmed": True, "currency": "USD", "step_up_method": "email_code"}
    result, text = validate_code("verified", account_id, email, slots)
    assert result == {"step_up_code": None}  # no verdict: the code is asked for again
    assert text == "That doesn't look like a 6-digit code."
    with store.factory() as session:
        assert session.query(StepUpGrant).count() == 0


def test_the_right_code_sets_a_verdict_bound_to_this_conversation_and_currency(store):
    from accounts import step_up
    from accounts.deps import Actor
    from accounts.models import StepUpGrant
    from actions.account_store import account_deps

    account_id, email = store.create_customer()
    step_up.start_step_up(account_deps(), Actor(account_id, email), "change_currency", idempotency_key="s1")
    slots = {"confirmed": True, "currency": "USD", "step_up_method": "email_code"}
    result, _ = validate_code(store.latest_code(email), account_id, email, slots)
    assert result == {"step_up_code": None, "step_up_verdict": "verified"}
    with store.factory() as session:
        grant = session.query(StepUpGrant).one()
    assert grant.conversation_id == "conversation-1"
    assert grant.params_sha256 == step_up.params_digest({"currency": "USD"})


def test_a_confirmed_change_after_the_step_up_happens_once(store):
    from accounts import step_up
    from actions.account_store import account_deps
    from accounts.deps import Actor

    account_id, email = store.create_customer()
    actor = Actor(account_id=account_id, member_email=email)
    step_up.start_step_up(account_deps(), actor, "change_currency", idempotency_key="s1")
    step_up.verify_step_up(account_deps(), actor, "change_currency", store.latest_code(email),
                           idempotency_key="s2", conversation_id="conversation-1", params={"currency": "USD"})
    slots = {"confirmed": True, "step_up_verdict": "verified", "currency": "USD"}
    for _ in range(2):  # the same confirming message delivered twice
        run(ActionChangeCurrency(), tracker(account_id, email, slots, "change_currency"))
    assert store.account(account_id).currency == "USD"
    assert store.notifications(account_id).count("currency_changed") == 1


def test_an_unexpected_failure_is_reported_and_handed_to_a_person(store, monkeypatch):
    import sqlalchemy as sa

    from accounts import closing
    from accounts.models import SupportRequest

    account_id, email = store.create_customer()

    def broken(*args, **kwargs):
        raise RuntimeError("the database fell over")

    monkeypatch.setattr(closing, "check_closure", broken)
    events, text = run(ActionCheckClosure(), tracker(account_id, email))
    assert "went wrong" in text and "reference SR-" in text
    assert slot(events, "operation_check") == "blocked"
    with store.factory() as session:
        request = session.execute(sa.select(SupportRequest)).scalar_one()
    assert (request.account_id, request.reason) == (account_id, "close_account:action_failed")


def slack_tracker(chat_user_id: str, shared: bool, slots: Optional[Dict[str, Any]] = None) -> Tracker:
    """A message from a Slack user (a direct message, or a channel others read)."""
    user_meta: Dict[str, Any] = {"channel": "slack", "channel_user_id": chat_user_id}
    if shared:
        user_meta["shared"] = True
    parse = {"intent": {"name": "close_account", "confidence": 0.99}, "entities": [], "text": "..."}
    user = UserUttered("...", parse_data=parse, input_channel="slack")
    user.update(metadata={"channel_user": user_meta}, message_id="m1")
    events = [SessionStarted(), user]
    sign_action_call({"tracker": {"sender_id": "U1", "events": events}}, TEST_ACTION_CLAIMS_KEY.encode())
    return Tracker("U1", slots or {}, parse, events, False, None, {}, "action_listen")


def test_a_linked_slack_user_is_sent_to_a_direct_message_from_a_shared_channel(store):
    account_id, email = store.create_customer()
    link_deps = Deps(session_factory=store.factory, codes=lambda: "246813")
    channel_links.request_link(link_deps, channel="slack", channel_user_id="T1:U1", email=email,
                               idempotency_key="request-1")
    assert not isinstance(channel_links.confirm_link(
        link_deps, channel="slack", channel_user_id="T1:U1", code="246813",
        idempotency_key="confirm-1"), Refused)

    events, text = run(ActionCheckClosure(), slack_tracker("T1:U1", shared=False))
    assert slot(events, "operation_check") == "allowed"  # the link acts in a direct message

    events, text = run(ActionCheckClosure(), slack_tracker("T1:U1", shared=True))
    assert slot(events, "operation_check") == "blocked" and text == messages.DIRECT_MESSAGE_ONLY
    events, text = run(ActionCloseAccount(), slack_tracker("T1:U1", shared=True,
                                                           slots={"confirmed": True}))
    assert text == messages.DIRECT_MESSAGE_ONLY
    assert slot(events, "last_operation") == {"operation": "close_account", "outcome": "refused",
                                              "reason": "shared_channel"}
