"""Figures of one layer's steps (``explorer.interpret.trace``): vectors as compact heat strips, keys and values
as matrices with a row per token, scores and weights as bars per key token.

Every vector is a strip of coloured cells (blue negative, red positive, grey near 0) whose hover shows the
index and the value, with its few largest entries labelled under it. A step computed from earlier ones
(a residual add, a layer norm, an activation) shows them as strips above its own, on one colour scale, so
the change is visible.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from explorer.figures import (
    PALETTE,
    SIGNED_SCALE,
    TEXT_COLOUR,
    add_to_pair,
    finish,
    heatmap_height,
    label_pair_axis,
    stacked_pair,
)
from explorer.interpret.analysis import unique_labels
from explorer.interpret.trace import PER_KEY, PER_TOKEN, LayerTrace, Step

LABELLED = 3  # largest entries named under a strip: enough to point at, few enough to read
LABEL_GAP = 0.16  # of a strip's width between two labelled entries, so their labels never overlap
STRIP_ROW = 30  # px per strip
OUTLINE = "#e6a100"  # the chosen head's part, the query's row: amber reads on light and dark pages
MASKED = "rgba(128,128,128,0.35)"


def _signed_range(values: list[np.ndarray]) -> float:
    peak = max((float(np.abs(v).max()) for v in values if v.size), default=0.0)
    return peak if peak > 0 else 1.0


def spaced_largest(values: np.ndarray, count: int, gap: float = LABEL_GAP) -> list[int]:
    """Indices of the ``count`` largest entries by size, each at least ``gap`` of the length from the others
    (a neighbour of a large entry is often large too; its label would cover the first one's)."""
    values = np.asarray(values).reshape(-1)
    spacing = max(1, int(np.ceil(gap * values.size)))
    chosen: list[int] = []
    for index in np.argsort(-np.abs(values), kind="stable"):
        if len(chosen) == count:
            break
        if all(abs(int(index) - other) >= spacing for other in chosen):
            chosen.append(int(index))
    return sorted(chosen)


def heat_strips(
    rows: list[tuple[str, np.ndarray]],
    title: str,
    highlight: tuple[int, int] | None = None,
    labelled: int = LABELLED,
) -> go.Figure:
    """Vectors of one length as strips, one per row (top to bottom), on one diverging colour scale.

    The last row is the step's own value: its ``labelled`` largest entries (by size, spaced apart) are named
    under it. ``highlight`` outlines the entries ``[start, stop)`` in every row. The colours' range goes in
    the title (a colour bar beside a strip a few pixels high cannot be read).
    """
    if not rows:
        raise ValueError("Give at least one vector to draw.")
    values = [np.asarray(v, np.float64).reshape(-1) for _, v in rows]
    width = values[0].size
    if any(v.size != width for v in values):
        raise ValueError(f"Strips drawn together must have one length; got {[v.size for v in values]}.")
    names = [name for name, _ in rows]
    peak = _signed_range(values)
    last = values[-1]
    low, high = min(float(v.min()) for v in values), max(float(v.max()) for v in values)
    annotations = [
        {
            "x": int(i),
            "y": names[-1],
            "text": f"{int(i)}: {last[i]:+.2f}",
            "showarrow": True,
            "arrowhead": 0,
            "arrowwidth": 1,
            "arrowcolor": TEXT_COLOUR,
            "ax": 0,
            "ay": 22,
            "font": {"size": 11},
        }
        for i in spaced_largest(last, labelled)
    ]
    shapes = []
    if highlight is not None:
        start, stop = highlight
        shapes.append(
            {
                "type": "rect",
                "xref": "x",
                "yref": "y domain",
                "x0": start - 0.5,
                "x1": stop - 0.5,
                "y0": 0,
                "y1": 1,
                "line": {"color": OUTLINE, "width": 3},
            }
        )
    spec = {
        "data": [
            {
                "type": "heatmap",
                "z": np.stack(values),
                "x": list(range(width)),
                "y": names,
                "zmin": -peak,
                "zmax": peak,
                "colorscale": SIGNED_SCALE,
                "showscale": False,
                "hovertemplate": "%{y} · entry %{x}: %{z:.4f}<extra></extra>",
                "xgap": 1 if width <= 160 else 0,
            }
        ],
        "layout": {
            "xaxis": {
                "showticklabels": False,
                "ticks": "",
                "showgrid": False,
                "zeroline": False,
                "showline": False,
                "range": [-0.5, width - 0.5],
            },
            "yaxis": {"type": "category", "autorange": "reversed", "showgrid": False, "ticks": ""},
            "annotations": annotations,
            "shapes": shapes,
            "margin": {"l": 10, "r": 10, "t": 34, "b": 34},
        },
    }
    title += f" · from {low:+.2f} (blue) to {high:+.2f} (red)"
    return finish(spec, title, 34 + 34 + STRIP_ROW * len(rows) + 12)


def token_matrix(
    matrix: np.ndarray, labels: list[str], title: str, query: int | None = None, start: int = 0
) -> go.Figure:
    """A ``[T, K]`` matrix (keys or values) with a row per token, named; the query token's row outlined.

    ``start`` is the position of the first row (when showing a window of a long text).
    """
    matrix = np.asarray(matrix, np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != len(labels):
        raise ValueError(f"A matrix of shape {matrix.shape} needs one label per row; got {len(labels)} labels.")
    rows = unique_labels(labels, start)
    peak = _signed_range([matrix])
    shapes = []
    if query is not None and start <= query < start + len(rows):
        row = query - start
        shapes.append(
            {
                "type": "rect",
                "xref": "x domain",
                "yref": "y",
                "x0": 0,
                "x1": 1,
                "y0": row - 0.5,
                "y1": row + 0.5,
                "line": {"color": OUTLINE, "width": 3},
            }
        )
    spec = {
        "data": [
            {
                "type": "heatmap",
                "z": matrix,
                "x": list(range(matrix.shape[1])),
                "y": rows,
                "zmin": -peak,
                "zmax": peak,
                "colorscale": SIGNED_SCALE,
                "colorbar": {"thickness": 10, "outlinewidth": 0},
                "hovertemplate": "%{y} · entry %{x}: %{z:.4f}<extra></extra>",
                "xgap": 1,
                "ygap": 1,
            }
        ],
        "layout": {
            "xaxis": {"title": {"text": "entry"}, "showgrid": False, "zeroline": False},
            "yaxis": {"type": "category", "autorange": "reversed", "showgrid": False},
            "shapes": shapes,
        },
    }
    return finish(spec, title, heatmap_height(len(rows), minimum=200, maximum=560, per_row=20))


def _bar_colours(length: int, query: int, start: int, allowed: np.ndarray) -> list[str]:
    """Blue bars, the query token's own key amber, masked keys grey."""
    colours = [PALETTE[0]] * length
    if start <= query < start + length:
        colours[query - start] = OUTLINE
    return [c if ok else MASKED for c, ok in zip(colours, allowed, strict=True)]


def score_bars(
    scores: np.ndarray, allowed: np.ndarray, labels: list[str], query: int, title: str, start: int = 0
) -> go.Figure:
    """Scores per key token; masked keys are grey and marked −∞ (the softmax will give them 0)."""
    scores, allowed = np.asarray(scores, np.float64), np.asarray(allowed, bool)
    if scores.shape != (len(labels),) or allowed.shape != scores.shape:
        raise ValueError(f"Scores {scores.shape} and mask {allowed.shape} need one entry per label ({len(labels)}).")
    x = unique_labels(labels, start)
    fig = go.Figure(
        go.Bar(
            x=x,
            y=scores,
            marker_color=_bar_colours(len(x), query, start, allowed),
            text=[None if ok else "−∞" for ok in allowed] if not allowed.all() else None,
            textposition="outside",
            hovertemplate="key %{x}: score %{y:.3f}<extra></extra>",
        )
    )
    low, high = min(0.0, float(scores.min())), max(0.0, float(scores.max()))
    pad = 0.1 * (high - low or 1.0)  # room above the tallest bar (and for its "−∞")
    fig.update_xaxes(type="category", tickangle=-60)
    fig.update_yaxes(title="score", range=[low - (pad if low < 0 else 0), high + pad])
    return finish(fig, title, 320)


def scores_and_weights(
    scores: np.ndarray, weights: np.ndarray, allowed: np.ndarray, labels: list[str], query: int, start: int = 0
) -> go.Figure:
    """The scores (top) and the weights the softmax makes of them (bottom), per key token: a score a few units
    above the rest takes most of the weight."""
    scores, weights, allowed = (np.asarray(a) for a in (scores, weights, allowed))
    if not scores.shape == weights.shape == allowed.shape == (len(labels),):
        raise ValueError(f"Scores {scores.shape}, weights {weights.shape} and mask need one entry per label.")
    x = unique_labels(labels, start)
    colours = _bar_colours(len(x), query, start, allowed.astype(bool))
    fig = stacked_pair(("score s (before the softmax)", "weight w = softmax(s)"))
    add_to_pair(
        fig,
        go.Bar,
        {"y": np.where(allowed, scores, np.nan), "hovertemplate": "key %{x}: score %{y:.3f}<extra></extra>"},
        {"y": weights, "hovertemplate": "key %{x}: weight %{y:.3f}<extra></extra>"},
        x=x,
        marker_color=colours,
    )
    label_pair_axis(fig, len(x))
    fig.update_layout(showlegend=False, margin={"l": 10, "r": 10, "t": 64, "b": 10})
    fig.update_yaxes(range=[0, 1], row=2, col=1)
    return finish(fig, "Scores become weights (amber: the query token's own key)", 440)


def step_figure(trace: LayerTrace, step: Step, window: slice | None = None) -> go.Figure:
    """The picture of one step: strips for vectors (with the steps it is computed from above it), a matrix for
    keys and values, bars per key for scores, the mask and the weights. ``window`` limits the token axis of a
    long text (keys ``window.start`` … ``window.stop - 1``)."""
    labels = list(trace.tokens)
    window = window or slice(0, len(labels))
    shown, start, query = labels[window], window.start, trace.position
    if step.kind == PER_TOKEN:
        what = "every token's key" if step.name == "keys" else "every token's value"
        title = f"{step.symbol}: {what}, {step.shape[1]} numbers per row (outlined: the query token)"
        return token_matrix(step.value[window], shown, title, query=query, start=start)
    if step.kind == PER_KEY:
        scores = trace["scores"].value[window]
        allowed = trace["mask"].value[window] > 0 if "mask" in trace else np.ones(len(shown), bool)
        if step.name == "weights":
            return scores_and_weights(scores, step.value[window], allowed, shown, query, start)
        if step.name == "mask":
            title = "Scores with the mask: grey keys get −∞"
        else:
            title, allowed = "Score of every key", np.ones(len(shown), bool)  # masking is the next step
        return score_bars(scores, allowed, shown, query, title + " (amber: the query token's own key)", start)
    rows = [(trace[name].symbol, trace[name].value) for name in step.shown_with] + [(step.symbol, step.value)]
    title = f"{step.symbol}: {step.shape[0]} numbers" + (", under what it is computed from" if step.shown_with else "")
    return heat_strips(rows, title, highlight=step.highlight)
