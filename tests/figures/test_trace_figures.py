"""Figures of the step-through (``explorer.figures.trace``): what each picture carries, checked on the figure
itself (its data, hover, labels and outlines), without a browser."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from explorer.figures.trace import (
    MASKED,
    OUTLINE,
    heat_strips,
    score_bars,
    scores_and_weights,
    spaced_largest,
    step_figure,
    token_matrix,
)
from explorer.interpret.trace import PER_KEY, PER_TOKEN, trace_layer
from explorer.model.config import ModelConfig
from explorer.model.encoder import init_params

TOKENS = ["The", "␣cat", "␣sat", "␣on", "␣the", "␣mat", "."]


def values(data) -> np.ndarray:
    """A trace's numbers: plotly keeps numpy arrays as base64 typed arrays once a figure went through a dict."""
    if isinstance(data, dict) and "bdata" in data:
        flat = np.frombuffer(base64.b64decode(data["bdata"]), dtype=data["dtype"])
        return flat.reshape([int(n) for n in str(data.get("shape", len(flat))).split(",")])
    return np.asarray(data, np.float64)


def test_spaced_largest_names_the_biggest_entries_without_crowding_them():
    values = np.zeros(100)
    values[[10, 11, 12, 50, 90]] = [5.0, -6.0, 4.0, 3.0, -2.0]
    assert spaced_largest(values, 3) == [11, 50, 90]  # 10 and 12 sit next to 11: their labels would overlap
    assert spaced_largest(values, 3, gap=0.0) == [10, 11, 12]
    assert spaced_largest(np.array([1.0, -2.0]), 5, gap=0.0) == [0, 1]


def test_heat_strips_show_every_row_on_one_scale_and_label_the_result():
    x, a = np.linspace(-1, 1, 32), np.sin(np.arange(32.0)) * 3
    fig = heat_strips([("x", x), ("a", a), ("x + a", x + a)], "x + a", highlight=(8, 16))
    (trace,) = fig.data
    assert list(trace.y) == ["x", "a", "x + a"] and values(trace.z).shape == (3, 32)
    peak = np.abs(np.stack([x, a, x + a])).max()
    assert (trace.zmin, trace.zmax) == (-peak, peak)  # one symmetric scale: 0 is grey in every row
    assert "entry %{x}" in trace.hovertemplate and "%{z" in trace.hovertemplate
    labelled = [int(n.text.split(":")[0]) for n in fig.layout.annotations]
    assert labelled == spaced_largest(x + a, 3) and all(n.y == "x + a" for n in fig.layout.annotations)
    for note in fig.layout.annotations:
        assert note.text == f"{int(note.x)}: {(x + a)[int(note.x)]:+.2f}"
    (outline,) = fig.layout.shapes
    assert (outline.x0, outline.x1, outline.line.color) == (7.5, 15.5, OUTLINE)
    assert f"from {min(x.min(), a.min(), (x + a).min()):+.2f}" in fig.layout.title.text
    with pytest.raises(ValueError, match="one length"):
        heat_strips([("x", x), ("y", np.zeros(5))], "mismatch")


def test_token_matrix_names_every_row_and_outlines_the_query():
    matrix = np.arange(7 * 4, dtype=float).reshape(7, 4) - 10
    fig = token_matrix(matrix, TOKENS, "K", query=2)
    assert list(fig.data[0].y) == [f"{i} {t}" for i, t in enumerate(TOKENS)]
    (outline,) = fig.layout.shapes
    assert (outline.y0, outline.y1) == (1.5, 2.5)
    window = token_matrix(matrix[3:], TOKENS[3:], "K", query=2, start=3)  # the query outside the window
    assert window.data[0].y[0] == "3 ␣on" and not window.layout.shapes
    with pytest.raises(ValueError, match="one label per row"):
        token_matrix(matrix, TOKENS[:3], "K")


def test_scores_and_weights_are_bars_per_key_with_masked_keys_marked():
    scores = np.array([2.0, 0.5, 3.0, -1.0, 0.0, 1.0, 2.5])
    allowed = np.array([1, 1, 1, 1, 0, 0, 0], bool)
    bars = score_bars(scores, allowed, TOKENS, query=3, title="s").data[0]
    assert list(bars.x) == [f"{i} {t}" for i, t in enumerate(TOKENS)]
    assert list(bars.text) == [None] * 4 + ["−∞"] * 3
    assert bars.marker.color[3] == OUTLINE and list(bars.marker.color[4:]) == [MASKED] * 3
    weights = np.where(allowed, np.exp(scores), 0) / np.exp(scores[allowed]).sum()
    pair = scores_and_weights(scores, weights, allowed, TOKENS, query=3)
    top, bottom = pair.data
    np.testing.assert_allclose(values(bottom.y), weights)
    assert np.isnan(values(top.y)[4:]).all()  # masked keys have no score left to draw
    assert tuple(pair.layout.yaxis2.range) == (0, 1)


def test_every_step_has_its_picture():
    config = ModelConfig(vocab_size=40, d_model=16, num_heads=4, num_layers=2, ffn_size=32, max_len=64)
    params = init_params(config, 0)
    hidden = np.random.default_rng(0).standard_normal((5, 7, 16))
    trace = trace_layer(params, config, hidden, 1, 2, 4, causal=True, tokens=TOKENS)
    for step in trace.steps:
        fig = step_figure(trace, step)
        if step.kind == PER_TOKEN:
            assert values(fig.data[0].z).shape == (7, config.key_size)
        elif step.kind == PER_KEY:
            assert all(len(t.x) == 7 for t in fig.data) and fig.data[0].type == "bar"
        else:
            # The step's own value is the last strip, under the steps it is computed from.
            rows = values(fig.data[0].z)
            np.testing.assert_allclose(rows[-1], step.value)
            assert rows.shape[0] == 1 + len(step.shown_with)
    np.testing.assert_allclose(values(step_figure(trace, trace["weights"]).data[1].y), trace["weights"].value)
    assert step_figure(trace, trace["scores"]).data[0].text is None  # the mask comes next
    assert [t for t in step_figure(trace, trace["mask"]).data[0].text if t] == ["−∞"] * 2
    windowed = step_figure(trace, trace["keys"], slice(2, 6))
    assert list(windowed.data[0].y) == ["2 ␣sat", "3 ␣on", "4 ␣the", "5 ␣mat"] and windowed.layout.shapes
