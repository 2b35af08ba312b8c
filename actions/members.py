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
from actions.identity import Customer, identify
from actions.operation_flow import CheckAction, SubmitAction
from actions.step_up import StepUpFormValidation

EMAIL_IN_TEXT = re.compile(r"[^\s<>@,;]+@[^\s<>@,;]+\.[^\s<>@,;]+")
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


def parse_role(text: str) -> Optional[str]:
    """The role a customer means ("make her an admin" -> admin), or None."""
    words = re.findall(r"[a-z-]+", (text or "").lower())
    for word in words:
        if word in ROLE_WORDS:
            return ROLE_WORDS[word]
    return None


async def _members_or_refusal(customer: Customer):
    return await call_domain(members.list_members, customer.actor)


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
    """Collects the new user's email and role; an owner or admin needs a step-up."""

    def name(self) -> Text:
        return "validate_invite_form"

    def step_up_needed(self, tracker: Tracker) -> bool:
        return tracker.get_slot("invite_role") in members.STEP_UP_ROLES

    async def validate_invite_email(self, value: Any, dispatcher: CollectingDispatcher,
                                    tracker: Tracker, domain: DomainDict) -> Dict[Text, Any]:
        email = extract_email(str(value or ""))
        if email is None:
            dispatcher.utter_message(text="That doesn't look like an email address. "
                                          "Which address should the invitation go to?")
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
        others = [m for m in listed if m.email != customer.email and m.status != "disabled"]
        if not others:
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
        candidates = [] if isinstance(listed, Refused) else [
            m for m in listed if m.email != customer.email and m.status != "disabled"]
        dispatcher.utter_message(
            text="Which user should I disable? They lose access to the account at once.",
            buttons=[{"title": f"{m.email} ({m.role})", "payload": m.email} for m in candidates[:10]],
        )
        return []


class ValidateDisableUserForm(StepUpFormValidation):
    """Accepts the email of a user of this account."""

    def name(self) -> Text:
        return "validate_disable_user_form"

    async def validate_disable_email(self, value: Any, dispatcher: CollectingDispatcher,
                                     tracker: Tracker, domain: DomainDict) -> Dict[Text, Any]:
        email = extract_email(str(value or ""))
        customer = await identify(tracker)
        listed = await _members_or_refusal(customer) if customer and email else []
        known = {m.email for m in listed} if not isinstance(listed, Refused) else set()
        if email is None or email not in known:
            dispatcher.utter_message(text="I can't find a user with that email address on your "
                                          "account. Please pick one of the users above.")
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
