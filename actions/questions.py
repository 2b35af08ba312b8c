"""The questions the operations' forms ask, one ``action_ask_<slot>`` each.

They are custom actions rather than ``utter_ask_*`` responses in domain.yml
because ``rasa data validate`` warns about responses that only forms use, and
the project's data must validate without warnings.
"""

from __future__ import annotations

import abc

from typing import Any, Dict, List, Optional, Text, Tuple

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

Buttons = Optional[List[Dict[str, str]]]


def _choices(*values: str) -> List[Dict[str, str]]:
    return [{"title": value.capitalize() if value.islower() else value, "payload": value}
            for value in values]


QUESTIONS: Dict[str, Tuple[str, Buttons]] = {
    "currency": ("Which currency should the account use? You can also type its "
                 "three-letter code.", _choices("EUR", "USD", "GBP", "CHF")),
    "invite_email": ("What's the email address of the person you'd like to invite?", None),
    "invite_role": ("Which role should they have? Owners can do everything, admins can manage "
                    "users and settings, members can use the account. You can change it later.",
                    _choices("member", "admin", "owner")),
    "company_name": ("What is the company's legal name?", None),
    "registration_number": ("What is its company registration number?", None),
    "vat_id": ("What is its VAT ID (for example DE123456789)?", None),
    "company_address": ("And the company's registered address?", None),
    "recovery_code": ("Please enter one of the recovery codes you saved when you set up the app.",
                      None),
    "email_code": ("Now enter the 6-digit code I've just emailed you.", None),
    "link_email": ("Which email address is your account registered with (its primary address)? "
                   "I'll send a code there.", None),
    "link_code": ("Please enter the 6-digit code from the email. If the address belongs to an "
                  "account, it arrives within a minute.", None),
    "reset_email": ("I can email you a link to set a new password. Which email address did you "
                    "register with? (You can also click \"Forgot password?\" on the sign-in form.)",
                    None),
}


class AskQuestion(Action, abc.ABC):
    """Asks for one slot of a form (one concrete subclass per slot, below)."""

    slot: str = ""

    @abc.abstractmethod
    def name(self) -> Text:
        """``action_ask_<slot>``."""

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        text, buttons = QUESTIONS[self.slot]
        dispatcher.utter_message(text=text, buttons=buttons or [])
        return []


# One action class per question, so rasa-sdk registers each under its name.
for _slot in QUESTIONS:
    globals()[f"Ask_{_slot}"] = type(f"Ask_{_slot}", (AskQuestion,), {
        "slot": _slot, "name": lambda self, _name=f"action_ask_{_slot}": _name})
