"""Bucketed inference: results equal the unpadded model, and new lengths never compile after warm-up."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from explorer.model.encoder import build_model, init_params
from explorer.model.inference import InferenceEngine, bucket_for, bucket_lengths


def test_buckets():
    assert bucket_lengths(512) == (8, 16, 32, 64, 128, 256, 512)
    assert bucket_lengths(100) == (8, 16, 32, 64, 100)
    assert bucket_lengths(5, smallest=5) == (5,)
    assert bucket_for(1, (8, 16)) == 8 and bucket_for(9, (8, 16)) == 16 and bucket_for(16, (8, 16)) == 16
    with pytest.raises(ValueError, match="truncate"):
        bucket_for(17, (8, 16))


@pytest.fixture(scope="module")
def engine_and_params(tiny_config):
    engine = InferenceEngine(tiny_config)
    params = jax.device_put(init_params(tiny_config, seed=3))
    return engine, params


def test_no_compiles_while_typing(engine_and_params, tiny_config):
    engine, params = engine_and_params
    compiled = engine.warmup(params)
    assert compiled <= len(engine.buckets)
    traces = engine.stats.traces
    rng = np.random.default_rng(0)
    for length in list(range(1, tiny_config.max_len + 1)) + [5, 64, 1]:
        ids = rng.integers(3, tiny_config.vocab_size, size=length)
        result = engine.run(params, ids, causal=bool(length % 2))
        assert result.attention_weights.shape == (tiny_config.num_layers, tiny_config.num_heads, length, length)
    head_mask = engine.default_head_mask()
    head_mask[0, 1] = 0
    engine.run(params, np.arange(3, 13), head_mask=head_mask)
    assert engine.stats.traces == traces  # not one new program for 67 sentences, masks and toggles


@pytest.mark.slow
def test_sliced_results_equal_the_unpadded_model(engine_and_params, tiny_config):
    engine, params = engine_and_params
    model = build_model(tiny_config)
    for length in (1, 5, 8, 13, 40):
        ids = (np.arange(length) * 7 % (tiny_config.vocab_size - 3) + 3).astype(np.int32)
        result = engine.run(params, ids)
        direct = model.apply(params, None, jnp.asarray(ids[None]), jnp.ones((1, length), bool))
        np.testing.assert_allclose(result.logits, direct.logits[0], atol=1e-5)
        np.testing.assert_allclose(result.attention_weights, direct.attention_weights[:, 0], atol=1e-6)
        np.testing.assert_allclose(result.attention_scores, direct.attention_scores[:, 0], atol=1e-5)
        np.testing.assert_allclose(result.layer_norm_outputs, direct.layer_norm_outputs[:, 0], atol=1e-5)
        np.testing.assert_allclose(result.positional_encodings, direct.positional_encodings, atol=1e-6)
        np.testing.assert_allclose(result.attention_weights.sum(-1), 1.0, atol=1e-5)


def test_batch_matches_single(engine_and_params):
    engine, params = engine_and_params
    sentences = [np.arange(3, 10), np.arange(5, 25)]
    batch = engine.run_batch(params, sentences)
    for sentence, result in zip(sentences, batch, strict=True):
        single = engine.run(params, sentence)
        np.testing.assert_allclose(result.logits, single.logits, atol=1e-5)


def test_bad_inputs_are_explained(engine_and_params, tiny_config):
    engine, params = engine_and_params
    with pytest.raises(ValueError, match="no tokens"):
        engine.run(params, np.zeros(0, np.int32))
    with pytest.raises(ValueError, match="head_mask"):
        engine.run(params, np.arange(3, 6), head_mask=np.ones((1, 1)))
    with pytest.raises(ValueError, match="truncate"):
        engine.run(params, np.full(tiny_config.max_len + 1, 3))


def test_lowering_reports_costs(engine_and_params):
    engine, params = engine_and_params
    jaxpr, cost = engine.lower_text(params, 10)
    assert "dot_general" in jaxpr
    assert cost.get("flops", 0) > 0
