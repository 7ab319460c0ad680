"""Embedding figures: [T, D] heatmaps, positional-encoding curves, position similarity, PCA scatter."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from explorer.figures import PALETTE, SIGNED_SCALE, WEIGHT_SCALE, check_labels, finish, heatmap_height
from explorer.interpret.analysis import Projection, unique_labels

LABELLED_POINTS = 96  # a projection writes the token next to each point up to a window's worth of tokens


def vector_heatmap(
    matrix: np.ndarray, labels: list[str], title: str, value_name: str = "value", start: int = 0
) -> go.Figure:
    """A ``[T, D]`` matrix (one row per token, one column per model dimension), centred on zero.

    Hover: ``token · dim d: value``. ``start`` is the position of the first row (when paging).
    """
    matrix = np.asarray(matrix, np.float32)
    if matrix.ndim != 2:
        raise ValueError(f"Expected a [T, D] matrix, got shape {matrix.shape}.")
    check_labels(matrix.shape[0], labels, title)
    rows = unique_labels(labels, start)
    bound = float(np.nanmax(np.abs(matrix))) if matrix.size else 1.0
    fig = go.Figure(
        go.Heatmap(
            z=matrix,
            x=list(range(matrix.shape[1])),
            y=rows,
            colorscale=SIGNED_SCALE,
            zmin=-bound,
            zmax=bound,
            colorbar={"title": {"text": value_name}, "thickness": 12},
            hovertemplate="%{y} · dim %{x}: %{z:.3f}<extra></extra>",
        )
    )
    fig.update_xaxes(title="model dimension")
    fig.update_yaxes(type="category", autorange="reversed", title=None)
    return finish(fig, title, heatmap_height(len(rows)))


def positional_curves(
    encodings: np.ndarray, dims: list[int], labels: list[str] | None = None, wavelengths: np.ndarray | None = None
) -> go.Figure:
    """``PE[:, d]`` against position for each chosen dimension ``d``.

    ``wavelengths`` (sinusoidal encodings only) name each curve's sine or cosine and its period; a learned
    table's dimensions have neither. Hover names the token at each position when ``labels`` are given.
    """
    encodings = np.asarray(encodings, np.float32)
    if encodings.ndim != 2:
        raise ValueError(f"Expected [T, D] positional encodings, got shape {encodings.shape}.")
    length, width = encodings.shape
    if labels is not None:
        check_labels(length, labels, "The positional encoding")
    bad = [d for d in dims if not 0 <= d < width]
    if bad:
        raise ValueError(f"Dimensions {bad} do not exist; choose between 0 and {width - 1}.")
    positions = np.arange(length)
    hover = labels if labels is not None else [str(p) for p in positions]
    fig = go.Figure()
    for i, dim in enumerate(dims):
        name = f"dim {dim}"
        if wavelengths is not None:  # only sinusoids are sines and cosines with a period
            name += f" ({'sin' if dim % 2 == 0 else 'cos'}), period {wavelengths[dim // 2]:.0f}"
        fig.add_trace(
            go.Scatter(
                x=positions,
                y=encodings[:, dim],
                mode="lines+markers" if length <= 64 else "lines",
                name=name,
                line={"color": PALETTE[i % len(PALETTE)]},
                customdata=hover,
                hovertemplate=f"{name}<br>position %{{x}} (%{{customdata}}): %{{y:.3f}}<extra></extra>",
            )
        )
    fig.update_xaxes(title="position")
    fig.update_yaxes(title="encoding value", range=[-1.1, 1.1])
    fig.update_layout(legend={"orientation": "h", "y": -0.25})
    return finish(fig, "Positional encoding: one curve per dimension", 340)


def similarity_heatmap(
    similarity: np.ndarray, labels: list[str], title: str = "Position similarity PE·PEᵀ", start: int = 0
) -> go.Figure:
    """A ``[T, T]`` position-similarity matrix; hover ``position i → position j: value``."""
    similarity = np.asarray(similarity, np.float32)
    if similarity.ndim != 2 or similarity.shape[0] != similarity.shape[1]:
        raise ValueError(f"Expected a square [T, T] similarity, got shape {similarity.shape}.")
    check_labels(similarity.shape[0], labels, "The similarity matrix")
    rows = unique_labels(labels, start)
    fig = go.Figure(
        go.Heatmap(
            z=similarity,
            x=rows,
            y=rows,
            colorscale=WEIGHT_SCALE,
            colorbar={"title": {"text": "PE·PE"}, "thickness": 12},
            hovertemplate="%{y} ↔ %{x}: %{z:.2f}<extra></extra>",
        )
    )
    fig.update_xaxes(type="category", tickangle=-60, title="position")
    fig.update_yaxes(type="category", autorange="reversed", title="position")
    return finish(fig, title, heatmap_height(len(rows)))


def projection_figure(
    projection: Projection,
    labels: list[str],
    title: str,
    highlight: Projection | None = None,
    highlight_labels: list[str] | None = None,
    dims: int = 2,
) -> go.Figure:
    """PCA scatter in 2D or 3D; hover shows the token. ``highlight`` overlays a second set of points
    (the sentence's tokens on top of the whole vocabulary) in the same coordinates."""
    if dims not in (2, 3):
        raise ValueError(f"A projection is drawn in 2 or 3 dimensions, got {dims}.")
    coords = np.asarray(projection.coords)
    if coords.shape[1] < dims:
        raise ValueError(f"The projection has {coords.shape[1]} components; {dims} are needed for this view.")
    check_labels(coords.shape[0], labels, "The projection")
    explained = projection.explained
    axis_titles = [f"PC{i + 1} ({explained[i]:.0%})" for i in range(dims)]

    def trace(points: np.ndarray, names: list[str], series: str, size: int, colour: str, text: bool, faint: bool):
        mode = "markers+text" if text else "markers"
        common = dict(
            mode=mode,
            name=series,
            text=names if text else None,
            hovertext=names,
            hovertemplate="%{hovertext}<extra>" + series + "</extra>",
            marker={"size": size, "color": colour, "opacity": 0.3 if faint else 0.9},
            # Labels in the points' own colour, bold, with an outline of the page's contrast colour: legible
            # over a dense cloud on a light and a dark theme.
            textfont={"color": colour, "size": 12},
        )
        if dims == 3:
            return go.Scatter3d(x=points[:, 0], y=points[:, 1], z=points[:, 2], **common)
        common["textfont"].update(weight="bold", shadow="auto")  # 2D only: plotly's 3D text has neither
        # Neighbours' labels alternate above and below their points, so close tokens do not print on each other.
        positions = ["top center" if i % 2 == 0 else "bottom center" for i in range(len(points))]
        return go.Scatter(x=points[:, 0], y=points[:, 1], textposition=positions, **common)

    fig = go.Figure()
    background = highlight is not None
    fig.add_trace(
        trace(
            coords,
            labels,
            "vocabulary" if background else "tokens",
            4 if background else 9,
            "#7f7f7f" if background else PALETTE[0],
            text=not background and len(labels) <= LABELLED_POINTS,
            faint=background,
        )
    )
    if highlight is not None:
        if highlight_labels is None:
            raise ValueError("Highlighted points need their token labels.")
        check_labels(np.asarray(highlight.coords).shape[0], highlight_labels, "The highlighted projection")
        fig.add_trace(
            trace(
                np.asarray(highlight.coords),
                highlight_labels,
                "this sentence",
                10,
                PALETTE[3],
                text=len(highlight_labels) <= LABELLED_POINTS,
                faint=False,
            )
        )
    if dims == 3:
        fig.update_layout(
            scene={"xaxis_title": axis_titles[0], "yaxis_title": axis_titles[1], "zaxis_title": axis_titles[2]}
        )
    else:
        fig.update_xaxes(title=axis_titles[0])
        fig.update_yaxes(title=axis_titles[1])
    fig.update_layout(legend={"orientation": "h", "y": -0.15})
    return finish(fig, title, 480)
