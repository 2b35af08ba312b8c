"""Texts that custom actions send.

Responses that only a custom action sends are kept here rather than in
domain.yml: ``rasa data validate`` warns about every domain response that no
story or rule uses, and the project's data must validate without warnings.
Responses that rules use stay in domain.yml.
"""

CLARIFY_SUGGESTIONS = "Sorry, I'm not sure I understood. Did you mean one of these?"

CLARIFY_PICK_ONE = (
    "Which one? Please pick one of the topics above, or tell me in other words "
    "what you need."
)

CLARIFY_GAVE_UP = (
    "I'm sorry, I still don't understand, and I'd rather not guess. I can help "
    "with users, account types, currency, passwords, two-factor authentication, "
    "and creating or closing an account. Would you like to talk to our support "
    "team instead?"
)

HANDOFF_CONTACT = (
    "I can't transfer this chat to a person yet. Our support team can help you "
    "through {support_contact}. For anything about two-factor authentication, "
    "please write from your account's primary email address."
)

DIRECT_MESSAGE_ONLY = (
    "Let's continue in a direct message: I don't discuss account details in a "
    "channel others can read. Send me a direct message and ask again there."
)
