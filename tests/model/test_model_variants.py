"""The BERT family's variants as configuration of the encoder's parts: the feed-forward's activation, a
position table read from an offset (RoBERTa), narrow embeddings projected up (ELECTRA), and a masked-LM
head's transform, each checked against a formula or an equivalent model, never against itself.

(That the defaults leave every earlier parameter and output bit-identical is ``test_encoder_parts.py``.)
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from explorer.model.config import ModelConfig
from explorer.model.encoder import build_model, hidden_state_names, init_params, layer_norm_param_names
from explorer.model.feed_forward import ACTIVATION_FUNCTIONS
from explorer.model.output_head import HEAD_NORM, HEAD_TRANSFORM, output_logits

BERTISH = ModelConfig(
    vocab_size=30,
    d_model=8,
    num_heads=2,
    num_layers=2,
    ffn_size=12,
    max_len=10,
    positional="learned",
    scale_embeddings=False,
    token_types=2,
    embedding_norm=True,
    layer_norm_eps=1e-12,
    output_head=False,
)


def run(config, params, ids):
    ids = jnp.asarray(ids, jnp.int32)[None]
    return build_model(config).apply(params, None, ids, jnp.ones_like(ids, bool))


def randomised(config, seed=0):
    """Parameters with every entry random (biases and layer norms too), so nothing hides behind a zero."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda p: rng.standard_normal(p.shape).astype(np.float32) * 0.5, init_params(config))


def test_activations_are_the_published_formulas():
    x = np.linspace(-6, 6, 101).astype(np.float32)
    exact = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x.astype(np.float64)])
    tanh = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x.astype(np.float64) ** 3)))
    np.testing.assert_allclose(ACTIVATION_FUNCTIONS["gelu"](x), exact, atol=1e-6)
    np.testing.assert_allclose(ACTIVATION_FUNCTIONS["gelu_tanh"](x), tanh, atol=1e-6)
    np.testing.assert_array_equal(ACTIVATION_FUNCTIONS["relu"](x), np.maximum(x, 0))
    assert np.abs(np.asarray(ACTIVATION_FUNCTIONS["gelu"](x)) - tanh).max() > 1e-4  # they do differ


@pytest.mark.parametrize("activation", ["gelu_tanh", "relu"])
def test_the_feed_forward_uses_the_configured_activation(activation):
    config = dataclasses.replace(BERTISH, activation=activation)
    params = randomised(config)
    out = run(config, params, [3, 4, 5])
    # The first feed-forward, recomputed by hand from what enters it.
    x = np.asarray(out.hidden_states[1][0], np.float64)  # [T, D] after layer 1's attention (post-LN)
    expand, contract = params["encoder/layer_0/ffn/expand"], params["encoder/layer_0/ffn/contract"]
    inner = x @ np.asarray(expand["w"]) + np.asarray(expand["b"])
    inner = np.maximum(inner, 0) if activation == "relu" else np.asarray(ACTIVATION_FUNCTIONS["gelu_tanh"](inner))
    expected = inner @ np.asarray(contract["w"]) + np.asarray(contract["b"])
    np.testing.assert_allclose(out.ffn_outputs[0, 0], expected, atol=1e-4)
    gelu = run(BERTISH, params, [3, 4, 5])  # the same weights with exact GELU differ
    assert np.abs(np.asarray(gelu.ffn_outputs[0]) - np.asarray(out.ffn_outputs[0])).max() > 1e-4


def test_a_position_offset_reads_the_table_from_that_row():
    shifted = dataclasses.replace(BERTISH, position_offset=2)
    params = randomised(shifted)
    table = np.asarray(params["encoder"]["positional_embedding"])
    assert table.shape == (BERTISH.max_len + 2, BERTISH.d_model)  # RoBERTa: 514 rows for 512 tokens
    plain = jax.tree.map(lambda p: p, params)
    plain = {**plain, "encoder": {**plain["encoder"], "positional_embedding": jnp.asarray(table[2:])}}
    ids = [5, 6, 7, 8]
    a, b = run(shifted, params, ids), run(BERTISH, plain, ids)
    np.testing.assert_array_equal(a.positional_encodings, table[2:6])
    np.testing.assert_allclose(a.final_hidden, b.final_hidden, atol=1e-6)
    # The longest input still fits: positions 2 .. max_len + 1 are rows of the table.
    assert run(shifted, params, [3] * BERTISH.max_len).final_hidden.shape == (1, BERTISH.max_len, 8)


def test_narrow_embeddings_are_projected_up():
    electra = dataclasses.replace(BERTISH, embedding_size=4)
    params = randomised(electra)
    assert params["encoder/token_embedding"]["embeddings"].shape == (30, 4)
    assert params["encoder"]["positional_embedding"].shape == (10, 4)
    assert params["encoder/embedding_norm"]["scale"].shape == (4,)
    assert params["encoder/embeddings_project"]["w"].shape == (4, 8)
    out = run(electra, params, [3, 4, 5])
    assert out.token_embeddings.shape == out.embedding_sum.shape == (1, 3, 4)
    assert out.hidden_states.shape == (2 * 2 + 1, 1, 3, 8)
    # Layer 1 reads the normalised sum through the projection.
    s = np.asarray(out.embedding_sum[0], np.float64)
    norm = params["encoder/embedding_norm"]
    normed = (s - s.mean(-1, keepdims=True)) / np.sqrt(s.var(-1, keepdims=True) + 1e-12) * norm["scale"] + norm[
        "offset"
    ]
    project = params["encoder/embeddings_project"]
    np.testing.assert_allclose(out.hidden_states[0, 0], normed @ project["w"] + project["b"], atol=1e-5)
    # The E-wide embedding norm is not stacked with the D-wide ones; the names say what the first snapshot is.
    assert "encoder/embedding_norm" not in layer_norm_param_names(electra)
    assert out.layer_norm_inputs.shape[0] == len(layer_norm_param_names(electra)) == 4
    assert hidden_state_names(electra)[0] == "embedding + position + type · after LN · projected"
    assert "encoder/embeddings_project" not in init_params(BERTISH)


HEADS = {
    "tied": dict(head_transform=True),
    "untied": dict(head_transform=True, tie_embeddings=False),
    "tied, narrow embeddings": dict(head_transform=True, embedding_size=4),
    "tied, tanh head": dict(head_transform=True, head_activation="gelu_tanh", activation="relu"),
}


@pytest.mark.parametrize("name", list(HEADS))
def test_a_transformed_head_outside_apply_is_the_head_inside(name):
    config = dataclasses.replace(BERTISH, output_head=True, **HEADS[name])
    params = randomised(config, seed=1)
    out = run(config, params, [3, 4, 5, 6])
    np.testing.assert_allclose(output_logits(params, out.final_hidden, config), out.logits, atol=1e-5)
    # And both are dense -> activation -> layer norm -> decoder, written out here.
    h = np.asarray(out.final_hidden[0], np.float64)
    dense, norm = params[HEAD_TRANSFORM], params[HEAD_NORM]
    t = np.asarray(ACTIVATION_FUNCTIONS[config.head_activation](h @ dense["w"] + dense["b"]), np.float64)
    t = (t - t.mean(-1, keepdims=True)) / np.sqrt(t.var(-1, keepdims=True) + 1e-12) * norm["scale"] + norm["offset"]
    if config.tie_embeddings:
        logits = t @ np.asarray(params["encoder/token_embedding"]["embeddings"]).T + params["encoder"]["output_bias"]
    else:
        logits = t @ params["encoder/output_head"]["w"] + params["encoder/output_head"]["b"]
    np.testing.assert_allclose(out.logits[0], logits, atol=1e-4)
    with pytest.raises(ValueError, match="pass the model's config"):
        output_logits(params, out.final_hidden)


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"activation": "swish"}, r"activation must be one of \('gelu', 'gelu_tanh', 'relu'\)"),
        ({"head_activation": "tanh"}, "head_activation must be one of"),
        ({"position_offset": 2}, "position_offset .* positional='learned'"),
        ({"position_offset": -1, "positional": "learned"}, "position_offset must be between 0"),
        ({"embedding_size": 4}, "A head tied to the 4-wide embedding table cannot read 8-wide"),
        ({"head_transform": True, "output_head": False}, "head_transform is part of an output head"),
        ({"head_transform": 1}, "head_transform must be true or false"),
        ({"embedding_size": 5, "tie_embeddings": False}, "embedding width must be even"),
    ],
)
def test_invalid_variants_are_explained(changes, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(vocab_size=30, d_model=8, num_heads=2, num_layers=1, ffn_size=8, max_len=8, **changes)


def test_configs_saved_before_the_variants_read_as_before():
    old = {k: v for k, v in dataclasses.asdict(BERTISH).items()}
    for name in ("activation", "position_offset", "embedding_size", "head_transform", "head_activation"):
        old.pop(name)
    config = ModelConfig.from_dict(old)
    assert (config.activation, config.position_offset, config.embedding_size, config.head_transform) == (
        "gelu",
        0,
        0,
        False,
    )
    assert config.embedding_width == config.d_model and config.position_rows == config.max_len
    assert ModelConfig.from_dict(config.to_dict()) == config
