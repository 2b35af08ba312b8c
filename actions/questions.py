"""The questions the operations' forms ask, one ``action_ask_<slot>`` each.

They are custom actions rather than ``utter_ask_*`` responses in domain.yml
because ``rasa data validate`` warns about responses that only forms use, and
the project's data must validate without warnings.
"""

from __future__ import annotations

import abc
import re

from typing import Any, Dict, List, Optional, Text, Tuple

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from accounts import currency
from actions.account_store import account_deps, call_domain
from actions.identity import identify

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


# What customers ask about a form's question, per slot (and per form for the
# confirmation): (what the question mentions, the answer). The entry whose
# pattern is None answers a question that mentions nothing in particular.
_ROLES = ("Owners can do everything, including billing and closing the account; admins can "
          "invite and remove users and change settings; members can use the account's services "
          "but can't manage users or billing. You can change someone's role later.")
_CODE = ("It's the 6-digit one-time code from the email I sent you (or from your authenticator "
         "app if you use one). If it hasn't arrived, check your spam folder, or say \"send it "
         "again\" and I'll send a new one.")
FIELD_HELP: Dict[str, List[Tuple[Optional[str], str]]] = {
    "invite_role": [(r"role|admin|member|owner|difference|rights|permission|can they", _ROLES),
                    (None, _ROLES)],
    "invite_email": [(None, "The invitation goes to the address you give me; the person signs "
                            "in with it after accepting. Any address of theirs works.")],
    "disable_email": [(None, "Pick one of the users on the buttons above: they're listed by "
                             "email address. Disabling removes that person's access at once; the "
                             "account and its data stay as they are, and you can invite them again "
                             "later.")],
    "currency": [(None, "The account currency is the one your prices and invoices are in. "
                        "I can switch to EUR, USD, GBP, CHF and the other supported codes.")],
    "company_name": [(None, "The company's legal name exactly as registered, including its legal "
                            "form, for example \"Acme Rockets GmbH\" or \"Acme Ltd\".")],
    "registration_number": [(None, "It's the number the company is registered under in the trade "
                                   "or company register, for example \"HRB 123456\" in Germany or a "
                                   "Companies House number in the UK. It's on the registration "
                                   "certificate.")],
    "vat_id": [(None, "The VAT identification number: a two-letter country code followed by "
                      "digits, for example DE123456789. It's on the company's VAT registration "
                      "and on its invoices.")],
    "company_address": [(None, "The address of the company's registered office, with street, "
                               "postcode, city and country.")],
    "recovery_code": [(None, "Recovery codes are the backup codes you were shown (and asked to "
                             "save or print) when you set up the authenticator app, like "
                             "ABCD-EFGH-JKLM-NPQR. Each works once. If you don't have any, I can't "
                             "reset it here: say \"talk to a person\" and our support team will "
                             "check your identity by hand.")],
    "email_code": [(None, _CODE)],
    "step_up_code": [(None, _CODE)],
    "link_code": [(None, _CODE)],
    "link_email": [(None, "The primary email address of your portal account, the one you sign "
                          "in with. I'll send a code there to check it's you.")],
    "reset_email": [(None, "The email address you registered with (the one you sign in with). "
                           "I'll send the reset link there.")],
    "confirmed:close_account_form": [
        (r"grace|undo|change my mind|back|revers|how long|14|days|permanent|forever|for good",
         "For {grace_days} days after you confirm, the account is only scheduled to close and you "
         "can cancel the closure any time; after that it's closed for good."),
        (r"data|users?|happen|lose|access|invoices?|files",
         "Nothing is deleted during the {grace_days}-day grace period. When it ends, the account "
         "is closed for good and all its users lose access."),
        (r"clos|work|mean|how does|what does",
         "Closing starts a {grace_days}-day grace period: the account is only scheduled to close and "
         "you can cancel the closure any time. When it ends, the account is closed for good."),
    ],
    "confirmed:disable_user_form": [
        (r"undo|back|again|re-?enable|revers|later|permanent|forever|for good",
         "It isn't permanent: you can invite them again later; disabling only removes their access."),
        (r"data|happen|lose|access|notif|know|told|email|disabl|work|mean",
         "They lose access to the account at once and are told by email; the account and its "
         "data stay as they are."),
    ],
    "confirmed:currency_form": [
        (r"invoices?|prices?|existing|old|past|affect|balance|bills?",
         "Only prices and invoices from now on are in the new currency; invoices already issued "
         "keep theirs."),
    ],
    "confirmed:business_form": [
        (r"pay|wire|transfer|card|bank|invoices?",
         "A business account is paid by wire transfer instead of the current payment method."),
    ],
    "confirmed:invite_form": [
        (r"email|link|expire|how long|accept|join",
         "They get an email with a single-use link to join; it expires after {invitation_days} "
         "days, and you can invite them again after that."),
    ],
}


# Words that show a question is about the field itself.
FIELD_WORDS = {
    "currency": r"currenc|eur|usd|dollar|euro|pound",
    "invite_email": r"e-?mail|address",
    "disable_email": r"disabl|remov|user|happen|e-?mail|address|who|which",
    "company_name": r"name|legal",
    "registration_number": r"regist|reg\b|number|hrb",
    "vat_id": r"vat|tax",
    "company_address": r"address|office",
    "recovery_code": r"recovery|backup|code",
    "email_code": r"code|e-?mail",
    "step_up_code": r"code|e-?mail|app",
    "link_code": r"code|e-?mail",
    "link_email": r"e-?mail|address|primary",
    "reset_email": r"e-?mail|address",
}


def _mentions(pattern: Optional[str], message: str) -> bool:
    return bool(pattern) and re.search(rf"\b({pattern})", message, re.IGNORECASE) is not None


async def field_help(slot: str, message: str, tracker: Tracker) -> Optional[str]:
    """The answer to a question about ``slot``, or None when the question is about something else.

    With an empty ``message``, the field's general explanation. The currency
    explanation also says which currency the account uses now.
    """
    form = (tracker.active_loop or {}).get("name") or ""
    topics = FIELD_HELP.get(f"{slot}:{form}") or FIELD_HELP.get(slot) or []
    for pattern, answer in topics:
        if _mentions(pattern, message):
            return with_settings(answer)
    general = next((answer for pattern, answer in topics if pattern is None), None)
    if general is None or (message and not _mentions(FIELD_WORDS.get(slot), message)):
        return None
    if slot == "currency":
        current = await current_currency(tracker)
        if current:
            return f"Your account uses {current} now. " + general
    return with_settings(general)


def with_settings(answer: str) -> str:
    """An answer with the account store's settings filled in ("{grace_days}" -> "14")."""
    settings = account_deps().settings
    return answer.format(grace_days=settings.grace_period_days,
                         invitation_days=settings.invitation_ttl_days)


async def current_currency(tracker: Tracker) -> Optional[str]:
    """The account currency of a verified customer who may change it (as in the currency form), or None."""
    customer = await identify(tracker)
    if customer is None:
        return None
    account = await call_domain(currency.check_currency_change, customer.actor)
    return account if isinstance(account, str) else None


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
