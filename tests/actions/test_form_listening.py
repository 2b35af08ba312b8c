"""How forms read answers: intentions and values in customers' sentences (no Rasa needed).

The phrasings are written as customers type; the conversation tests in
tests/conversations/ run the same readers through the whole assistant.
"""

from __future__ import annotations

import asyncio

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from accounts.results import Reason, Refused
from actions.business import corrected_details
from actions.currency import currency_asked_for, parse_currency
from actions.form_listening import asks_what_it_means, is_question, wants_a_new_code, wants_a_person, wants_to_stop
from actions.linking import ValidateLinkForm
from actions.members import extract_email, parse_role, role_in_request
from actions.step_up import code_in_text, retry_after
from actions.tfa_recovery import recovery_code_in_text


@pytest.mark.parametrize("text", [
    "cancel", "nvm", "never mind", "Nevermind, I'll do it later", "forget it", "no forget about it",
    "stop", "ok stop", "actually forget it", "hmm never mind", "i changed my mind", "leave it",
    "nah dont bother", "scrap that", "ok whatever cancel", "i'll talk to my accountant first, cancel for now",
    "hmm. let's just forget it",
])
def test_ways_to_stop(text):
    assert wants_to_stop(text)


@pytest.mark.parametrize("text", [
    "bob@example.com", "admin", "stop & shop is the company name? no", "DE123456789", "yes",
    "can you stop sending me emails to bob@example.com", "Acme Rockets GmbH", "please don't stop",
    "Nonstop Ltd",
])
def test_answers_that_are_not_a_stop(text):
    assert not wants_to_stop(text)


@pytest.mark.parametrize("text", [
    "talk to a person", "ugh can i just talk to a real person", "human", "agent pls",
    "put me through to an agent", "i want to speak with someone from support", "get me a human NOW",
])
def test_ways_to_ask_for_a_person(text):
    assert wants_a_person(text, intent=None)


@pytest.mark.parametrize("text", [
    "invite the new person in accounting", "bob@example.com", "make her an admin",
    "the one to go is dave@example.com, he left",
])
def test_answers_that_do_not_ask_for_a_person(text):
    assert not wants_a_person(text, intent=None)


@pytest.mark.parametrize("text", [
    "i didn't get any email, can you resend it?", "resend pls", "havent received the email yet",
    "can you send another code", "still nothing, send a new one", "where's the code?",
    "never got it", "didnt get it", "what code? i got nothing", "no email here",
])
def test_ways_to_ask_for_a_new_code(text):
    assert wants_a_new_code(text)


@pytest.mark.parametrize("text, meaning", [
    ("hmm whats the difference between admin and member again?", True),
    ("what do you mean by registration number?", True),
    ("what's a recovery code? i dont think i have one", True),
    ("what's my current currency?", True),
    ("is it ok to use bob@example.com?", False),
    ("i dont have any recovery codes", True),
    ("not sure what our vat id is", True),
])
def test_questions_about_a_field(text, meaning):
    assert is_question(text) and asks_what_it_means(text) is meaning


@pytest.mark.parametrize("text, code", [
    ("my code is 855502", "855502"), ("855 502", "855502"), ("its 855-502 thx", "855502"),
    ("the email says 123456", "123456"), ("yes", None), ("1234567", None), ("12345", None),
])
def test_one_time_codes_in_sentences(text, code):
    assert code_in_text(text) == code


@pytest.mark.parametrize("text, code", [
    ("ok found them: DEMO-RECOVERY-03", "DEMO-RECOVERY-03"),
    ("demo recovery 03", "DEMO-RECOVERY-03"), ("DEMORECOVERY03", "DEMO-RECOVERY-03"),
    ("abcd efgh jk2m npqr", "ABCD-EFGH-JK2M-NPQR"), ("ABCDEFGHJK2MNPQR", "ABCD-EFGH-JK2M-NPQR"),
    ("here: ABCD-EFGH-JKLM-NP3R thanks", "ABCD-EFGH-JKLM-NP3R"),
    ("what's a recovery code?", None), ("this is my code abcd", None),
])
def test_recovery_codes_in_sentences(text, code):
    assert recovery_code_in_text(text) == code


@pytest.mark.parametrize("text, currency", [
    ("switch my currency to US dollars", "USD"), ("from euros to pounds", "GBP"),
    ("i want everything in swiss francs", "CHF"), ("all in usd", "USD"), ("eur", "EUR"),
    ("can you change my account currency?", None), ("bitcoin", None),
])
def test_currencies_in_sentences(text, currency):
    assert parse_currency(text) == currency


def test_an_unknown_currency_asked_for_in_a_first_message_is_kept_for_its_reason():
    assert currency_asked_for("change my currency to bitcoin") == "bitcoin"
    assert currency_asked_for("change my currency") is None


@pytest.mark.parametrize("text, email, role", [
    ("invite colleague@example.com as an admin", "colleague@example.com", "admin"),
    ("could you add bob.smith@example.com to our account", "bob.smith@example.com", None),
    ("add a new user", None, None),
    ("add a team member", None, None),
    ("give jo@example.com admin rights", "jo@example.com", "admin"),
])
def test_address_and_role_in_a_first_message(text, email, role):
    assert extract_email(text) == email and role_in_request(text) == role


@pytest.mark.parametrize("text, role", [
    ("make her an admin i guess", "admin"), ("member is fine", "member"),
    ("she should be able to manage users", "admin"), ("he just needs to log in and use it", "member"),
    ("full access please", "owner"), ("read-only is enough", "member"), ("hmm", None),
])
def test_a_role_inside_an_answer(text, role):
    assert parse_role(text) == role


@pytest.mark.parametrize("text, details", [
    ("the name is actually Acme Rockets GmbH, not Ltd", {"company_name": "Acme Rockets GmbH"}),
    ("its Acme Rockets GmbH not Acme Rockets Ltd", {"company_name": "Acme Rockets GmbH"}),
    ("sorry vat id should be DE987654321", {"vat_id": "DE987654321"}),
    ("oops reg number is HRB 998877", {"registration_number": "HRB 998877"}),
    ("the company address is Ringstrasse 5, 1010 Wien", {"company_address": "Ringstrasse 5, 1010 Wien"}),
    ("yes", {}), ("what happens next?", {}),
])
def test_corrections_of_company_details(text, details):
    current = {"company_name": "Acme Rockets Ltd", "registration_number": "HRB 1",
               "vat_id": "DE123456789", "company_address": "Hauptstrasse 1, Berlin"}
    assert corrected_details(text, current) == details


def test_cancel_at_the_chat_link_email_leaves_the_form():
    tracker = Tracker(
        "widget-user", slots={"requested_slot": "link_email", "link_email": "cancel"},
        latest_message={"text": "cancel", "intent": {"name": "nlu_fallback", "confidence": 0.4}},
        events=[{"event": "action", "name": "link_form"},
                {"event": "slot", "name": "link_email", "value": "cancel"}],
        paused=False, followup_action=None, active_loop={"name": "link_form"},
        latest_action_name="action_listen")
    domain = {"forms": {"link_form": {"required_slots": ["link_email", "link_code"]}}, "slots": {}}
    events = asyncio.run(ValidateLinkForm().run(CollectingDispatcher(), tracker, domain))
    assert {(e["name"], e["value"]) for e in events} >= {("form_exit", "stopped"), ("requested_slot", None)}


@pytest.mark.parametrize("seconds, words", [(600, "10 minutes"), (569, "10 minutes"), (61, "2 minutes"),
                                            (60, "1 minute"), (5, "1 minute")])
def test_when_to_try_again_is_rounded_up_to_whole_minutes(seconds, words):
    assert retry_after(Refused(reason=Reason.RATE_LIMITED, details={"retry_after_seconds": seconds})) == words
