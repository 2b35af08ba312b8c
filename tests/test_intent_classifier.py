"""The TF-IDF intent classifier answers the same after being stored and loaded, from a pickle-free file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import skops.io as sio
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bench.nlu_eval import read_nlu_examples
from supportbot.intent_classifier import MODEL_FILE, SKOPS_MODEL_FILE, TfidfIntentClassifier
from supportbot.settings import PROJECT_ROOT

NLU = sorted((PROJECT_ROOT / "data" / "nlu").glob("*.yml"))
HOLDOUT = PROJECT_ROOT / "tests" / "nlu_holdout.yml"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    storage = LocalModelStorage(tmp_path_factory.mktemp("model"))
    resource = Resource("intent_classifier")
    examples = [Message.build(text, intent) for path in NLU[:6] for text, intent in read_nlu_examples(path)]
    classifier = TfidfIntentClassifier.create(TfidfIntentClassifier.get_default_config(), storage, resource, None)
    classifier.train(TrainingData(examples))
    return classifier, storage, resource


def parse(classifier: TfidfIntentClassifier, texts):
    messages = [Message.build(text) for text in texts]
    classifier.process(messages)
    return [(m.get("intent"), m.get("intent_ranking")) for m in messages]


def test_a_loaded_classifier_gives_the_trained_ones_intents_and_confidences(trained):
    classifier, storage, resource = trained
    texts = [text for text, _ in read_nlu_examples(HOLDOUT)] + ["", "acount pasword", "ÄÖÜ ß ?"]
    loaded = TfidfIntentClassifier.load(TfidfIntentClassifier.get_default_config(), storage, resource, None)
    assert parse(loaded, texts) == parse(classifier, texts)


def test_the_stored_model_holds_only_plain_arrays(trained):
    _, storage, resource = trained
    with storage.read_from(resource) as model_dir:
        assert not (model_dir / SKOPS_MODEL_FILE).exists()
        with np.load(model_dir / MODEL_FILE, allow_pickle=False) as arrays:  # refuses pickled objects
            assert {"words_terms", "chars_terms", "classes", "coef"} <= set(arrays.files)


def test_a_model_stored_with_skops_by_an_earlier_version_is_refused_not_loaded(trained, tmp_path, caplog):
    classifier, _, _ = trained
    storage, resource = LocalModelStorage(tmp_path), Resource("old")
    with storage.write_to(resource) as model_dir:
        sio.dump(classifier.pipeline, Path(model_dir) / SKOPS_MODEL_FILE)
    loaded = TfidfIntentClassifier.load(TfidfIntentClassifier.get_default_config(), storage, resource, None)
    assert loaded.pipeline is None
    assert parse(loaded, ["how do I close my account"]) == [(None, None)]
    assert "make train" in caplog.text


@pytest.fixture(scope="module")
def trained_with_encoder(tmp_path_factory):
    storage = LocalModelStorage(tmp_path_factory.mktemp("model_with_encoder"))
    resource = Resource("intent_classifier")
    examples = [Message.build(text, intent) for path in NLU[:4] for text, intent in read_nlu_examples(path)]
    config = {**TfidfIntentClassifier.get_default_config(), "encoder_weight": 2.0}
    classifier = TfidfIntentClassifier.create(config, storage, resource, None)
    classifier.train(TrainingData(examples))
    return classifier, storage, resource, config


def test_a_classifier_with_the_sentence_encoder_loads_with_the_same_answers(trained_with_encoder):
    classifier, storage, resource, config = trained_with_encoder
    texts = ["my bookkeeper needs her own login", "wich acount types r there", "", "ÄÖÜ ß ?"]
    loaded = TfidfIntentClassifier.load(config, storage, resource, None)
    assert parse(loaded, texts) == parse(classifier, texts)
    with storage.read_from(resource) as model_dir:
        with np.load(model_dir / MODEL_FILE, allow_pickle=False) as arrays:
            # TF-IDF columns plus the encoder's 384 dimensions
            assert arrays["coef"].shape[1] == len(arrays["words_terms"]) + len(arrays["chars_terms"]) + 384
