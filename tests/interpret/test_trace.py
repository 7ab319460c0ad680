"""The step-by-step trace of one layer against the encoder's own intermediates.

The trace recomputes a layer in numpy from the parameters and the residual stream entering it; the encoder
(Haiku, jitted maths) computes the same layer its own way. For every layer, head and query of small models
(post- and pre-LN, sinusoidal and learned positions, a BERT-style model with token types and an embedding
norm, RoBERTa's position offset and masked-LM head, ELECTRA's narrow embeddings projected up, ReLU and the
tanh form of GELU), with padding, with and without the causal mask and with heads switched off, the two must
agree.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from explorer.interpret.activations import ACTIVATIONS, activation_for
from explorer.interpret.trace import PER_KEY, PER_TOKEN, trace_layer
from explorer.model import config as model_config
from explorer.model.config import ModelConfig
from explorer.model.encoder import build_model, init_params
from explorer.model.feed_forward import gelu

BASE = ModelConfig(vocab_size=40, d_model=16, num_heads=4, num_layers=2, ffn_size=32, max_len=64)
CONFIGS = {
    "post-LN, sinusoidal": BASE,
    "pre-LN, learned": dataclasses.replace(BASE, layer_norm="pre", positional="learned"),
    "BERT-style": dataclasses.replace(
        BASE,
        positional="learned",
        scale_embeddings=False,
        token_types=2,
        embedding_norm=True,
        layer_norm_eps=1e-12,
        output_head=False,
        num_layers=3,
        num_heads=2,
    ),
    # RoBERTa: positions from row 2 of a longer table, one token type, a masked-LM head after the last layer.
    "RoBERTa-style": dataclasses.replace(
        BASE,
        positional="learned",
        position_offset=2,
        scale_embeddings=False,
        token_types=1,
        embedding_norm=True,
        head_transform=True,
        activation="gelu_tanh",
    ),
    # ELECTRA: 8-wide embeddings projected up to the 16-wide stream; DistilBERT-like ReLU feed-forward.
    "ELECTRA-style, ReLU": dataclasses.replace(
        BASE,
        positional="learned",
        scale_embeddings=False,
        token_types=2,
        embedding_norm=True,
        embedding_size=8,
        head_transform=True,
        activation="relu",
    ),
}
REAL = 6  # tokens of the text; the input is padded to 8 as the inference engine pads to a bucket
PADDED = 8
ORDER_POST = ["input", "query", "keys", "values", "scores", "weights", "head_output", "heads_concatenated",
              "attention_output", "attention_residual", "after_attention", "ffn_hidden", "ffn_activation",
              "ffn_output", "ffn_residual", "layer_output"]  # fmt: skip
ORDER_PRE = ["input", "input_norm", "query", "keys", "values", "scores", "weights", "head_output",
             "heads_concatenated", "attention_output", "after_attention", "ffn_norm", "ffn_hidden",
             "ffn_activation", "ffn_output", "layer_output"]  # fmt: skip


def perturbed_params(config: ModelConfig, seed: int):
    """Initial parameters plus noise on every leaf: biases, layer-norm scales and offsets start at 0 and 1,
    which would let a trace that forgot one of them pass."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(
        lambda p: np.asarray(p) + 0.3 * rng.standard_normal(p.shape, np.float32), init_params(config, seed)
    )


@functools.cache
def compiled_encoder(config: ModelConfig):
    """The encoder's forward, compiled once per config (the causal flag and head mask are inputs)."""
    return jax.jit(build_model(config).apply)


def encoder_run(config, params, causal, head_mask=None):
    if head_mask is None:
        head_mask = np.ones((config.num_layers, config.num_heads), np.float32)
    rng = np.random.default_rng(0)
    ids = np.zeros((1, PADDED), np.int32)
    ids[0, :REAL] = rng.integers(3, config.vocab_size, REAL)
    ids[0, REAL:] = [5, 9]  # whatever a padding slot holds must not matter
    mask = np.arange(PADDED)[None] < REAL
    out = compiled_encoder(config)(params, None, ids, mask, head_mask, jnp.asarray(causal))
    return jax.tree.map(lambda a: np.asarray(a, np.float64), out), mask[0]


def softmax_where(scores, allowed):
    """An independent masked softmax: exp of the allowed scores over their sum, 0 elsewhere."""
    exp = np.exp(scores[allowed] - scores[allowed].max())
    out = np.zeros_like(scores)
    out[allowed] = exp / exp.sum()
    return out


@pytest.mark.parametrize("causal", [False, True], ids=["bidirectional", "causal"])
@pytest.mark.parametrize("name", CONFIGS)
def test_every_step_matches_the_encoder(name, causal):
    config = CONFIGS[name]
    params = perturbed_params(config, seed=len(name))
    # One head switched off in the first layer: the trace must zero its part as the encoder does.
    head_mask = np.ones((config.num_layers, config.num_heads), np.float32)
    head_mask[0, -1] = 0.0
    out, real = encoder_run(config, params, causal, head_mask)
    hidden = out.hidden_states[:, 0]  # [2L+1, T, D]
    K = config.key_size
    for layer in range(config.num_layers):
        for head in range(config.num_heads):
            for position in range(REAL):
                trace = trace_layer(
                    params, config, hidden, layer, head, position, causal=causal, real=real, head_mask=head_mask
                )
                at = f"{name}, layer {layer + 1}, head {head + 1}, query {position}"
                order = ORDER_PRE if config.layer_norm == "pre" else ORDER_POST
                assert [s.name for s in trace.steps if s.name != "mask"] == order, at
                step = {s.name: s.value for s in trace.steps}
                allowed = real & ((np.arange(PADDED) <= position) if causal else True)
                # The mask step says which keys may be seen (always padding here; later keys when causal).
                np.testing.assert_array_equal(step["mask"], allowed.astype(float), err_msg=at)
                # The model's own numbers: the attention row, the sub-layer outputs, the residual snapshots.
                model = {
                    "weights": out.attention_weights[layer, 0, head, position],
                    "attention_output": out.attention_outputs[layer, 0, position],
                    "after_attention": hidden[2 * layer + 1, position],
                    "ffn_output": out.ffn_outputs[layer, 0, position],
                    "layer_output": hidden[2 * layer + 2, position],
                }
                for what, value in model.items():
                    np.testing.assert_allclose(step[what], value, atol=1e-5, err_msg=f"{at}: {what}")
                scores = out.attention_scores[layer, 0, head, position]
                np.testing.assert_allclose(step["scores"][allowed], scores[allowed], atol=1e-5, err_msg=at)
                # The steps among themselves: each follows from the ones before by its formula.
                np.testing.assert_allclose(step["scores"], step["keys"] @ step["query"] / math.sqrt(K), atol=1e-12)
                np.testing.assert_allclose(softmax_where(step["scores"], step["mask"] > 0), step["weights"], atol=1e-12)
                np.testing.assert_allclose(step["head_output"], step["weights"] @ step["values"], atol=1e-12)
                part = step["heads_concatenated"][head * K : (head + 1) * K]
                np.testing.assert_allclose(part, step["head_output"] * head_mask[layer, head], atol=1e-12)
                np.testing.assert_allclose(step["input"], hidden[2 * layer, position])
                np.testing.assert_allclose(
                    step["ffn_activation"], ACTIVATIONS[config.activation].function(step["ffn_hidden"]), atol=1e-12
                )


def test_no_mask_step_when_every_key_is_seen():
    config = CONFIGS["post-LN, sinusoidal"]
    params = perturbed_params(config, 1)
    out, _ = encoder_run(config, params, causal=False)
    hidden = out.hidden_states[:, 0, :REAL]  # the real tokens alone, as the engine returns them
    trace = trace_layer(params, config, hidden, 1, 2, 3)
    assert "mask" not in trace
    np.testing.assert_allclose(trace["weights"].value, out.attention_weights[1, 0, 2, 3, :REAL], atol=1e-5)
    # The last query of a causal trace sees every key: no mask step either.
    assert "mask" not in trace_layer(params, config, hidden, 0, 0, REAL - 1, causal=True)
    assert "mask" in trace_layer(params, config, hidden, 0, 0, REAL - 2, causal=True)


def test_steps_say_what_they_are():
    config = CONFIGS["BERT-style"]
    params = perturbed_params(config, 2)
    out, real = encoder_run(config, params, causal=True)
    tokens = ["[CLS]", "the", "cat", "sat", ".", "[SEP]", "[PAD]", "[PAD]"]
    trace = trace_layer(params, config, out.hidden_states[:, 0], 0, 1, 2, causal=True, real=real, tokens=tokens)
    K, T = config.key_size, PADDED
    assert trace["keys"].shape == trace["values"].shape == (T, K) and trace["keys"].kind == PER_TOKEN
    assert trace["scores"].kind == trace["weights"].kind == PER_KEY and trace["weights"].shape == (T,)
    assert trace["query"].shape == trace["head_output"].shape == (K,)
    assert trace["heads_concatenated"].highlight == (K, 2 * K)
    assert trace["ffn_hidden"].shape == (config.ffn_size,)
    # Formulas and captions come from the config and the text, not from a fixed description.
    assert rf"\sqrt{{{K}}}" in trace["scores"].formula
    assert (
        r"\sigma^2 + \epsilon" in trace["after_attention"].formula and "ε = 1e-12" in trace["after_attention"].caption
    )
    assert "2 “cat”" in trace["query"].caption
    assert "causal" in trace["mask"].caption and "padding" in trace["mask"].caption
    assert (
        "embedding plus its learned position encoding plus its token type, layer-normalised" in trace["input"].caption
    )
    best = int(np.argmax(trace["weights"].value))
    assert f"{best} “{tokens[best]}” gets {trace['weights'].value[best]:.2f}" in trace["weights"].caption
    assert "GELU" in trace["ffn_activation"].title


@pytest.mark.parametrize(
    "args,message",
    [
        ((2, 0, 0), "layer 3 does not exist: the model has 2 layers"),
        ((0, 4, 0), "head 5 does not exist: the model has 4 heads"),
        ((0, 0, REAL), "position 6 is not a token"),
        ((0, 0, -1), "position -1 is not a token"),
    ],
)
def test_out_of_range_choices_are_refused(args, message):
    config = CONFIGS["post-LN, sinusoidal"]
    params = perturbed_params(config, 1)
    out, real = encoder_run(config, params, causal=False)
    with pytest.raises(ValueError, match=message):
        trace_layer(params, config, out.hidden_states[:, 0], *args, real=real)


def test_activations_match_the_jax_functions():
    z = np.linspace(-6, 6, 241)
    exact = np.asarray(gelu(jnp.asarray(z, jnp.float32)))
    np.testing.assert_allclose(ACTIVATIONS["gelu"].function(z), exact, atol=1e-6)
    np.testing.assert_allclose(
        ACTIVATIONS["gelu_tanh"].function(z), np.asarray(jax.nn.gelu(jnp.asarray(z), approximate=True)), atol=1e-6
    )
    np.testing.assert_allclose(ACTIVATIONS["relu"].function(z), np.maximum(z, 0))
    # The config names the activation; configs from before the field existed mean exact GELU.
    assert activation_for(BASE) is ACTIVATIONS[getattr(BASE, "activation", "gelu")]
    assert activation_for(types.SimpleNamespace()) is ACTIVATIONS["gelu"]
    assert activation_for(types.SimpleNamespace(activation="relu")) is ACTIVATIONS["relu"]
    with pytest.raises(ValueError, match="swish"):
        activation_for(types.SimpleNamespace(activation="swish"))


def test_every_activation_the_config_offers_has_a_numpy_version():
    assert set(ACTIVATIONS) == set(model_config.ACTIVATIONS)


@pytest.mark.parametrize("activation", sorted(model_config.ACTIVATIONS))
def test_every_activation_the_config_offers_matches_the_encoder(activation):
    config = dataclasses.replace(BASE, activation=activation)
    params = perturbed_params(config, 3)
    out, real = encoder_run(config, params, causal=False)
    for layer in range(config.num_layers):
        trace = trace_layer(params, config, out.hidden_states[:, 0], layer, 0, 1, real=real)
        np.testing.assert_allclose(trace["layer_output"].value, out.hidden_states[2 * layer + 2, 0, 1], atol=1e-5)


def test_the_first_layer_says_what_a_narrow_embedding_adds_up_to():
    config = CONFIGS["ELECTRA-style, ReLU"]
    params = perturbed_params(config, 4)
    out, real = encoder_run(config, params, causal=False)
    trace = trace_layer(params, config, out.hidden_states[:, 0], 0, 0, 1, real=real)
    caption = trace["input"].caption
    assert "layer-normalised, 8 numbers projected up to 16" in caption and "√" not in caption
    assert trace["input"].shape == (config.d_model,)  # the stream, after the projection
    assert "ReLU" in trace["ffn_activation"].title and "max(0, z)" in trace["ffn_activation"].formula
    # Later layers read the previous layer's output, whatever the embeddings were.
    assert (
        "layer 1's output" in trace_layer(params, config, out.hidden_states[:, 0], 1, 0, 1, real=real)["input"].caption
    )
