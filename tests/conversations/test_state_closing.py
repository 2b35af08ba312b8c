"""Closing and undoing, as customers write: state answers from the store, undo in every state.

Issue #13 group 1. Each conversation runs on a fresh account of the module's
assistant (REST channel, portal token) and checks what the customer reads and
what the account store holds afterwards.
"""

from __future__ import annotations

import pytest

from actions import messages
from actions.closing import CLOSING_HOW_TO, CLOSING_STEPS, closing_consequence
from actions.wording import day
from tests.conversations.state_chat import (  # noqa: F401 - fixtures
    GRACE_ENDS,
    Chat,
    buttons,
    response_variants,
    store,
)

pytestmark = pytest.mark.slow

ALLOWED = ("I've checked your account: all services are cancelled and there are no unpaid bills, "
           "so I can close it for you.")
CONSEQUENCE = ("Closing starts a 14-day grace period. During it you can still undo the closure; after it "
               "the account is closed for good and all its users lose access. Shall I close your account?")
UNDONE = "Done: the closure is cancelled and your account stays open."
OUT_OF_SCOPE = messages.OUT_OF_SCOPE + " If you need something else, I can put you in touch with our support team."
NOTHING_TO_UNDO = "There's nothing to undo: your account isn't being closed, it's open and active."


def test_consequence_text_is_the_one_the_tests_expect():
    # closing_consequence reads the grace period from the settings (14 days by default).
    from actions.account_store import use_deps

    use_deps(None)
    assert closing_consequence() == CONSEQUENCE


def test_still_closing_is_answered_from_the_store_and_keep_it_undoes(assistant, store):
    account_id, email = store.account_with(status="closing")
    chat = Chat(assistant, account_id, email)
    assert chat.says("hey is my acount still gonna be closed??") == [
        f"Yes: your account is scheduled to close on {day(GRACE_ENDS)}. "
        "If you'd like to keep it, tell me and I'll cancel the closure."]
    assert store.status(account_id) == "closing"
    assert chat.says("no!! i wanna KEEP it") == [UNDONE]
    assert store.status(account_id) == "active"
    assert chat.says("so the closure is off, my account is safe?") == [
        "No: your account is open and isn't scheduled to close."]


def test_undo_right_after_closing_in_the_chat(assistant, store):
    account_id, email = store.account_with()
    chat = Chat(assistant, account_id, email)
    assert chat.says("please close my account") == [ALLOWED, CONSEQUENCE]
    assert chat.says("yes")[0].startswith("To confirm it's you")
    done = chat.says(store.latest_code(email))
    assert len(done) == 1 and done[0].startswith("Done: your account is now scheduled to close on ")
    assert "just tell me you want to keep your account and I'll cancel the closure" in done[0]
    assert "ask me to close the account again" not in done[0]
    assert store.status(account_id) == "closing"
    assert chat.says("undo that") == [UNDONE]
    assert store.status(account_id) == "active"


def test_cancel_the_closure_when_nothing_is_closing_says_so_and_offers_nothing(assistant, store):
    account_id, email = store.account_with()
    chat = Chat(assistant, account_id, email)
    assert chat.says("ok, i changed my mind. cancel the closure") == [NOTHING_TO_UNDO]
    assert store.status(account_id) == "active"
    assert store.audit_actions(account_id) == []


def test_undo_after_a_currency_change_says_what_cannot_be_undone(assistant, store):
    account_id, email = store.account_with(currency="EUR")
    chat = Chat(assistant, account_id, email)
    assert chat.says("i need to change my account currency") == [
        "Which currency should the account use? You can also type its three-letter code."]
    chat.says("usd")
    chat.says("yes")
    assert chat.says(store.latest_code(email)) == [
        "Done: your account currency is now USD (it was EUR). We've emailed you a confirmation."]
    assert chat.says("hmm can you undo that") == [
        "I can't undo a currency change, but you can change it again: just say \"change my currency\"."]
    assert store.account(account_id).currency == "USD"


def test_anonymous_undo_is_told_to_sign_in(assistant, store):
    chat = Chat(assistant)
    assert chat.says("i want to keep my account, dont close it") == [
        "I can only look at your account when you're signed in: open this chat from the portal "
        "after signing in, and ask me again."]


def test_a_member_who_is_not_an_owner_cannot_undo(assistant, store):
    account_id, _ = store.account_with(status="closing", members={"ann@test.example": "member"})
    chat = Chat(assistant, account_id, "ann@test.example")
    assert chat.says("pls cancel the closing of our account") == [
        "Only account owners can do that, and your sign-in doesn't have that role."]
    assert store.status(account_id) == "closing"


def test_how_to_question_is_answered_and_offers_to_do_it(assistant, store):
    account_id, email = store.account_with()
    chat = Chat(assistant, account_id, email)
    [answer] = chat.replies("How would I close an account?")
    assert answer["text"] == CLOSING_HOW_TO
    assert buttons(answer) == ["/close_account", "/deny"]
    assert chat.says("yes please") == [ALLOWED, CONSEQUENCE]
    assert chat.says("no") == ["OK, I haven't changed anything."]
    assert store.status(account_id) == "active"


def test_how_to_question_on_a_blocked_account_gives_the_steps_and_what_blocks_it(assistant, store):
    account_id, email = store.account_with(services=["Mail Pro"])
    chat = Chat(assistant, account_id, email)
    [steps, refusal] = chat.replies("hi, how do i close my acount?")
    assert steps["text"] == CLOSING_STEPS
    assert refusal["text"] == ("I can't close your account right now because these services are still active: "
                               "Mail Pro. You can cancel Mail Pro in the portal, then ask me again.")
    assert buttons(refusal) == []
    assert store.support_requests(account_id) == []


def test_thanks_at_the_closing_question_sets_it_aside_for_good(assistant, store):
    account_id, email = store.account_with()
    chat = Chat(assistant, account_id, email)
    assert chat.says("close my acount") == [ALLOWED, CONSEQUENCE]
    note, welcome = chat.says("thanks!")
    assert note == "(I've set closing your account aside: nothing was changed.)"
    assert welcome in response_variants("utter_youre_welcome")
    assert chat.says("who won the football last night") == [OUT_OF_SCOPE]
    assert store.status(account_id) == "active"


def test_an_off_topic_question_at_the_closing_question_drops_it(assistant, store):
    account_id, email = store.account_with()
    chat = Chat(assistant, account_id, email)
    chat.says("close my account")
    assert chat.says("can you book me a flight to rome") == [
        "(I've set closing your account aside: nothing was changed.)", OUT_OF_SCOPE]
    assert chat.says("ok") == [messages.HOW_CAN_I_HELP]
    assert store.status(account_id) == "active"


def test_a_question_at_the_closing_question_is_answered_and_the_question_dropped(assistant, store):
    account_id, email = store.account_with(currency="CHF")
    chat = Chat(assistant, account_id, email)
    chat.says("i want to close the account")
    assert chat.says("wait which currency am i on btw") == [
        "(I've set closing your account aside: nothing was changed.)", "Your account's currency is CHF."]
    assert chat.says("yes") == [messages.HOW_CAN_I_HELP]
    assert store.status(account_id) == "active"


def test_keep_it_at_the_closing_question_closes_nothing(assistant, store):
    account_id, email = store.account_with()
    chat = Chat(assistant, account_id, email)
    chat.says("close my account")
    assert chat.says("no wait i want to keep it") == ["OK, I haven't closed anything: your account stays open."]
    assert store.status(account_id) == "active"
    assert store.audit_actions(account_id) == []


def test_state_questions_never_start_an_operation(assistant, store):
    account_id, email = store.account_with(currency="USD", balance="-25.00",
                                           services=["Cloud VPS S", "Backup 100 GB"])
    chat = Chat(assistant, account_id, email)
    assert chat.says("which services r still active on my account?") == [
        "These services are still active: Cloud VPS S, Backup 100 GB."]
    assert chat.says("and how much do i owe you") == [
        "You owe 25.00 USD: your balance is -25.00 USD. You can settle it in the portal's billing section."]
    assert chat.says("what currency is my account in") == ["Your account's currency is USD."]
    assert store.audit_actions(account_id) == []
    assert store.support_requests(account_id) == []


def test_yes_after_a_failed_step_up_says_nothing_was_done(assistant, store):
    account_id, email = store.account_with()
    chat = Chat(assistant, account_id, email)
    chat.says("close my account")
    chat.says("yes")
    code = store.latest_code(email)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _ in range(8):
        replies = chat.says(wrong)
        if replies[-1] == "I couldn't confirm it's you, so I haven't changed anything.":
            break
        assert replies[0] == "That code isn't right, sorry."
    else:
        pytest.fail("the wrong codes never ended the step-up")
    assert replies[0].startswith("That's too many wrong codes, so I've stopped for now.")
    assert chat.says("yes") == [messages.STEP_UP_FAILED_YES]
    assert store.status(account_id) == "active"
