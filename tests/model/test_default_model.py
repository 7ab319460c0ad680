"""The model the app opens on reads English: no [UNK], sensible cloze guesses, and it beats the baselines."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import safetensors.numpy

from explorer.interpret.cloze import NeighbourBaseline, accuracy, cloze_set, model_guesses
from explorer.model import checkpoint
from explorer.model.inference import InferenceEngine
from explorer.pipeline import fill_mask, prepare_text
from explorer.text.texts import named_text, token_streams
from explorer.text.vocab import Vocab

EVERYDAY = [
    "My sister said that she would call me tomorrow.",
    "I think we should leave early because the traffic is terrible on Fridays.",
    "Can you pass me the salt, please?",
    "The weather was nice, so we walked to the park after lunch.",
    "He forgot his keys at the office again.",
]


@pytest.fixture(scope="module")
def bundle():
    bundle, notice = checkpoint.load_default()
    assert notice is None, notice
    return bundle


@pytest.fixture(scope="module")
def engine(bundle):
    return InferenceEngine(bundle.config)


def test_the_default_model_is_an_english_masked_token_model_with_a_closed_vocabulary(bundle):
    assert bundle.task == "mlm" and bundle.vocab.closed
    assert bundle.info.get("train_config", {}).get("text") == "english"


@pytest.mark.parametrize("text", EVERYDAY)
def test_everyday_sentences_reach_it_with_no_unknown_token(bundle, text):
    prepared = prepare_text(bundle, text)
    assert not prepared.unknown.any() and prepared.notices == ()


@pytest.mark.slow
def test_it_beats_the_neighbour_baseline_on_held_out_text(bundle, engine):
    train, held_out = token_streams(named_text("english"), bundle.vocab)
    cloze = cloze_set(held_out, 1500, seed=1)  # another slice than the README's table (seed 0)
    baseline = NeighbourBaseline(train)
    model_top1, model_top5 = accuracy(model_guesses(bundle, engine, cloze), cloze.targets)
    neighbour_top1, neighbour_top5 = accuracy(baseline.predict(cloze), cloze.targets)
    unigram_top1, _ = accuracy(baseline.predict_unigram(cloze), cloze.targets)
    assert model_top1 > neighbour_top1 > unigram_top1
    assert model_top5 > neighbour_top5


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("She opened the [MASK] and walked into the room.", " door"),
        ("The president of the United [MASK] spoke on television.", " States"),
        ("When the rain stopped, the children went [MASK] to play in the garden.", " out"),
    ],
)
def test_it_completes_everyday_cloze_sentences(bundle, engine, text, expected):
    (fill,) = fill_mask(bundle, engine, text, k=5)
    assert expected in [token for token, _ in fill.predictions]


def test_an_old_checkpoint_with_an_open_vocabulary_still_loads_and_says_what_is_unknown(bundle):
    # A checkpoint saved before vocabularies were closed: its vocabulary has no "closed" entry.
    from explorer.model.bundle import ModelBundle
    from explorer.model.config import ModelConfig

    config = ModelConfig(
        vocab_size=8, d_model=8, num_heads=2, num_layers=1, ffn_size=16, max_len=32, tie_embeddings=False
    )
    old = ModelBundle.random(config, Vocab("cl100k_base", (791, 8415, 7731, 13, 16)))  # "The", " cat", ...
    data = checkpoint.to_bytes(old)
    # Rewritten in the layout of that time: an .npz whose "meta" array holds JSON without the newer fields.
    arrays = dict(safetensors.numpy.load(data))
    meta = json.loads(json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])["__metadata__"]["explorer"])
    del meta["vocab"]["closed"], meta["config"]["tie_embeddings"]
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    loaded = checkpoint.from_bytes(buffer.getvalue())
    assert not loaded.vocab.closed
    prepared = prepare_text(loaded, "The cat sat on the mat.")
    assert prepared.unknown.any() and any("[UNK]" in notice for notice in prepared.notices)
