"""A fast, accurate intent classifier for short support messages.

TF-IDF (sublinear) over word 1-2-grams and character 2-5-grams inside word
boundaries, then a class-balanced logistic regression. Compared with Rasa's
``LogisticRegressionClassifier`` on raw counts, the TF-IDF weighting keeps long
messages from drowning in frequent words, and it stays about three times
faster than DIET per message (docs/pipeline.md has the measurements).

It reads the message text itself, so it needs no featurizer before it; use it
with a tokenizer (Rasa requires one) and a ``FallbackClassifier`` after it.
The trained model is stored as plain arrays (``numpy.savez``, loaded with
``allow_pickle=False``): nothing in a model file can run code, and loading it
does not import skops (0.5 s and 25 MB per process: docs/performance.md).
Models stored with skops by earlier versions are refused, not loaded: a skops
file can name any importable type, and `make train` rebuilds the model.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Dict, List, Optional, Text

import numpy as np

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.shared.nlu.constants import INTENT, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData
from scipy import sparse
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline

logger = logging.getLogger(__name__)

MODEL_FILE = "tfidf_intent_classifier.npz"
#: The format of earlier versions (skops): refused, never loaded.
SKOPS_MODEL_FILE = "tfidf_intent_classifier.skops"
VECTORIZERS = ("words", "chars")


class EncoderFeatures(TransformerMixin, BaseEstimator):
    """Sentence-encoder embeddings (all-MiniLM-L6-v2) as features, scaled by ``weight``.

    Stateless: nothing is fitted, the encoder's weights come from its package
    (:mod:`supportbot.sentence_encoder`), loaded once per process on first use.
    """

    def __init__(self, weight: float = 1.0) -> None:
        self.weight = weight

    def fit(self, texts: List[Text], labels: Any = None) -> "EncoderFeatures":
        return self

    def transform(self, texts: List[Text]) -> sparse.csr_matrix:
        return sparse.csr_matrix(shared_encoder().encode(list(texts)) * self.weight)


_ENCODER: List[Any] = []


def shared_encoder() -> Any:
    """The process's :class:`~supportbot.sentence_encoder.SentenceEncoder`, created on first use."""
    if not _ENCODER:
        from supportbot.sentence_encoder import SentenceEncoder

        _ENCODER.append(SentenceEncoder())
    return _ENCODER[0]


def build_pipeline(config: Dict[Text, Any]) -> Pipeline:
    """The untrained scikit-learn pipeline described by ``config``."""
    features = []
    if config["tfidf"]:
        features.append(("words", TfidfVectorizer(
            analyzer="word",
            ngram_range=(1, config["word_max_ngram"]),
            lowercase=True,
            sublinear_tf=True,
            token_pattern=r"(?u)\b\w+\b",
        )))
        features.append(("chars", TfidfVectorizer(
            analyzer="char_wb",
            ngram_range=(config["char_min_ngram"], config["char_max_ngram"]),
            lowercase=True,
            sublinear_tf=True,
        )))
    if config["encoder_weight"] > 0:
        features.append(("encoder", EncoderFeatures(config["encoder_weight"])))
    classifier = LogisticRegression(
        C=config["C"],
        max_iter=config["max_iter"],
        class_weight="balanced",
        random_state=config["random_state"],
    )
    return Pipeline([("features", FeatureUnion(features)), ("classifier", classifier)])


HANDOFF_INTENT = "human_handoff"
#: Words without which a message is not taken for a request to reach a person.
ASKS_FOR_SOMEONE = re.compile(
    r"\b(person|people|human|humans|agent|agents|someone|somebody|anyone|anybody|staff|support|team|"
    r"representative|rep|operator|manager|supervisor|employee|colleague of yours|real|live|"
    r"talk|speak|call|ring|contact|reach|escalate|service|desk|helpdesk|ticket)\b", re.IGNORECASE)
UNNAMED_HANDOFF_FACTOR = 0.5

#: An e-mail address in a message ("remove business@demo.example"): its words say
#: nothing about the intent, so the classifier sees one neutral address instead.
EMAIL_ADDRESS = re.compile(r"[^\s<>@,;]+@[^\s<>@,;]+\.[^\s<>@,;]+")
NEUTRAL_ADDRESS = "someone@example.com"


def classifier_text(text: str) -> str:
    """The text the classifier reads: e-mail addresses replaced by a neutral one."""
    text = text or ""
    return EMAIL_ADDRESS.sub(NEUTRAL_ADDRESS, text) if "@" in text else text


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True
)
class TfidfIntentClassifier(GraphComponent, IntentClassifier):
    """Intent classifier: TF-IDF word and character n-grams, logistic regression."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        """Default settings; each can be overridden in config.yml."""
        return {
            "word_max_ngram": 2,
            "char_min_ngram": 2,
            "char_max_ngram": 5,
            "C": 10.0,
            "tfidf": True,
            # 0: no sentence encoder; > 0: its embeddings join the TF-IDF features with this weight.
            "encoder_weight": 0.0,
            "max_iter": 1000,
            "random_state": 42,
            "ranking_length": 10,
        }

    @staticmethod
    def required_packages() -> List[Text]:
        """Python packages the component needs."""
        return ["sklearn", "tokenizers", "safetensors"]

    def __init__(
        self,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        pipeline: Optional[Pipeline] = None,
    ) -> None:
        self.config = {**self.get_default_config(), **config}
        self._model_storage = model_storage
        self._resource = resource
        self.pipeline = pipeline

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> "TfidfIntentClassifier":
        """A new, untrained classifier."""
        return cls(config, model_storage, resource)

    def train(self, training_data: TrainingData) -> Resource:
        """Fit the classifier on the intent examples and store it."""
        examples = [
            e for e in training_data.intent_examples if e.get(INTENT) and e.get(TEXT)
        ]
        if not examples:
            logger.warning("No intent examples: %s is not trained.", type(self).__name__)
            return self._resource
        pipeline = build_pipeline(self.config)
        pipeline.fit([classifier_text(e.get(TEXT)) for e in examples], [e.get(INTENT) for e in examples])
        self.pipeline = pipeline
        self.persist()
        return self._resource

    def process(self, messages: List[Message]) -> List[Message]:
        """Set the most likely intent and the ranking on each message.

        A message without a single letter ("👍", "🤔🤔🤔", "???", "12") names no
        topic: every confidence is 0, so the fallback classifier makes it
        ``nlu_fallback`` rather than a guess. ``human_handoff`` for a message that
        names nobody (no person, human, agent, support, team...) keeps only half
        its confidence: a vague fragment is a misunderstanding to clarify, not a
        request to file.
        """
        if self.pipeline is None:
            return messages
        texts = [message.get(TEXT) or "" for message in messages]
        probabilities = self.pipeline.predict_proba([classifier_text(text) for text in texts])
        labels = self.pipeline.classes_
        handoff = list(labels).index(HANDOFF_INTENT) if HANDOFF_INTENT in labels else None
        for message, text, row in zip(messages, texts, probabilities):
            if not any(character.isalpha() for character in text):
                row = row * 0.0
            elif handoff is not None and row.argmax() == handoff and not ASKS_FOR_SOMEONE.search(text):
                # A request for a person names one: "the phone and the colleague" is not one.
                row = row.copy()
                row[handoff] *= UNNAMED_HANDOFF_FACTOR
            ranking = sorted(
                ({"name": str(label), "confidence": float(p)} for label, p in zip(labels, row)),
                key=lambda item: -item["confidence"],
            )
            message.set(INTENT, ranking[0], add_to_output=True)
            message.set(
                "intent_ranking", ranking[: self.config["ranking_length"]], add_to_output=True
            )
        return messages

    def persist(self) -> None:
        """Store the trained pipeline in the model (fitted arrays only, see :func:`pipeline_arrays`)."""
        with self._model_storage.write_to(self._resource) as model_dir:
            np.savez(model_dir / MODEL_FILE, **pipeline_arrays(self.pipeline))

    @classmethod
    def load(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> "TfidfIntentClassifier":
        """Load the trained pipeline; an untrained one if the model has none."""
        try:
            with model_storage.read_from(resource) as model_dir:
                if not (model_dir / MODEL_FILE).exists():
                    raise ValueError(
                        f"no {MODEL_FILE} in the model (a model of an earlier version is not "
                        "loaded: retrain it with `make train`)"
                    )
                with np.load(model_dir / MODEL_FILE, allow_pickle=False) as arrays:
                    pipeline = pipeline_from_arrays({**cls.get_default_config(), **config}, arrays)
        except ValueError as error:
            logger.warning("Could not load %s: %s", cls.__name__, error)
            pipeline = None
        if pipeline is not None and {**cls.get_default_config(), **config}["encoder_weight"] > 0:
            shared_encoder()  # load the encoder's weights now, not during the first conversation
        return cls(config, model_storage, resource, pipeline)


def pipeline_arrays(pipeline: Pipeline) -> Dict[str, np.ndarray]:
    """The fitted state of a pipeline from :func:`build_pipeline`, as plain arrays.

    Per vectorizer its terms in column order and IDF weights; the classifier's
    classes, coefficients and intercepts. Strings are stored as unicode arrays,
    so the file loads without pickle.
    """
    union, classifier = pipeline.named_steps["features"], pipeline.named_steps["classifier"]
    arrays: Dict[str, np.ndarray] = {}
    for name, vectorizer in union.transformer_list:
        if not isinstance(vectorizer, TfidfVectorizer):
            continue  # the encoder features are not fitted
        terms = sorted(vectorizer.vocabulary_, key=vectorizer.vocabulary_.__getitem__)
        arrays[f"{name}_terms"] = np.array(terms, dtype=str)
        arrays[f"{name}_idf"] = vectorizer.idf_
    arrays["classes"] = np.array([str(c) for c in classifier.classes_], dtype=str)
    arrays["coef"] = classifier.coef_
    arrays["intercept"] = classifier.intercept_
    arrays["n_iter"] = classifier.n_iter_
    return arrays


def pipeline_from_arrays(config: Dict[Text, Any], arrays: Any) -> Pipeline:
    """A fitted pipeline rebuilt from :func:`build_pipeline` and :func:`pipeline_arrays`' output."""
    pipeline = build_pipeline(config)
    union, classifier = pipeline.named_steps["features"], pipeline.named_steps["classifier"]
    for name, vectorizer in union.transformer_list:
        if not isinstance(vectorizer, TfidfVectorizer):
            continue
        terms = arrays[f"{name}_terms"].tolist()
        vectorizer.vocabulary_ = {term: index for index, term in enumerate(terms)}
        vectorizer.fixed_vocabulary_ = False
        vectorizer.stop_words_ = set()
        vectorizer.idf_ = arrays[f"{name}_idf"]
    classifier.classes_ = arrays["classes"]
    classifier.coef_ = arrays["coef"]
    classifier.intercept_ = arrays["intercept"]
    classifier.n_iter_ = arrays["n_iter"]
    classifier.n_features_in_ = classifier.coef_.shape[1]
    return pipeline
