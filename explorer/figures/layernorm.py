"""Layer-norm and residual-stream figures: per-token statistics before/after each layer norm, learned
scale and offset, activation histograms, residual-stream norm per layer."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from explorer.figures import (
    PALETTE,
    WEIGHT_SCALE,
    add_to_pair,
    check_labels,
    finish,
    heatmap_height,
    label_pair_axis,
    stacked_pair,
)
from explorer.interpret.analysis import NormStats, unique_labels


def norm_stats_figure(stats: NormStats, index: int, labels: list[str], name: str) -> go.Figure:
    """Mean (top) and standard deviation (bottom) over the model width of every token, before and after
    layer norm ``index``: after it every token has mean ≈ offset average and std ≈ scale magnitude."""
    count = stats.mean_in.shape[0]
    if not 0 <= index < count:
        raise ValueError(f"There are {count} layer norms; index {index} does not exist.")
    check_labels(stats.mean_in.shape[1], labels, "The layer-norm statistics")
    x = unique_labels(labels)
    fig = stacked_pair(("mean over the model width", "standard deviation over the model width"))
    series = (
        (stats.mean_in, stats.std_in, "before", PALETTE[0]),
        (stats.mean_out, stats.std_out, "after", PALETTE[1]),
    )
    for mean, std, when, colour in series:
        add_to_pair(
            fig,
            go.Scatter,
            {"y": mean[index], "hovertemplate": f"%{{x}}<br>mean {when}: %{{y:.3f}}<extra></extra>"},
            {"y": std[index], "hovertemplate": f"%{{x}}<br>std {when}: %{{y:.3f}}<extra></extra>"},
            x=x,
            name=f"{when} LN",
            legendgroup=when,
            mode="lines+markers" if len(labels) <= 64 else "lines",
            line={"color": colour},
        )
    label_pair_axis(fig, len(labels))
    fig.update_layout(legend={"orientation": "h", "y": 1.08, "yanchor": "bottom"})
    return finish(fig, f"{name}: per-token statistics", 480)


def norm_overview_figure(stats: NormStats, labels: list[str], names: list[str]) -> go.Figure:
    """Standard deviation of every token before every layer norm ``[N, T]``: where the scale drifts."""
    check_labels(stats.std_in.shape[1], labels, "The layer-norm statistics")
    if len(names) != stats.std_in.shape[0]:
        raise ValueError(f"{stats.std_in.shape[0]} layer norms but {len(names)} names.")
    fig = go.Figure(
        go.Heatmap(
            z=stats.std_in,
            x=unique_labels(labels),
            y=names,
            colorscale=WEIGHT_SCALE,
            colorbar={"title": {"text": "std"}, "thickness": 12},
            hovertemplate="%{y}<br>%{x}: std before LN %{z:.3f}<extra></extra>",
        )
    )
    fig.update_xaxes(type="category", tickangle=-60, showticklabels=len(labels) <= 96)
    fig.update_yaxes(type="category", autorange="reversed")
    return finish(fig, "Std of each token before every layer norm", 140 + 30 * len(names))


def norm_parameters_figure(scale: np.ndarray, offset: np.ndarray, name: str) -> go.Figure:
    """The learned scale γ and offset β of one layer norm, one value per model dimension."""
    scale, offset = np.asarray(scale), np.asarray(offset)
    if scale.shape != offset.shape or scale.ndim != 1:
        raise ValueError(f"Scale {scale.shape} and offset {offset.shape} must both be [D].")
    dims = np.arange(scale.shape[0])
    fig = go.Figure()
    for index, (values, what, symbol) in enumerate(((scale, "scale", "γ"), (offset, "offset", "β"))):
        fig.add_trace(
            go.Bar(
                x=dims,
                y=values,
                name=f"{what} {symbol}",
                marker_color=PALETTE[index],
                hovertemplate=f"dim %{{x}}: {symbol} = %{{y:.3f}}<extra></extra>",
            )
        )
    fig.add_hline(y=1.0, line_dash="dot", line_color="#888", annotation_text="γ at init = 1")
    fig.update_xaxes(title="model dimension")
    fig.update_layout(barmode="group", legend={"orientation": "h", "y": 1.02, "yanchor": "bottom"})
    return finish(fig, f"{name}: learned scale and offset", 320)


def activation_histogram(before: np.ndarray, after: np.ndarray, name: str, bins: int = 60) -> go.Figure:
    """Histogram of every activation (all tokens x all dims) going into and coming out of a layer norm.

    Binned here in numpy so the browser gets ``bins`` bars instead of T x D raw values.
    """
    before, after = np.asarray(before, np.float64).ravel(), np.asarray(after, np.float64).ravel()
    if before.size == 0 or after.size == 0:
        raise ValueError("A histogram needs at least one activation.")
    low = float(min(before.min(), after.min()))
    high = float(max(before.max(), after.max()))
    edges = np.linspace(low, high if high > low else low + 1.0, bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    fig = go.Figure()
    for values, when, colour in ((before, "before", PALETTE[0]), (after, "after", PALETTE[1])):
        counts, _ = np.histogram(values, edges)
        fig.add_trace(
            go.Bar(
                x=centres,
                y=counts,
                name=f"{when} LN",
                marker_color=colour,
                opacity=0.6,
                hovertemplate=f"{when}: %{{y}} values near %{{x:.2f}}<extra></extra>",
            )
        )
    fig.update_layout(barmode="overlay", bargap=0, legend={"orientation": "h", "y": 1.02, "yanchor": "bottom"})
    fig.update_xaxes(title="activation value")
    fig.update_yaxes(title="count")
    return finish(fig, f"{name}: activation histogram", 320)


def residual_norm_figure(norms: np.ndarray, stage_names: list[str], labels: list[str]) -> go.Figure:
    """L2 norm of each token's residual-stream vector ``[S, T]`` at every snapshot (rows: tokens)."""
    norms = np.asarray(norms, np.float32)
    if norms.ndim != 2 or norms.shape[0] != len(stage_names):
        raise ValueError(f"Norms of shape {norms.shape} need one row per stage ({len(stage_names)}).")
    check_labels(norms.shape[1], labels, "The residual norms")
    rows = unique_labels(labels)
    fig = make_subplots(
        rows=1,
        cols=2,
        column_widths=[0.62, 0.38],
        horizontal_spacing=0.12,
        subplot_titles=("per token", "mean over tokens"),
    )
    fig.add_trace(
        go.Heatmap(
            z=norms.T,
            x=stage_names,
            y=rows,
            colorscale=WEIGHT_SCALE,
            colorbar={"title": {"text": "‖h‖"}, "thickness": 12, "x": 0.56},
            hovertemplate="%{y} · %{x}: ‖h‖ = %{z:.2f}<extra></extra>",
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=stage_names,
            y=norms.mean(axis=1),
            mode="lines+markers",
            name="mean ‖h‖",
            line={"color": PALETTE[3]},
            showlegend=False,
            hovertemplate="%{x}: mean ‖h‖ = %{y:.2f}<extra></extra>",
        ),
        row=1,
        col=2,
    )
    fig.update_xaxes(type="category", tickangle=-40)
    fig.update_yaxes(type="category", autorange="reversed", showticklabels=len(rows) <= 96, row=1, col=1)
    fig.update_yaxes(rangemode="tozero", row=1, col=2)
    return finish(fig, "Residual-stream norm through the layers", heatmap_height(len(rows), minimum=340))
