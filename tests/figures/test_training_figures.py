"""Training figures that need no training: blow-ups marked on the loss chart, earlier runs overlaid, the
probe's attention beside the ideal pattern, and each head's closeness to the ideal pattern over the steps."""

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


def test_earlier_runs_are_drawn_under_the_current_one_each_named_and_dashed_apart():
    earlier = [
        {"label": "run 1 · same settings", "steps": (1, 2, 3), "loss": (3.0, 2.0, 1.0)},
        {"label": "run 2 · pre-LN", "steps": (1, 2), "loss": (2.5, 2.4)},
        {"label": "run 3 · same settings", "steps": (1, 2), "loss": (2.6, 2.2)},
    ]
    fig = figs.loss_figure([1, 2], [2.0, 1.0], [1], [1.5], earlier=earlier, run_label="run 4")
    names = [t.name for t in fig.data]
    assert names == [run["label"] for run in earlier] + ["train · run 4", "held-out · run 4"]
    assert list(values(fig.data[1].y)) == [2.5, 2.4] and "pre-LN" in fig.data[1].hovertemplate
    # Runs with the same settings still read apart: their own dash and colour, none solid like this run's.
    styles = [(t.line.dash, t.line.color) for t in fig.data[:3]]
    assert len(set(styles)) == 3 and all(dash not in (None, "solid") for dash, _ in styles)
    assert fig.data[3].line.dash in (None, "solid")
    assert [t.name for t in figs.loss_figure([1], [1.0], [], []).data] == ["train", "held-out"]
    with pytest.raises(ValueError, match="earlier run"):
        figs.loss_figure([1], [1.0], [], [], earlier=[{"label": "x", "steps": (1, 2), "loss": (1.0,)}])


def _panels(fig) -> dict[str, dict]:
    """Each heatmap's name (from its hover) and its axes' pixel geometry, from the figure alone."""
    layout = fig.layout
    plot_width = layout.width or 0
    width = (plot_width or WIDTH) - layout.margin.l - layout.margin.r
    height = layout.height - layout.margin.t - layout.margin.b
    panels = {}
    for trace in fig.data:
        x = layout[f"xaxis{trace.xaxis[1:]}"]
        y = layout[f"yaxis{trace.yaxis[1:]}"]
        panels[trace.hovertemplate.split("<br>")[0]] = {
            "trace": trace,
            "x": x,
            "y": y,
            "width": (x.domain[1] - x.domain[0]) * width,
            "height": (y.domain[1] - y.domain[0]) * height,
        }
    return panels


WIDTH = 540  # the width the probe figures below are built for (they stretch to their column)


@pytest.mark.parametrize("layers,heads,length", [(2, 4, 16), (1, 1, 8), (4, 8, 24), (2, 8, 14)])
def test_the_probe_attention_sits_beside_the_ideal_at_the_same_size_and_scale(layers, heads, length):
    rng = np.random.default_rng(1)
    weights = rng.dirichlet(np.ones(length), size=(layers, heads, length)).astype(np.float32)  # [L, H, T, T]
    ideal = np.eye(length, dtype=np.float32)[::-1]  # reverse: the anti-diagonal
    labels = [f"s{i % 7}" for i in range(length)]
    fig = figs.probe_attention_figure(weights, labels, "Live", ideal=ideal, width=WIDTH)
    panels = _panels(fig)
    assert len(panels) == layers * heads + 1 and "ideal" in panels
    np.testing.assert_array_equal(values(panels["ideal"]["trace"].z), ideal)
    np.testing.assert_allclose(values(panels[f"L{layers} H{heads}"]["trace"].z), weights[-1, -1], rtol=1e-6)
    # One colour scale for all, 0 to 1: the ideal's yellow is a learned head's yellow.
    assert {p["trace"].coloraxis for p in panels.values()} == {"coloraxis"}
    assert (fig.layout.coloraxis.cmin, fig.layout.coloraxis.cmax) == (0.0, 1.0)
    # The same size, square, and the ideal in the first row, at its end.
    sizes = [(round(p["width"], 1), round(p["height"], 1)) for p in panels.values()]
    assert len(set(sizes)) == 1 and sizes[0][0] == pytest.approx(sizes[0][1], abs=1.0), sizes
    assert panels["ideal"]["y"].domain == panels["L1 H1"]["y"].domain
    assert panels["ideal"]["x"].domain[0] > panels[f"L1 H{heads}"]["x"].domain[1]


@pytest.mark.parametrize("layers,heads,length", [(2, 4, 16), (2, 4, 14), (4, 8, 24), (1, 2, 24), (3, 4, 9)])
def test_the_probe_token_labels_never_overlap(layers, heads, length):
    weights = np.full((layers, heads, length, length), 1 / length, np.float32)
    labels = [f"tok{i}" for i in range(length)]
    for ideal in (None, np.eye(length)):
        fig = figs.probe_attention_figure(weights, labels, "Live", ideal=ideal, width=WIDTH)
        shown = 0
        for panel in _panels(fig).values():
            for axis, pixels in ((panel["x"], panel["width"]), (panel["y"], panel["height"])):
                if not axis.showticklabels:
                    continue
                shown += 1
                cell = pixels / length  # px per token
                positions = [f"{i} {label}" for i, label in enumerate(labels)]
                ticks = [positions.index(v) for v in axis.tickvals]
                assert ticks[0] == 0 and list(axis.ticktext) == list(axis.tickvals)
                # Rotated x labels and stacked y labels each need a line of their font between them.
                gaps = np.diff(ticks) * cell
                assert gaps.min() >= axis.tickfont.size + 1, (gaps.min(), axis.tickfont.size)
                assert ticks[-1] + np.diff(ticks).max() >= length - 1  # they span the axis
        assert shown == heads + layers + (ideal is not None and layers == 1)


def test_the_probe_without_an_ideal_and_with_a_wrong_one():
    weights = np.full((2, 2, 5, 5), 0.2, np.float32)
    fig = figs.probe_attention_figure(weights, list("abcde"), "Live", badges=[["= prev", ""], ["", "· broad"]])
    assert "ideal" not in _panels(fig) and len(fig.data) == 4
    assert "L1 H1 = prev" in [a.text for a in fig.layout.annotations]
    with pytest.raises(ValueError, match="ideal"):
        figs.probe_attention_figure(weights, list("abcde"), "Live", ideal=np.eye(4))
    with pytest.raises(ValueError, match="labels"):
        figs.probe_attention_figure(weights, list("abcd"), "Live")


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
