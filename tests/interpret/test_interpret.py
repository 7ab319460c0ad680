"""Interpretability maths against independent references: tagged sentences, attention rollout, the logit
lens, head roles and query/key maps (the part-of-speech probe has its own file)."""

from __future__ import annotations

import functools
import json

import jax
import numpy as np
import pytest

from explorer.interpret import analysis, head_roles, logit_lens, qk_map, rollout, tagged_sentences
from explorer.model.config import ModelConfig
from explorer.model.encoder import init_params
from explorer.model.inference import InferenceEngine
from explorer.text import brown


@functools.cache
def tiny_run(layer_norm: str, length: int = 9):
    """A random tiny model of each layer-norm placement and one sentence through it."""
    config = ModelConfig(
        vocab_size=40, d_model=16, num_heads=4, num_layers=2, ffn_size=32, max_len=64, layer_norm=layer_norm
    )
    params = jax.device_get(init_params(config, seed=3))
    ids = np.random.default_rng(0).integers(3, 40, length).astype(np.int32)
    return config, params, InferenceEngine(config).run(params, ids)


needs_corpus = pytest.mark.skipif(not brown.available(), reason="the Brown Corpus is not on this machine (make corpus)")


@functools.cache
def small_vocab():
    """A closed vocabulary of 300 entries (the specials, the bytes and a few merges) from the grammar."""
    from explorer.text.texts import vocab_for

    return vocab_for("grammar", 300)


# ----------------------------------------------------------------------------------------------------
# Tagged sentences


def test_a_token_belongs_to_the_word_of_its_first_non_space_character():
    from explorer.text.tokenizer import Tokenizer

    words = ["Café", ",", "he", "said", "."]
    text, spans = brown.detokenize(words)
    tokens = Tokenizer().encode(text, max_tokens=64, mask=False)
    owners = tagged_sentences.token_words(text, spans, tokens.byte_counts)
    # Reference by characters: rebuild each token's text and find the word of its first non-space character.
    expected, offset = [], 0
    for piece in tokens.pieces:
        start = offset + len(piece) - len(piece.lstrip())
        expected.append(next(i for i, (a, b) in enumerate(spans) if a <= start < b))
        offset += len(piece)
    assert "".join(tokens.pieces) == text and owners == expected
    # "é" is two bytes: a token may cut a character in half, so offsets are counted in bytes.
    assert tagged_sentences.token_words("é b", [(0, 1), (2, 3)], [1, 1, 2]) == [0, 0, 1]
    assert tagged_sentences.token_words("a  b", [(0, 1), (3, 4)], [1, 1, 2]) == [0, None, 1]


@needs_corpus
def test_sampled_sentences_are_tagged_per_token_and_repeatable():
    vocab = small_vocab()
    first = tagged_sentences.sample_sentences(vocab, 20, held_out=True, seed=1)
    again = tagged_sentences.sample_sentences(vocab, 20, held_out=True, seed=1)
    assert [s.text for s in first] == [s.text for s in again] and len(first) == 20
    for sentence in first:
        assert len(sentence.tags) == len(sentence.model_ids) == len(sentence.tokens) <= tagged_sentences.MAX_TOKENS
        assert "".join(sentence.tokens.pieces) == sentence.text
        assert {t for t in sentence.tags if t is not None} <= set(brown.UNIVERSAL_TAGS)
    training = tagged_sentences.sample_sentences(vocab, 20, held_out=False, seed=1)
    assert not {s.text for s in training} & {s.text for s in first}


# ----------------------------------------------------------------------------------------------------
# Attention rollout


def reference_rollout(weights: np.ndarray) -> np.ndarray:
    """Abnar & Zuidema written out element by element: R_l[i, j] = sum_m Â_l[i, m] R_{l-1}[m, j]."""
    layers, heads, length, _ = weights.shape
    flow = np.eye(length)
    for layer in range(layers):
        mixed = np.zeros((length, length))
        for i in range(length):
            for m in range(length):
                mixed[i, m] = 0.5 * sum(weights[layer, h, i, m] for h in range(heads)) / heads + 0.5 * (i == m)
            mixed[i] /= mixed[i].sum()
        flow = np.array(
            [[sum(mixed[i, m] * flow[m, j] for m in range(length)) for j in range(length)] for i in range(length)]
        )
    return flow


@pytest.mark.parametrize("layer_norm", ["post", "pre"])
def test_rollout_matches_an_elementwise_reference_on_the_models_attention(layer_norm):
    _, _, result = tiny_run(layer_norm)
    flow = rollout.attention_rollout(result.attention_weights)
    assert flow.shape == (9, 9)
    np.testing.assert_allclose(flow, reference_rollout(np.asarray(result.attention_weights, np.float64)), atol=1e-12)
    np.testing.assert_allclose(flow.sum(axis=1), 1.0, atol=1e-12)


def test_rollout_of_self_attention_is_the_identity_and_of_one_layer_is_half_of_it():
    identity = np.broadcast_to(np.eye(5), (3, 2, 5, 5))
    np.testing.assert_allclose(rollout.attention_rollout(identity), np.eye(5))
    uniform = np.full((1, 2, 4, 4), 0.25)
    np.testing.assert_allclose(rollout.attention_rollout(uniform), 0.5 * uniform[0, 0] + 0.5 * np.eye(4))
    with pytest.raises(ValueError, match="4 axes"):
        rollout.attention_rollout(np.eye(3))


# ----------------------------------------------------------------------------------------------------
# Logit lens


@pytest.mark.parametrize("layer_norm", ["post", "pre"])
def test_logit_lens_last_row_is_the_models_own_prediction(layer_norm):
    config, params, result = tiny_run(layer_norm)
    logits = logit_lens.lens_logits(params, config, result.hidden_states)
    assert logits.shape == (2 * config.num_layers + 1, 9, config.vocab_size)
    np.testing.assert_allclose(logits[-1], result.logits, atol=1e-4)
    lens = logit_lens.logit_lens(params, config, result.hidden_states, k=3)
    assert lens.ids.shape == lens.probabilities.shape == (5, 9, 3)
    np.testing.assert_array_equal(lens.ids[-1, :, 0], result.logits.argmax(-1))
    assert np.all(np.diff(lens.probabilities, axis=-1) <= 0)  # most probable first
    probabilities = analysis.softmax(logits)
    np.testing.assert_allclose(lens.probabilities[..., 0], probabilities.max(-1), rtol=1e-5)
    if layer_norm == "post":  # the last snapshot of a post-LN stream is the final hidden state itself
        np.testing.assert_allclose(result.hidden_states[-1], result.final_hidden, atol=1e-6)


def test_logit_lens_rows_are_json_and_name_tokens():
    config, params, result = tiny_run("post")
    vocab = small_vocab()  # ids below 40 are the specials and bytes: any closed vocabulary names them
    lens = logit_lens.logit_lens(params, config, result.hidden_states, k=2)
    rows = logit_lens.lens_rows(lens, vocab)
    assert len(rows) == 5 and len(rows[0]) == 9
    cell = rows[-1][0]
    assert set(cell) == {"token", "probability", "top"} and len(cell["top"]) == 2
    assert cell["token"] == cell["top"][0]["token"] and cell["probability"] == cell["top"][0]["probability"]
    assert json.loads(json.dumps(rows)) == rows
    assert vocab.token_text(1) == "[MASK]"


def test_logit_lens_without_an_output_head_says_why():
    config, params, result = tiny_run("post")
    # Neither a separate head nor a tied head's bias (the tiny model has sinusoidal positions, so "encoder"
    # holds nothing else).
    headless = {k: v for k, v in params.items() if k not in (logit_lens.OUTPUT_HEAD, "encoder")}
    with pytest.raises(ValueError, match="no output head"):
        logit_lens.logit_lens(headless, config, result.hidden_states)


def test_numpy_layer_norm_is_haikus():
    import haiku as hk

    x = np.random.default_rng(0).normal(2.0, 3.0, size=(4, 16)).astype(np.float32)
    scale, offset = np.linspace(0.5, 2.0, 16), np.linspace(-1.0, 1.0, 16)

    def forward(v):
        norm = hk.LayerNorm(axis=-1, create_scale=True, create_offset=True, name="n")
        return norm(v)

    model = hk.without_apply_rng(hk.transform(forward))
    params = {"n": {"scale": scale.astype(np.float32), "offset": offset.astype(np.float32)}}
    np.testing.assert_allclose(logit_lens.layer_norm(x, scale, offset), model.apply(params, x), atol=1e-5)


# ----------------------------------------------------------------------------------------------------
# Head roles


def constructed_heads(length: int = 8) -> np.ndarray:
    """``[1, 7, T, T]``: a perfect head of every role (same token on ids 0 1 2 0 1 2 ...) and a uniform head."""
    positions = np.arange(length)
    heads = np.zeros((7, length, length))
    heads[0, positions, np.maximum(positions - 1, 0)] = 1.0  # previous token (query 0 on itself)
    heads[1, positions, np.minimum(positions + 1, length - 1)] = 1.0  # next token
    heads[2, positions, positions] = 1.0  # self
    heads[3, :, 0] = 1.0  # first token
    heads[4, :, length - 1] = 1.0  # punctuation: the last token is "."
    heads[4, length - 1, length - 2] = 1.0
    heads[4, length - 1, length - 1] = 0.0
    heads[5] = np.eye(length)  # same token: ids repeat with period 3, an earlier copy where there is one
    heads[5, positions[3:]] = 0.0
    heads[5, positions[3:], positions[3:] - 3] = 1.0
    heads[6] = 1.0 / length  # uniform
    return heads[None]


def test_constructed_heads_get_their_roles():
    length, sentences = 8, 4
    attention = [constructed_heads(length)] * sentences
    ids = [[0, 1, 2, 0, 1, 2, 0, 1]] * sentences
    pieces = [["A", " b", " c", " a", " b", " c", " a", "."]] * sentences
    roles = head_roles.head_roles(attention, ids, pieces)
    assert json.loads(json.dumps(roles)) == roles
    expected = [*head_roles.PATTERN_ROLES, head_roles.BROAD]
    assert [cell["role"] for cell in roles[0]] == expected
    for cell in roles[0]:
        assert cell["score"] > 0.99, cell
        assert 0.0 <= min(cell["scores"].values()) and max(cell["scores"].values()) <= 1.0
    uniform = roles[0][6]["scores"]
    assert uniform["previous token"] == pytest.approx(1 / length)


def test_a_weak_head_is_none_and_few_repeats_do_not_make_a_same_token_head():
    length = 6
    mixed = np.full((1, 1, length, length), 0.3 / (length - 1))
    mixed[0, 0, np.arange(length), np.arange(length)] = 0.7  # 70% self
    split = np.zeros_like(mixed)  # half on the token two ahead, half three ahead: no role, and focused
    split[0, 0, np.arange(length), (np.arange(length) + 2) % length] = 0.5
    split[0, 0, np.arange(length), (np.arange(length) + 3) % length] = 0.5
    roles = head_roles.head_roles([np.concatenate([mixed, split], 1)], [list(range(length))], [["a"] * length])
    assert roles[0][0]["role"] == "self"
    assert roles[0][1]["role"] == "none" and roles[0][1]["score"] < head_roles.ROLE_THRESHOLD
    copy = np.zeros((1, 1, 3, 3))
    copy[0, 0, :, 0] = 1.0  # token 2 repeats token 0 and looks at it, once: too few to call
    scores = head_roles.role_scores([copy], [[5, 6, 5]], [["x", "y", "x"]])
    assert scores[head_roles.ROLES.index("same token"), 0, 0] == 0.0


def test_broad_respects_the_causal_mask():
    length = 5
    causal = np.tril(np.ones((length, length)))
    causal /= causal.sum(-1, keepdims=True)  # uniform over the keys each query may see
    scores = head_roles.role_scores([causal[None, None]], [list(range(length))], [["a"] * length], causal=True)
    assert scores[head_roles.ROLES.index("broad"), 0, 0] == pytest.approx(1.0)
    assert head_roles.role_scores([causal[None, None]], [list(range(length))], [["a"] * length])[-1, 0, 0] < 0.8


def test_role_inputs_are_checked_and_badges_are_short():
    with pytest.raises(ValueError, match="same sentence"):
        head_roles.role_scores([np.zeros((1, 1, 3, 3))], [[1, 2]], [["a", "b"]])
    with pytest.raises(ValueError, match="one of each"):
        head_roles.role_scores([np.zeros((1, 1, 3, 3))], [], [])
    assert all(len(head_roles.role_badge(r)) <= 8 for r in (*head_roles.ROLES, head_roles.NONE))
    with pytest.raises(ValueError, match="Unknown head role"):
        head_roles.role_badge("induction")
    assert head_roles.is_punctuation(" .") and head_roles.is_punctuation('."') and not head_roles.is_punctuation(" ")


def test_scores_over_snapshots_follow_each_heads_final_role():
    first = head_roles.head_roles([constructed_heads()], [[0, 1, 2, 0, 1, 2, 0, 1]], [["a"] * 7 + ["."]])
    later = json.loads(json.dumps(first))
    timeline = head_roles.scores_over_snapshots([first, later])
    assert timeline.shape == (2, 1, 7)
    np.testing.assert_allclose(timeline[1], [[cell["score"] for cell in first[0]]])
    by_role = head_roles.scores_over_snapshots([first, later], "self")
    np.testing.assert_allclose(by_role[0, 0], [cell["scores"]["self"] for cell in first[0]])


@needs_corpus
@pytest.mark.parametrize("task", ["mlm", "causal"])
def test_bundle_head_roles_label_every_head_of_a_model(task):
    from explorer.model.bundle import ModelBundle

    config = ModelConfig(vocab_size=300, d_model=16, num_heads=2, num_layers=2, ffn_size=32, max_len=64)
    bundle = ModelBundle.random(config, small_vocab())
    bundle = ModelBundle(bundle.config, bundle.params, bundle.vocab, bundle.source, task=task)
    roles = head_roles.bundle_head_roles(bundle, InferenceEngine(config), count=8)
    assert len(roles) == 2 and len(roles[0]) == 2
    assert all(cell["role"] in (*head_roles.ROLES, head_roles.NONE) for row in roles for cell in row)
    if task == "causal":  # a random model's causal attention is near uniform over the keys it may see
        assert all(cell["scores"]["broad"] > 0.8 for row in roles for cell in row)


# ----------------------------------------------------------------------------------------------------
# Query/key maps


@pytest.mark.parametrize("layer_norm", ["post", "pre"])
def test_queries_and_keys_reproduce_the_models_scores(layer_norm):
    config, params, result = tiny_run(layer_norm)
    for layer in range(config.num_layers):
        x = qk_map.attention_input(config, result.hidden_states, result.layer_norm_outputs, layer)
        for head in range(config.num_heads):
            queries, keys = qk_map.queries_and_keys(params, config, x, layer, head)
            assert queries.shape == keys.shape == (9, config.key_size)
            scores = queries @ keys.T / np.sqrt(config.key_size)
            np.testing.assert_allclose(scores, result.attention_scores[layer, head], atol=2e-4)


def test_query_key_map_keeps_the_weights_and_links_each_query_to_its_strongest_key():
    config, params, result = tiny_run("post")
    x = qk_map.attention_input(config, result.hidden_states, result.layer_norm_outputs, 1)
    queries, keys = qk_map.queries_and_keys(params, config, x, 1, 2)
    aligned_queries, aligned_keys = qk_map.align(queries, keys)
    scale = np.sqrt(config.key_size)
    np.testing.assert_allclose(
        analysis.softmax(aligned_queries @ aligned_keys.T / scale),
        analysis.softmax(queries @ keys.T / scale),
        atol=1e-9,
    )
    weights = result.attention_weights[1, 2]
    mapped = qk_map.query_key_map(queries, keys, weights)
    assert mapped.queries.shape == mapped.keys.shape == (9, 2)
    np.testing.assert_array_equal(mapped.strongest, weights.argmax(1))
    np.testing.assert_allclose(mapped.weights, weights.max(1), rtol=1e-6)
    with pytest.raises(ValueError, match="same T tokens"):
        qk_map.query_key_map(queries[:3], keys, weights)
    with pytest.raises(ValueError, match="does not exist"):
        qk_map.queries_and_keys(params, config, x, 1, 4)


def test_roles_over_training_follow_a_head_as_it_settles():
    from explorer.interpret.head_roles import roles_over_training, scores_over_snapshots

    T = 12
    uniform = np.full((1, 1, T, T), 1 / T)  # [L, H, T, T] at the first snapshot: no pattern yet
    previous = np.zeros((1, 1, T, T))
    previous[0, 0, 0, 0] = 1.0
    previous[0, 0, np.arange(1, T), np.arange(T - 1)] = 1.0  # by the last snapshot: a previous-token head
    halfway = 0.5 * uniform + 0.5 * previous
    ids = list(range(100, 100 + T))
    pieces = [f" w{i}" for i in range(T)]
    history = roles_over_training([uniform, halfway, previous], ids, pieces)
    assert history[0][0][0]["role"] == "broad" and history[-1][0][0]["role"] == "previous token"
    scores = scores_over_snapshots(history)[:, 0, 0]  # each snapshot's score for the final role
    assert scores[0] < scores[1] < scores[2] and scores[2] > 0.99
