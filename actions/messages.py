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
CLARIFY_FIRST_MISS = (
    "Sorry, I didn't understand that. I can help with users, account types, "
    "currency, passwords, two-factor authentication, and creating or closing an "
    "account. Could you say it in other words?"
)

OUT_OF_SCOPE = (
    "Sorry, I can't help with that here. I can answer questions about your "
    "account: adding or removing users, account types, switching to a business "
    "account, changing the currency, closing or creating an account, passwords "
    "and two-factor authentication."
)

HELP_MENU = (
    "I'm the portal's support assistant. I can help with users (adding, removing, "
    "roles), account types and switching to business, the account currency, "
    "closing or creating an account, passwords and two-factor authentication. "
    "When you're signed in I can also look at your account and make these changes "
    "for you. What would you like to do?"
)

HELP_BUTTONS = [
    {"title": "Add a user", "payload": "/add_user"},
    {"title": "Change the currency", "payload": "/change_currency"},
    {"title": "Close the account", "payload": "/close_account"},
    {"title": "Forgotten password", "payload": "/forgot_password"},
    {"title": "Lost authenticator app", "payload": "/lost_tfa_app"},
]

NO_RECOVERY_CODES = (
    "Without recovery codes I can't reset two-factor authentication here: our "
    "support team checks your identity by hand, and they'll ask you to write from "
    "your account's primary email address. Shall I pass this on to them?"
)

STEP_UP_FAILED_YES = (
    "I haven't changed anything, because I couldn't confirm it was you. If you "
    "want to try again, just ask once more and I'll send you a new code."
)

NO_REQUEST_YET = (
    "You haven't opened a support request in this chat. If you'd like, I can pass "
    "your question to our support team: shall I?"
)

#: Short answers to questions about a word in the assistant's answers (ask_term).
TERMS = [
    (r"primary e-?mail", "Your primary email is the address your account was registered with "
                         "(Profile → Account shows it). Codes and account notices go there."),
    (r"role.*(later|afterwards|change)|change.*role|"
     r"(allowed|permissions?|rights|access).*(later|afterwards)|change what (s?he|they|he) (is|are|can)",
     "Yes, any time: Profile → User Management, then click the user."),
    (r"roles?\b|admin|member|owner",
     "Users are owners, admins or members. Owners can do everything, including closing the "
     "account; admins can invite and disable users (but not owners) and change the currency "
     "or account type; members use the account without managing it."),
    (r"recovery|backup code", "Recovery codes are the one-time backup codes you were given when you "
                              "turned on two-factor authentication, for when you can't use the app."),
    (r"grace", "The grace period is the {grace_days} days after you ask to close your account: "
               "until it ends you can still keep the account."),
    (r"step.?up|one.?time|\bcode\b|otp", "A one-time code is a short code I email to you (or your "
                                         "authenticator app shows) to confirm it's really you."),
    (r"\bvat\b", "A VAT ID is your company's tax number, starting with the country code (e.g. DE123456789)."),
    (r"wire", "A wire transfer is a bank transfer: business accounts pay their invoices that way."),
]

HOW_CAN_I_HELP = "Great. What can I help you with?"
