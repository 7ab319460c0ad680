"""The explorer's pure maths: projections, attention summaries, statistics, shapes."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.interpret import analysis, shapes
from explorer.model.config import ModelConfig
from explorer.model.positional import sinusoidal_encoding


def random_attention(layers=2, heads=3, length=7, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(layers, heads, length, length))
    return analysis.softmax(logits)


def test_unique_labels_keep_repeated_tokens_apart():
    assert analysis.unique_labels(["the", "cat", "the"]) == ["0 the", "1 cat", "2 the"]
    assert analysis.unique_labels(["a", "b"], start=10) == ["10 a", "11 b"]


@pytest.mark.parametrize(
    "length,start,size,expected", [(10, 0, 4, (0, 4)), (10, 8, 4, (6, 10)), (3, 2, 8, (0, 3)), (10, -5, 4, (0, 4))]
)
def test_token_window_is_clipped(length, start, size, expected):
    window = analysis.token_window(length, start, size)
    assert (window.start, window.stop) == expected


def test_block_mean_pools_and_keeps_mean():
    matrix = np.arange(100.0).reshape(10, 10)
    pooled, ranges = analysis.block_mean(matrix, 4)
    assert pooled.shape == (4, 4)
    assert ranges[0][0] == 0 and ranges[-1][1] == 9
    assert sum(b - a + 1 for a, b in ranges) == 10
    small, _ = analysis.block_mean(matrix[:3, :3], 8)
    np.testing.assert_allclose(small, matrix[:3, :3])
    with pytest.raises(ValueError, match="square"):
        analysis.block_mean(np.zeros((2, 3)), 2)


@pytest.mark.parametrize("count,dims,components", [(50, 8, 2), (50, 8, 3), (2, 8, 3), (1, 4, 2), (10, 2, 3)])
def test_pca_matches_covariance_eigenvectors(count, dims, components):
    rng = np.random.default_rng(1)
    points = rng.normal(size=(count, dims)) * np.linspace(3, 0.5, dims)
    projection = analysis.pca(points, components)
    assert projection.coords.shape == (count, components)
    assert np.all(projection.explained >= 0) and projection.explained.sum() <= 1 + 1e-9
    k = min(components, count, dims)
    if count > 2:
        centred = points - points.mean(0)
        eigenvalues, eigenvectors = np.linalg.eigh(centred.T @ centred)
        top = eigenvectors[:, ::-1][:, :k]
        # Same axes up to sign.
        np.testing.assert_allclose(np.abs(projection.axes[:k] @ top), np.eye(k), atol=1e-6)
    # Projecting the same points again reproduces the coordinates.
    np.testing.assert_allclose(analysis.project_onto(points, projection).coords, projection.coords, atol=1e-9)


def test_pca_of_many_points_matches_their_svd():
    """A 30k-row vocabulary takes the [D, D] scatter-matrix route: the same axes, coordinates and shares as the
    SVD of the points themselves (an independent computation)."""
    rng = np.random.default_rng(2)
    points = rng.normal(size=(3000, 12)) * np.linspace(4, 0.5, 12) + 7.0
    projection = analysis.pca(points, 3)
    centred = points - points.mean(0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    signs = np.sign(np.sum(projection.axes * vt[:3], axis=1))
    np.testing.assert_allclose(projection.axes, vt[:3] * signs[:, None], atol=1e-9)
    np.testing.assert_allclose(projection.coords, centred @ (vt[:3] * signs[:, None]).T, atol=1e-8)
    np.testing.assert_allclose(projection.explained, singular[:3] ** 2 / (singular**2).sum(), atol=1e-12)


def test_position_similarity_depends_on_offset_only():
    pe = sinusoidal_encoding(40, 16)
    sim = analysis.position_similarity(pe)
    assert sim.shape == (40, 40)
    np.testing.assert_allclose(sim, sim.T, atol=1e-9)
    # Sinusoids: PE_i . PE_j is a function of i - j.
    np.testing.assert_allclose(np.diag(sim, 3)[:-1], np.diag(sim, 3)[1:], atol=1e-4)
    # Nearby positions are more alike than distant ones.
    assert sim[10, 11] > sim[10, 30]
    cosine = analysis.position_similarity(pe, cosine=True)
    np.testing.assert_allclose(np.diag(cosine), 1.0, atol=1e-6)


def test_attention_summaries():
    weights = random_attention()
    mean = analysis.mean_over_heads(weights)
    assert mean.shape == (2, 7, 7)
    np.testing.assert_allclose(mean.sum(-1), 1.0, atol=1e-9)
    entropy = analysis.attention_entropy(weights)
    assert entropy.shape == (2, 3, 7)
    assert np.all(entropy >= 0) and np.all(entropy <= np.log2(7) + 1e-9)
    uniform = np.full((4, 4), 0.25)
    np.testing.assert_allclose(analysis.attention_entropy(uniform), 2.0)
    one_hot = np.eye(4)
    np.testing.assert_allclose(analysis.attention_entropy(one_hot), 0.0)
    assert analysis.head_entropy(weights).shape == (2, 3)
    thresholded = analysis.apply_threshold(np.array([[0.1, 0.9]]), 0.5)
    assert np.isnan(thresholded[0, 0]) and thresholded[0, 1] == 0.9


def test_attention_shape_errors_are_explicit():
    with pytest.raises(ValueError, match="square"):
        analysis.check_attention(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="token labels"):
        analysis.check_attention(np.zeros((3, 3)), ["a", "b"])
    with pytest.raises(ValueError, match="4 axes"):
        analysis.mean_over_heads(np.zeros((3, 3)))


def test_head_view_lines_keep_strongest_first_and_count_dropped():
    weights = np.array([[0.7, 0.3, 0.0], [0.5, 0.49, 0.01], [0.2, 0.2, 0.6]])
    lines = analysis.head_view_lines(weights, "L1 H1", threshold=0.1)
    assert list(lines.weights) == sorted(lines.weights, reverse=True)
    assert 0.01 not in lines.weights and 0.0 not in lines.weights
    focused = analysis.head_view_lines(weights, "L1 H1", threshold=0.1, query=2)
    assert set(focused.queries) == {2}
    capped = analysis.head_view_lines(weights, "L1 H1", threshold=0.1, max_lines=2)
    assert len(capped.weights) == 2 and capped.dropped == len(lines.weights) - 2


def test_head_labels_round_trip_and_mask():
    assert analysis.head_label(0, 1) == "L1 H2"
    assert analysis.parse_head_label("L3 H4") == (2, 3)
    with pytest.raises(ValueError):
        analysis.parse_head_label("layer 1")
    mask = analysis.head_mask_from_labels(["L1 H2", "L2 H1"], 2, 3)
    assert mask.shape == (2, 3) and mask.sum() == 4 and mask[0, 1] == 0 and mask[1, 0] == 0
    with pytest.raises(ValueError, match="does not exist"):
        analysis.head_mask_from_labels(["L3 H1"], 2, 3)


def test_predictions_and_ablation_effect():
    logits = np.array([1.0, 3.0, 2.0, -1.0])
    ids, probs = analysis.top_predictions(logits, 2)
    assert list(ids) == [1, 2] and probs[0] > probs[1]
    np.testing.assert_allclose(analysis.softmax(logits).sum(), 1.0)
    rng = np.random.default_rng(0)
    hidden, logits2 = rng.normal(size=(5, 8)), rng.normal(size=(5, 11))
    same = analysis.ablation_effect(hidden, hidden, logits2, logits2)
    np.testing.assert_allclose(same.hidden_change, 0.0)
    np.testing.assert_allclose(same.prediction_kl, 0.0, atol=1e-12)
    assert not same.top_changed.any()
    changed = analysis.ablation_effect(hidden, hidden * 2, logits2, -logits2)
    np.testing.assert_allclose(changed.hidden_change, 1.0)
    assert np.all(changed.prediction_kl > 0)


def test_layer_norm_stats_and_residual_norms():
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, size=(2, 5, 64))
    y = (x - x.mean(-1, keepdims=True)) / x.std(-1, keepdims=True)
    stats = analysis.layer_norm_stats(x, y)
    np.testing.assert_allclose(stats.mean_out, 0.0, atol=1e-9)
    np.testing.assert_allclose(stats.std_out, 1.0, atol=1e-9)
    assert stats.mean_in.shape == (2, 5)
    norms = analysis.residual_norms(x)
    np.testing.assert_allclose(norms, np.linalg.norm(x, axis=-1))
    with pytest.raises(ValueError):
        analysis.layer_norm_stats(x, y[:1])


@pytest.mark.parametrize("layer_norm", ["post", "pre"])
def test_shape_walk_matches_the_model(layer_norm):
    import jax.numpy as jnp

    from explorer.model.encoder import build_model, init_params

    config = ModelConfig(
        vocab_size=40, d_model=16, num_heads=4, num_layers=2, ffn_size=32, max_len=64, layer_norm=layer_norm
    )
    steps = shapes.shape_walk(config, 9)
    assert steps[0].shape == (9,)
    assert steps[-1].shape == (9, 40) and steps[-1].symbol == "[T, V]"
    assert sum("softmax" in s.operation for s in steps) == config.num_layers
    assert sum("layer norm" in s.operation for s in steps) == 2 * config.num_layers + (layer_norm == "pre")
    out = build_model(config).apply(init_params(config), None, jnp.zeros((1, 9), jnp.int32), jnp.ones((1, 9), bool))
    weights_step = next(s for s in steps if "softmax" in s.operation)
    assert out.attention_weights.shape[2:] == weights_step.shape
    assert out.logits.shape[1:] == steps[-1].shape


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"positional": "none"},
        {"scale_embeddings": False, "token_types": 2, "embedding_norm": True, "output_head": False},
        # ELECTRA-like: 8-wide embeddings projected up to 16, a masked-LM head's transform, ReLU.
        {
            "positional": "learned",
            "scale_embeddings": False,
            "token_types": 2,
            "embedding_norm": True,
            "embedding_size": 8,
            "head_transform": True,
            "activation": "relu",
        },  # fmt: skip
    ],
)
def test_shape_walk_names_the_input_steps_the_config_runs(fields):
    """The steps before layer 1 are the ones the encoder takes for this config (MiniLM scales nothing, adds a
    token type and normalises the sum; ELECTRA's narrow embeddings are projected up), every layer norm of the
    model is one step, and the feed-forward names its activation."""
    from explorer.model.encoder import layer_norm_names

    config = ModelConfig(vocab_size=40, d_model=16, num_heads=4, num_layers=2, ffn_size=32, max_len=64, **fields)
    steps = shapes.shape_walk(config, 5)
    inputs = [s.operation for s in steps if s.stage == "input"]
    assert any("sqrt(D" in s for s in inputs) == config.scale_embeddings
    assert any("positional" in s for s in inputs) == (config.positional != "none")
    assert any("token-type" in s for s in inputs) == bool(config.token_types)
    # Every layer norm is a step; the layer-norm views stack those as wide as the stream (not a narrow
    # embedding's, nor the head transform's).
    narrow = config.embedding_width != config.d_model
    apart = config.head_transform + (config.embedding_norm and narrow)
    assert sum("layer norm" in s.operation for s in steps) == len(layer_norm_names(config)) + apart
    assert inputs[-1] == "the residual stream enters layer 1"
    assert any("linear E -> D" in s for s in inputs) == narrow
    assert all(s.symbol.endswith("E]") == narrow for s in steps if s.stage == "input" and "lookup" in s.operation)
    expand = [s.operation for s in steps if "expand" in s.operation]
    assert len(expand) == config.num_layers
    assert all(op.endswith("ReLU" if config.activation == "relu" else "GELU") for op in expand)
    assert any("head transform" in s.operation for s in steps) == config.head_transform


def test_parameter_groups():
    from explorer.model.encoder import count_parameters, init_params

    for tie in (True, False):
        config = ModelConfig(
            vocab_size=40, d_model=16, num_heads=4, num_layers=2, ffn_size=32, max_len=64, positional="learned",
            tie_embeddings=tie,
        )  # fmt: skip
        counts = count_parameters(init_params(config))
        rows = shapes.parameter_groups(counts)
        assert sum(c for _, _, c in rows) == sum(counts.values())
        groups = {g for g, _, _ in rows}
        assert {"embedding", "layer 1", "layer 2", "output head"} <= groups and "other" not in groups
        assert ("embedding", "positional_embedding", 64 * 16) in rows  # a learned table is an embedding
