"""Numerical invariants of the encoder, and a check against an independent numpy implementation."""

import dataclasses
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from explorer.model.attention import masked_softmax
from explorer.model.encoder import build_model, count_parameters, hidden_state_names, init_params, layer_norm_names


def run(config, params, ids, mask, **kwargs):
    return build_model(config).apply(params, None, jnp.asarray(ids), jnp.asarray(mask), **kwargs)


def random_batch(config, batch, length, seed=0, lengths=None):
    rng = np.random.default_rng(seed)
    ids = rng.integers(3, config.vocab_size, size=(batch, length)).astype(np.int32)
    lengths = lengths or [length] * batch
    mask = np.arange(length)[None, :] < np.array(lengths)[:, None]
    return np.where(mask, ids, 0).astype(np.int32), mask


GRID = list(itertools.product(["post", "pre"], ["sinusoidal", "learned", "none"], [(1, 1), (2, 4), (3, 2)]))


@pytest.mark.parametrize("layer_norm,positional,layers_heads", GRID)
def test_shapes_and_attention_invariants(tiny_config, layer_norm, positional, layers_heads):
    layers, heads = layers_heads
    config = dataclasses.replace(
        tiny_config, layer_norm=layer_norm, positional=positional, num_layers=layers, num_heads=heads
    )
    params = init_params(config, seed=1)
    batch, length = 3, 12
    ids, mask = random_batch(config, batch, length, lengths=[12, 7, 1])
    out = run(config, params, ids, mask)
    D, V, L, H, T, B = config.d_model, config.vocab_size, layers, heads, length, batch
    n_norms = 2 * L + (1 if layer_norm == "pre" else 0)
    assert out.logits.shape == (B, T, V)
    assert out.attention_weights.shape == (L, B, H, T, T)
    assert out.attention_scores.shape == (L, B, H, T, T)
    assert out.hidden_states.shape == (2 * L + 1, B, T, D)
    assert out.layer_norm_inputs.shape == out.layer_norm_outputs.shape == (n_norms, B, T, D)
    assert len(layer_norm_names(config)) == n_norms and len(hidden_state_names(config)) == 2 * L + 1
    assert out.positional_encodings.shape == (T, D)
    weights = np.asarray(out.attention_weights)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)  # every query row is a distribution
    assert (weights >= 0).all()
    key_mask = mask[None, :, None, None, :]  # [1, B, 1, 1, T]
    assert np.all(np.where(key_mask, 0.0, weights) == 0.0)  # padded keys get exactly zero weight
    np.testing.assert_allclose(out.embedding_sum, out.token_embeddings + out.positional_encodings[None], atol=1e-6)
    assert np.isfinite(np.asarray(out.logits)).all()


@pytest.mark.parametrize("layer_norm", ["post", "pre"])
def test_padding_never_changes_real_positions(tiny_config, layer_norm):
    config = dataclasses.replace(tiny_config, layer_norm=layer_norm)
    params = init_params(config, seed=2)
    ids, _ = random_batch(config, 1, 9, seed=3)
    alone = run(config, params, ids, np.ones((1, 9), bool))
    for pad_to in (10, 16, 40):
        padded_ids = np.zeros((1, pad_to), np.int32)
        padded_ids[:, :9] = ids
        # The pad slots hold arbitrary ids: whatever is there must not leak into real positions.
        padded_ids[:, 9:] = np.arange(3, 3 + pad_to - 9) % config.vocab_size
        mask = np.arange(pad_to)[None] < 9
        padded = run(config, params, padded_ids, mask)
        np.testing.assert_allclose(padded.logits[:, :9], alone.logits, atol=1e-5)
        np.testing.assert_allclose(padded.attention_weights[..., :9, :9], alone.attention_weights, atol=1e-6)
        np.testing.assert_allclose(padded.hidden_states[:, :, :9], alone.hidden_states, atol=1e-5)


def test_head_ablation(tiny_config):
    params = init_params(tiny_config, seed=4)
    ids, mask = random_batch(tiny_config, 2, 10, seed=5)
    base = run(tiny_config, params, ids, mask)
    ones = jnp.ones((tiny_config.num_layers, tiny_config.num_heads))
    same = run(tiny_config, params, ids, mask, head_mask=ones)
    np.testing.assert_array_equal(np.asarray(same.logits), np.asarray(base.logits))
    for layer, head in [(0, 0), (1, 3)]:
        ablated = run(tiny_config, params, ids, mask, head_mask=ones.at[layer, head].set(0.0))
        assert np.abs(np.asarray(ablated.logits - base.logits)).max() > 1e-4
        # Layers before the ablated one are untouched.
        np.testing.assert_allclose(ablated.hidden_states[: 2 * layer + 1], base.hidden_states[: 2 * layer + 1])


def test_causal_mask_hides_the_future(tiny_config):
    params = init_params(tiny_config, seed=6)
    ids, mask = random_batch(tiny_config, 1, 8, seed=7)
    for causal in (True, jnp.asarray(True)):
        out = run(tiny_config, params, ids, mask, causal=causal)
        weights = np.asarray(out.attention_weights)
        assert np.all(np.triu(np.ones((8, 8)), k=1) * weights == 0.0)
        np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
        # A prefix's outputs do not depend on what follows it.
        changed = ids.copy()
        changed[0, 5:] = 3
        other = run(tiny_config, params, changed, mask, causal=causal)
        np.testing.assert_allclose(other.logits[:, :5], out.logits[:, :5], atol=1e-5)
    off = run(tiny_config, params, ids, mask, causal=jnp.asarray(False))
    np.testing.assert_allclose(off.logits, run(tiny_config, params, ids, mask).logits, atol=1e-6)


def test_dropout_only_in_training(tiny_config):
    config = dataclasses.replace(tiny_config, dropout=0.5)
    params = init_params(config)
    ids, mask = random_batch(config, 1, 6)
    model = build_model(config)
    eval_a = model.apply(params, None, ids, mask)
    eval_b = model.apply(params, jax.random.PRNGKey(1), ids, mask)
    np.testing.assert_array_equal(np.asarray(eval_a.logits), np.asarray(eval_b.logits))
    train = model.apply(params, jax.random.PRNGKey(1), ids, mask, is_training=True)
    assert np.abs(np.asarray(train.logits - eval_a.logits)).max() > 1e-3


def numpy_reference(config, params, ids, mask):
    """The encoder written again in plain numpy, straight from the paper, for one sentence batch."""
    p = {m: {k: np.asarray(v, np.float64) for k, v in leaves.items()} for m, leaves in params.items()}
    D, H = config.d_model, config.num_heads
    K = D // H

    def layer_norm(x, name):
        mean = x.mean(-1, keepdims=True)
        var = x.var(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + 1e-5) * p[name]["scale"] + p[name]["offset"]

    def linear(x, name):
        return x @ p[name]["w"] + p[name]["b"]

    T = ids.shape[1]
    x = p["encoder/token_embedding"]["embeddings"][ids] * math.sqrt(D)
    pos = np.array([[pos / 10000 ** (2 * (d // 2) / D) for d in range(D)] for pos in range(T)])
    pos[:, 0::2], pos[:, 1::2] = np.sin(pos[:, 0::2]), np.cos(pos[:, 1::2])
    x = x + pos[None]
    all_weights = []
    for layer in range(config.num_layers):
        prefix = f"encoder/layer_{layer}"

        def attention(h, prefix=prefix):
            q = linear(h, f"{prefix}/attention/query").reshape(*h.shape[:2], H, K)
            k = linear(h, f"{prefix}/attention/key").reshape(*h.shape[:2], H, K)
            v = linear(h, f"{prefix}/attention/value").reshape(*h.shape[:2], H, K)
            scores = np.einsum("bqhk,bshk->bhqs", q, k) / math.sqrt(K)
            scores = np.where(mask[:, None, None, :], scores, -np.inf)
            weights = np.exp(scores - scores.max(-1, keepdims=True))
            weights = weights / weights.sum(-1, keepdims=True)
            all_weights.append(weights)
            context = np.einsum("bhqs,bshk->bqhk", weights, v).reshape(h.shape)
            return linear(context, f"{prefix}/attention/output")

        def ffn(h, prefix=prefix):
            hidden = linear(h, f"{prefix}/ffn/expand")
            hidden = 0.5 * hidden * (1 + np.vectorize(math.erf)(hidden / math.sqrt(2)))
            return linear(hidden, f"{prefix}/ffn/contract")

        for fn, norm in ((attention, "attention_norm"), (ffn, "ffn_norm")):
            if config.layer_norm == "post":
                x = layer_norm(x + fn(x), f"{prefix}/{norm}")
            else:
                x = x + fn(layer_norm(x, f"{prefix}/{norm}"))
    if config.layer_norm == "pre":
        x = layer_norm(x, "encoder/final_norm")
    if "encoder/output_head" in params:
        return linear(x, "encoder/output_head"), np.stack(all_weights)
    table = np.asarray(params["encoder/token_embedding"]["embeddings"], np.float64)  # tied: the table backwards
    return x @ table.T + np.asarray(params["encoder"]["output_bias"], np.float64), np.stack(all_weights)


@pytest.mark.parametrize("tie", [True, False])
@pytest.mark.parametrize("layer_norm", ["post", "pre"])
def test_matches_numpy_reference(tiny_config, layer_norm, tie):
    config = dataclasses.replace(tiny_config, layer_norm=layer_norm, tie_embeddings=tie)
    params = init_params(config, seed=8)
    ids, mask = random_batch(config, 2, 11, seed=9, lengths=[11, 6])
    out = run(config, params, ids, mask)
    logits, weights = numpy_reference(config, params, ids, mask)
    np.testing.assert_allclose(out.attention_weights, weights, atol=2e-5)
    np.testing.assert_allclose(out.logits, logits, atol=2e-4, rtol=1e-4)


def test_parameter_counts(tiny_config):
    counts = count_parameters(init_params(dataclasses.replace(tiny_config, tie_embeddings=False)))
    D, F, V = tiny_config.d_model, tiny_config.ffn_size, tiny_config.vocab_size
    assert counts["encoder/token_embedding"] == V * D
    assert counts["encoder/layer_0/attention/query"] == D * D + D
    assert counts["encoder/layer_1/ffn/expand"] == D * F + F
    assert counts["encoder/output_head"] == D * V + V
    tied = count_parameters(init_params(dataclasses.replace(tiny_config, tie_embeddings=True)))
    assert "encoder/output_head" not in tied and tied["encoder/output_bias"] == V  # the head reuses the table
    assert sum(tied.values()) == sum(counts.values()) - D * V


def test_too_long_input_is_explained(tiny_config):
    ids = np.zeros((1, tiny_config.max_len + 1), np.int32)
    with pytest.raises(ValueError, match="max_len"):
        run(tiny_config, init_params(tiny_config), ids, ids > -1)


def test_masked_softmax_gradient_matches_autodiff():
    """The hand-written backward pass equals autodiff of a plain masked softmax, masked rows included."""
    scores = jax.random.normal(jax.random.PRNGKey(0), (2, 3, 5, 5))  # [B, H, T, T]
    mask = jax.random.bernoulli(jax.random.PRNGKey(1), 0.7, (2, 1, 5, 5)).at[0, 0, 2].set(False)  # a fully masked row
    upstream = jax.random.normal(jax.random.PRNGKey(2), scores.shape)

    def plain(s):
        exp = jnp.where(mask, jnp.exp(s - jnp.max(s, axis=-1, keepdims=True)), 0.0)
        return exp / jnp.maximum(exp.sum(axis=-1, keepdims=True), 1e-30)

    np.testing.assert_allclose(np.asarray(masked_softmax(scores, mask)), np.asarray(plain(scores)), atol=1e-6)
    ours = jax.grad(lambda s: jnp.sum(masked_softmax(s, mask) * upstream))(scores)
    reference = jax.grad(lambda s: jnp.sum(plain(s) * upstream))(scores)
    np.testing.assert_allclose(np.asarray(ours), np.asarray(reference), atol=1e-6)
    assert np.all(np.asarray(ours)[0, :, 2] == 0.0)  # no gradient flows into a fully masked row


@pytest.mark.parametrize("layer_norm,causal", list(itertools.product(["post", "pre"], [False, True])))
@pytest.mark.slow
def test_predict_at_equals_the_full_pass_at_those_positions(tiny_config, layer_norm, causal):
    """Training's shortcut (the last layer only at the scored positions) changes no value and no gradient."""
    config = dataclasses.replace(tiny_config, layer_norm=layer_norm)
    params = init_params(config, seed=8)
    ids, mask = random_batch(config, 3, 11, seed=9, lengths=[11, 8, 11])
    positions = jnp.asarray([[0, 5, 10], [7, 1, 3], [4, 4, 9]], jnp.int32)  # any order, repeats allowed
    model = build_model(config)
    upstream = jax.random.normal(jax.random.PRNGKey(3), (3, 3, config.d_model))

    def full(p):
        hidden = model.apply(p, None, ids, mask, causal=causal).final_hidden  # [B, T, D]
        return jnp.take_along_axis(hidden, positions[..., None], axis=1)  # [B, P, D]

    def shortcut(p):
        return model.apply(p, None, ids, mask, causal=causal, predict_at=positions)  # [B, P, D]

    np.testing.assert_allclose(np.asarray(shortcut(params)), np.asarray(full(params)), atol=1e-5)
    grads = [jax.grad(lambda p, f=f: jnp.sum(f(p) * upstream))(params) for f in (full, shortcut)]
    for reference, ours in zip(*(jax.tree.leaves(g) for g in grads), strict=True):
        np.testing.assert_allclose(np.asarray(ours), np.asarray(reference), atol=1e-5)
    assert any(np.abs(np.asarray(leaf)).max() > 0 for leaf in jax.tree.leaves(grads[1]))
