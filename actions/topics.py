"""Human-readable names of the assistant's intents, for buttons and summaries."""

from typing import Dict

# Topics the assistant can answer, in the order it lists them.
TOPIC_TITLES: Dict[str, str] = {
    "add_user": "Adding a user",
    "remove_user": "Removing a user",
    "account_types": "Types of account",
    "change_account_type": "Switching to a business account",
    "change_currency": "Changing the account currency",
    "close_account": "Closing the account",
    "create_account": "Creating an account",
    "forgot_password": "A forgotten password",
    "what_is_tfa": "Two-factor authentication (TFA)",
    "lost_tfa_app": "A lost authenticator (TFA) app",
    "link_account": "Verifying who you are",
    "human_handoff": "Talking to a person",
}
