"""Hand-over to a person.

Until the helpdesk integration exists, the assistant tells the customer how to
reach the support team (``SUPPORT_CONTACT``, see supportbot/settings.py).
"""

from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions import messages
from supportbot.settings import load_settings


def utter_support_contact(dispatcher: CollectingDispatcher) -> None:
    """Tell the customer how to reach a person."""
    contact = load_settings().support_contact
    dispatcher.utter_message(text=messages.HANDOFF_CONTACT.format(support_contact=contact))


class ActionHumanHandoff(Action):
    """Tells the customer how to reach the support team."""

    def name(self) -> Text:
        return "action_human_handoff"

    async def run(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: Dict[Text, Any],
    ) -> List[Dict[Text, Any]]:
        utter_support_contact(dispatcher)
        return []
