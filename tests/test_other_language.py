"""Messages in German, French, Spanish or Polish: one honest answer, not a misunderstanding."""

from __future__ import annotations

import uuid

import pytest
from rasa_sdk.events import ActionExecuted, BotUttered, UserUttered

from actions.clarification import STAGE_KEY, failed_attempts
from supportbot.language import detect_language
from tests.conftest import RunningAssistant

MESSAGES = {
    "de": "hallo, ich habe mein passwort vergessen und komme nicht mehr rein",
    "fr": "bonjour, comment est-ce que je peux fermer mon compte ?",
    "es": "hola, quiero añadir a mi compañera a la cuenta, cómo lo hago",
    "pl": "dzień dobry, zgubiłem telefon i nie mam kodów, co robić",
}
ENGLISH_ANSWER = "I can only answer in English"


@pytest.mark.parametrize("language, text", [
    *MESSAGES.items(),
    ("de", "Wie ändere ich die Währung von meinem Konto?"),
    ("fr", "j'ai oublié mon mot de passe"),
    ("es", "¿Cómo cierro mi cuenta?"),
    ("pl", "jak mogę zmienić typ konta na firmowe"),
])
def test_the_four_languages_are_recognised(language: str, text: str):
    assert detect_language(text) == language


@pytest.mark.parametrize("text", [
    "I forgot my password", "how do i close my acount", "can my bookkeeper get her own login",
    "I want to close my konto", "ja", "nein", "merci", "hola", "si", "ok danke",
])
def test_english_and_single_foreign_words_are_left_alone(text: str):
    assert detect_language(text) is None


def _user(intent: str):
    return UserUttered("...", parse_data={"intent": {"name": intent, "confidence": 1.0}})


def test_another_language_neither_counts_nor_breaks_the_misunderstanding_streak():
    clarified = [ActionExecuted("action_clarify"), BotUttered("...", metadata={STAGE_KEY: "suggestions"})]
    events = [_user("nlu_fallback"), *clarified, _user("other_language"),
              ActionExecuted("utter_other_language"), _user("nlu_fallback")]
    assert failed_attempts(events) == 2
    assert failed_attempts([_user("other_language")] * 3) == 0


def new_sender() -> str:
    return f"test-{uuid.uuid4().hex}"


def _texts(replies) -> str:
    return "\n".join(reply.get("text", "") for reply in replies)


@pytest.mark.slow
@pytest.mark.parametrize("language", sorted(MESSAGES))
def test_a_message_in_another_language_gets_an_honest_answer_in_english(
    assistant: RunningAssistant, language: str,
):
    replies = assistant.say(new_sender(), MESSAGES[language])
    assert ENGLISH_ANSWER in _texts(replies)
    assert [b["payload"] for r in replies for b in r.get("buttons", [])] == ["/human_handoff"]


@pytest.mark.slow
def test_messages_in_another_language_do_not_lead_to_a_hand_over(assistant: RunningAssistant):
    sender = new_sender()
    for language in ("de", "fr", "pl"):
        assert ENGLISH_ANSWER in _texts(assistant.say(sender, MESSAGES[language]))
    assert "Did you mean" in _texts(assistant.say(sender, "switch it"))
    assert ENGLISH_ANSWER in _texts(assistant.say(sender, MESSAGES["es"]))
    second = _texts(assistant.say(sender, "both of them"))
    assert "I'd rather not guess" in second
