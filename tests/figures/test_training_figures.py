"""Training figures that need no training: blow-ups marked on the loss chart, earlier runs overlaid, and
each head's closeness to the ideal pattern over the steps."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.figures import training as figs
from tests.figures.test_figures import values


def test_non_finite_losses_are_marked_not_plotted():
    steps = np.arange(1, 7)
    loss = np.array([2.0, 1.5, 1.2, 40.0, np.nan, np.inf])
    fig = figs.loss_figure(steps, loss, [0, 3], [2.1, 1.3])
    train, marks = fig.data[0], next(t for t in fig.data if t.name == "loss not finite")
    assert list(np.isnan(values(train.y).astype(float))) == [False, False, False, False, True, True]
    assert list(values(marks.x)) == [5, 6] and list(marks.customdata) == ["nan", "inf"]
    assert np.all(values(marks.y) == 40.0)  # at the top of the finite values, so the scale stays readable
    assert "not plotted" in marks.hovertemplate
    assert all(t.name != "loss not finite" for t in figs.loss_figure(steps[:3], loss[:3], [], []).data)


def test_the_baseline_line_and_its_label_sit_at_the_baseline_on_the_log_axis():
    baseline = 7.11
    fig = figs.loss_figure([1, 2, 3], [9.2, 8.0, 6.6], [2], [8.1], baseline=baseline)
    assert fig.layout.yaxis.type == "log"
    # Plotly's convention on a log axis: a shape's y is a data value, an annotation's y is its log10.
    (line,) = fig.layout.shapes
    assert line.yref == "y" and line.y0 == line.y1 == pytest.approx(baseline)
    (label,) = fig.layout.annotations
    assert label.yref == "y" and 10**label.y == pytest.approx(baseline)
    assert "7.11" in label.text
    # No baseline, or one a log axis cannot place: no line and no label.
    for missing in (None, float("nan"), 0.0):
        fig = figs.loss_figure([1], [2.0], [], [], baseline=missing)
        assert not fig.layout.shapes and not fig.layout.annotations


def test_earlier_runs_are_drawn_under_the_current_one():
    earlier = [
        {"label": "seed 0", "steps": (1, 2, 3), "loss": (3.0, 2.0, 1.0)},
        {"label": "pre-LN", "steps": (1, 2), "loss": (2.5, 2.4)},
    ]
    fig = figs.loss_figure([1, 2], [2.0, 1.0], [], [], earlier=earlier)
    names = [t.name for t in fig.data]
    assert names == ["earlier: seed 0", "earlier: pre-LN", "train", "held-out"]
    assert list(values(fig.data[1].y)) == [2.5, 2.4] and "pre-LN" in fig.data[1].hovertemplate
    with pytest.raises(ValueError, match="earlier run"):
        figs.loss_figure([1], [1.0], [], [], earlier=[{"label": "x", "steps": (1, 2), "loss": (1.0,)}])


def test_closeness_timeline_has_a_line_per_head():
    rng = np.random.default_rng(0)
    history = rng.uniform(size=(5, 2, 3)).astype(np.float32)  # [E, L, H]
    fig = figs.closeness_timeline_figure([0, 10, 20, 30, 40], history)
    assert [t.name for t in fig.data] == [f"L{layer} H{head}" for layer in (1, 2) for head in (1, 2, 3)]
    np.testing.assert_allclose(values(fig.data[4].y), history[:, 1, 1])
    assert list(values(fig.data[0].x)) == [0, 10, 20, 30, 40]
    with pytest.raises(ValueError, match="one row per step"):
        figs.closeness_timeline_figure([0, 10], history)


def test_long_curves_are_thinned_keeping_their_shape():
    rng = np.random.default_rng(1)
    count = 10_000
    steps = np.arange(1, count + 1)
    loss = np.exp(-steps / 3000) + rng.uniform(size=count)
    loss[[1234, 5678]] = [50.0, 0.001]  # a spike and a dip inside a stretch
    loss[7000:7003] = np.nan  # a gap
    x, y = figs._thin(steps, loss)
    assert len(x) <= figs.MAX_CURVE_POINTS and len(x) == len(y)
    assert (x[0], x[-1]) == (1, count) and (y[0], y[-1]) == (loss[0], loss[-1])
    assert np.nanmax(y) == 50.0 and np.nanmin(y) == 0.001
    assert np.isnan(y).any() and np.all(np.diff(x) > 0)
    np.testing.assert_array_equal(y[np.isfinite(y)], loss[x[np.isfinite(y)] - 1])  # real points, not averages
    short = np.arange(10.0)
    assert figs._thin(short, short)[0] is short
    # On the chart: the train line is thinned, the markers of non-finite losses are all there.
    fig = figs.loss_figure(steps, loss, [], [])
    assert len(values(fig.data[0].x)) <= figs.MAX_CURVE_POINTS
    assert list(values(next(t for t in fig.data if t.name == "loss not finite").x)) == [7001, 7002, 7003]
