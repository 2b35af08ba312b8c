"""Messages written in a language the assistant does not speak.

The assistant answers in English only. A message in German, French, Spanish or
Polish gets one honest answer saying so (intent ``other_language``) instead of
a guess or "Did you mean ...?", and it does not count as a misunderstanding
(``actions/clarification.py``).

The detection is a small offline one: common function words and the letters
of each language (ä, ß; é, ç; ñ, ¿; ł, ę ...), compared with English function
words. It decides only on messages of three words or more, so a lone "ja",
"merci" or "hola" keeps its usual meaning (yes, thanks, hello).
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message

OTHER_LANGUAGE_INTENT = "other_language"
MIN_WORDS = 3

_WORDS = {
    "en": """the a an i my me you your to is are am was can could how what why where when do does did
        and or not no please account password it in of for with this that have has be want need would
        there here get lost forgot remove add close delete change help hi hello thanks thank""",
    "de": """ich du wir ihr nicht und ist das der die den dem ein eine einen einem mein meine meinen
        meinem mit für auf wie kann können habe hat haben bitte danke was wo warum möchte mich mir zu
        von es auch noch hallo guten tag kündigen benutzer hinzufügen geht nur aber oder wenn sind bin
        wird werden konto passwort vergessen löschen schließen ändern zwei faktor authentifizierung
        verloren neues neuen kein keine sie ihre ihr bei""",
    "fr": """je tu il elle nous vous ils le la les un une des du et est pas ne mon ma mes votre vos pour
        avec dans sur comment puis peux pouvez bonjour merci oublié mot passe compte supprimer ajouter
        utilisateur ai c qu que qui quoi au aux ce cette suis avoir être fermer veux voudrais plaît
        perdu changer devise mon mes j l d n""",
    "es": """yo tú él ella usted el los las una unos y es está mis su sus para con por cómo puedo
        quiero hola gracias olvidé contraseña cuenta eliminar borrar cerrar añadir agregar usuario tengo
        qué que del al lo se favor necesito mi cambiar moneda perdí aplicación cómo dónde hacer""",
    "pl": """ja ty ona wy nie w z na jest się mój moje moja moim jak mogę chcę dzień dobry dziękuję
        hasło hasła konto konta zapomniałem zapomniałam usunąć dodać użytkownika proszę czy co gdzie
        dlaczego jestem mam mnie mi że ale lub albo przez dla mojego zmienić walutę zamknąć aplikację""",
}
_LETTERS = {"de": "äöüß", "fr": "éèêëàâçîïôûœ", "es": "ñ¿¡áíóú", "pl": "ąćęłńśźż"}
STOP_WORDS: Dict[str, frozenset] = {lang: frozenset(words.split()) for lang, words in _WORDS.items()}
LANGUAGES = tuple(_LETTERS)
_TOKEN = re.compile(r"[^\W\d_]+", re.UNICODE)


def detect_language(text: str) -> Optional[str]:
    """"de", "fr", "es" or "pl" if ``text`` is clearly in that language, else None.

    None also for English, for messages shorter than three words and for
    messages mixing languages without a clear winner.
    """
    tokens = _TOKEN.findall((text or "").lower())
    if len(tokens) < MIN_WORDS:
        return None
    english = sum(token in STOP_WORDS["en"] for token in tokens)
    scores = {}
    for lang in LANGUAGES:
        hits = sum(token in STOP_WORDS[lang] for token in tokens)
        letters = len({char for char in text.lower() if char in _LETTERS[lang]})
        scores[lang] = hits + min(letters, 2)
    best = max(scores, key=scores.__getitem__)
    runner_up = max(score for lang, score in scores.items() if lang != best)
    if scores[best] >= 2 and scores[best] > english and scores[best] > runner_up \
            and scores[best] >= 0.3 * len(tokens):
        return best
    return None


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=False)
class OtherLanguageClassifier(GraphComponent, IntentClassifier):
    """Gives a message in another language the intent ``other_language`` (after the fallback)."""

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> "OtherLanguageClassifier":
        """The classifier; it has nothing to train or store."""
        return cls()

    def process(self, messages: List[Message]) -> List[Message]:
        """Override the intent of each message detected as German, French, Spanish or Polish."""
        for message in messages:
            language = detect_language(message.get(TEXT) or "")
            if language is None:
                continue
            intent = {"name": OTHER_LANGUAGE_INTENT, "confidence": 1.0}
            ranking = [r for r in message.get(INTENT_RANKING_KEY) or [] if r.get("name") != OTHER_LANGUAGE_INTENT]
            message.set(INTENT, intent, add_to_output=True)
            message.set(INTENT_RANKING_KEY, [intent] + ranking, add_to_output=True)
            message.set("language", language, add_to_output=True)
        return messages
