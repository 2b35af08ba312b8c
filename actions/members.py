"""Inviting and disabling users of an account in a conversation."""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from accounts import members
from accounts.results import Reason, Refused, Result
from accounts.security import is_valid_email, normalize_email
from actions.account_store import call_domain
from actions.form_listening import is_question
from actions.identity import Customer, identify
from actions.operation_flow import CheckAction, SubmitAction
from actions.step_up import StepUpFormValidation
from actions.wording import describe_refusal

EMAIL_IN_TEXT = re.compile(r"[^\s<>@,;]+@[^\s<>@,;]+\.[^\s<>@,;]+")
ADDRESS_LIKE = re.compile(r"[^\s<>@,;]+@[^\s<>,;]*")
ROLE_WORDS = {
    "owner": "owner", "co-owner": "owner",
    "admin": "admin", "administrator": "admin", "manager": "admin",
    "member": "member", "user": "member", "normal": "member", "regular": "member",
    "standard": "member", "basic": "member",
}


def extract_email(text: str) -> Optional[str]:
    """The first email address in a message, normalised, if it is valid."""
    match = EMAIL_IN_TEXT.search(text or "")
    if match is None:
        return None
    candidate = match.group(0).strip(".")
    return normalize_email(candidate) if is_valid_email(candidate) else None


# In a first message ("invite bob@x.com as an admin") only a role said as a role counts:
# "add a new user" names no role.
ROLE_IN_REQUEST = re.compile(
    r"\b(?:as|to be|make (?:him|her|them|it)|with)\s+(?:an?\s+|the\s+)?(owner|co-owner|admin|administrator|"
    r"member|manager)\b|\b(owner|co-owner|admin|administrator|member|manager)\s+(?:role|rights|access)\b",
    re.IGNORECASE)


# What a role lets someone do, as customers describe it.
ROLE_BY_RIGHTS = (
    (re.compile(r"\b(full (access|control|rights)|everything|all (the )?rights|billing|close the account)\b",
                re.IGNORECASE), "owner"),
    (re.compile(r"\b(manage|add|invite|remove) (the )?(users|people|team|members)|settings\b",
                re.IGNORECASE), "admin"),
    (re.compile(r"\b(just|only)( needs? to| wants? to| has to)? (use|log ?in|sign ?in|see|view)|limited|read[- ]only|normal|no admin\b",
                re.IGNORECASE), "member"),
)


def parse_role(text: str) -> Optional[str]:
    """The role a customer means ("make her an admin", "she should manage users" -> admin), or None."""
    words = re.findall(r"[a-z-]+", (text or "").lower())
    for word in words:
        if word in ROLE_WORDS:
            return ROLE_WORDS[word]
    return next((role for pattern, role in ROLE_BY_RIGHTS if pattern.search(text or "")), None)


def role_in_request(text: str) -> Optional[str]:
    """The role a request names as such ("... as an admin"), or None."""
    match = ROLE_IN_REQUEST.search(text or "")
    return ROLE_WORDS[(match.group(1) or match.group(2)).lower()] if match else None


async def _members_or_refusal(customer: Customer):
    return await call_domain(members.list_members, customer.actor)


def _role_of(listed, email: str) -> Optional[str]:
    return next((m.role for m in listed if m.email == email), None)


def may_disable(listed, customer: Customer) -> list:
    """The members this customer could disable: not themselves, not disabled, no owner for an admin.

    Also no owner who is the last active one (accounts.members has the same rules).
    """
    mine = _role_of(listed, customer.email)
    owners = [m for m in listed if m.role == "owner" and m.status == "active"]
    return [m for m in listed if m.email != customer.email and m.status != "disabled"
            and not (m.role == "owner" and (mine != "owner" or len(owners) < 2))]


class ActionCheckInvite(CheckAction):
    """May this customer invite users (owners and admins)?"""

    operation = "invite_user"
    doing = "invite users"

    def name(self) -> Text:
        return "action_check_invite"

    async def check(self, customer: Customer) -> Optional[Refused]:
        listed = await _members_or_refusal(customer)
        return listed if isinstance(listed, Refused) else None


class ValidateInviteForm(StepUpFormValidation):
    """Collects the new user's email and role, also from the first message; an owner or admin needs a step-up."""

    prefillable = ["invite_email", "invite_role"]
    own_intents = ["add_user"]

    def name(self) -> Text:
        return "validate_invite_form"

    def step_up_needed(self, tracker: Tracker) -> bool:
        return tracker.get_slot("invite_role") in members.STEP_UP_ROLES
    def value_in(self, slot: str, text: str, first_message: bool = False) -> Optional[str]:
        if slot == "invite_email":  # also a malformed address, so validation can say why
            match = EMAIL_IN_TEXT.search(text) or ADDRESS_LIKE.search(text)
            return match.group(0) if match else None
        if slot == "invite_role":
            return role_in_request(text) if first_message else parse_role(text)
        return super().value_in(slot, text, first_message)

    async def correction(self, text: str, dispatcher: CollectingDispatcher,
                         tracker: Tracker) -> Optional[Dict[Text, Any]]:
        """A new address or role at the confirmation ("actually make it admin")."""
        changed: Dict[Text, Any] = {}
        email = extract_email(text)
        if email and email != tracker.get_slot("invite_email"):
            changed.update(await self.validate_invite_email(email, dispatcher, tracker, {}))
        named = re.search(r"\b(owner|admin|administrator|member)\b", text, re.IGNORECASE)
        role = ROLE_WORDS[named.group(1).lower()] if named and not is_question(text) else None
        if role and role != tracker.get_slot("invite_role"):
            changed.update(await self.validate_invite_role(role, dispatcher, tracker, {}))
        return changed or None

    async def validate_invite_email(self, value: Any, dispatcher: CollectingDispatcher,
                                    tracker: Tracker, domain: DomainDict) -> Dict[Text, Any]:
        email = extract_email(str(value or ""))
        if email is None:
            dispatcher.utter_message(text=f"\"{str(value)[:60]}\" doesn't look like an email address.")
        return {"invite_email": email}

    async def validate_invite_role(self, value: Any, dispatcher: CollectingDispatcher,
                                   tracker: Tracker, domain: DomainDict) -> Dict[Text, Any]:
        role = parse_role(str(value or ""))
        if role is None:
            dispatcher.utter_message(text="Please choose owner, admin or member.")
        return {"invite_role": role}


class ActionInviteUser(SubmitAction):
    """Sends the invitation after the customer confirmed."""

    operation = "invite_user"
    doing = "invite that user"
    form_slots = ["invite_email", "invite_role"]

    def name(self) -> Text:
        return "action_invite_user"

    def step_up_needed(self, tracker: Tracker) -> bool:
        return tracker.get_slot("invite_role") in members.STEP_UP_ROLES

    async def perform(self, customer: Customer, tracker: Tracker, key: str) -> Result:
        return await call_domain(members.invite_member, customer.actor,
                                 email=tracker.get_slot("invite_email"),
                                 role=tracker.get_slot("invite_role"), idempotency_key=key,
                                 step_up_conversation=tracker.sender_id)


class ActionCheckDisable(CheckAction):
    """May this customer disable users, and is there anyone to disable?"""

    operation = "disable_user"
    doing = "disable users"

    def name(self) -> Text:
        return "action_check_disable"

    async def check(self, customer: Customer) -> Optional[Refused]:
        listed = await _members_or_refusal(customer)
        if isinstance(listed, Refused):
            return listed
        if not may_disable(listed, customer):
            return Refused(reason=Reason.MEMBER_NOT_FOUND, details={"others": 0})
        return None


class ActionAskDisableEmail(Action):
    """Asks which user to disable, with a button for each one that can be."""

    def name(self) -> Text:
        return "action_ask_disable_email"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        customer = await identify(tracker)
        listed = await _members_or_refusal(customer) if customer else []
        candidates = [] if isinstance(listed, Refused) else may_disable(listed, customer)
        dispatcher.utter_message(
            text="Which user should I disable? They lose access to the account at once.",
            buttons=[{"title": f"{m.email} ({m.role})", "payload": m.email} for m in candidates[:10]],
        )
        return []


class ValidateDisableUserForm(StepUpFormValidation):
    """Accepts a user of this account whom the customer may disable (checked before any code)."""

    prefillable = ["disable_email"]
    own_intents = ["remove_user"]

    def name(self) -> Text:
        return "validate_disable_user_form"

    def value_in(self, slot: str, text: str, first_message: bool = False) -> Optional[str]:
        if slot == "disable_email":
            return extract_email(text)
        return super().value_in(slot, text, first_message)

    async def correction(self, text: str, dispatcher: CollectingDispatcher,
                         tracker: Tracker) -> Optional[Dict[Text, Any]]:
        """Another user named at the confirmation ("sorry, i meant dave@...")."""
        email = extract_email(text)
        if email and email != tracker.get_slot("disable_email"):
            return await self.validate_disable_email(email, dispatcher, tracker, {})
        return None

    async def validate_disable_email(self, value: Any, dispatcher: CollectingDispatcher,
                                     tracker: Tracker, domain: DomainDict) -> Dict[Text, Any]:
        email = extract_email(str(value or ""))
        customer = await identify(tracker)
        if email is None or customer is None:
            dispatcher.utter_message(text="Please give the email address of one of the users above.")
            return {"disable_email": None}
        refusal = await call_domain(members.check_disable_member, customer.actor, email=email)
        if refusal is not None:
            dispatcher.utter_message(text=describe_refusal(refusal, "disable that user"))
            return {"disable_email": None}
        return {"disable_email": email}


class ActionDisableUser(SubmitAction):
    """Disables the user after the customer confirmed."""

    operation = "disable_user"
    doing = "disable that user"
    form_slots = ["disable_email"]
    needs_step_up = True

    def name(self) -> Text:
        return "action_disable_user"

    async def perform(self, customer: Customer, tracker: Tracker, key: str) -> Result:
        return await call_domain(members.disable_member, customer.actor,
                                 email=tracker.get_slot("disable_email"), idempotency_key=key,
                                 require_step_up=True, step_up_conversation=tracker.sender_id)
