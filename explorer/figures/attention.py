"""Attention figures: per-head heatmaps, the all-heads overview grid and the query/key view for one query.
Measures of heads (entropy, ablation) are in ``head_measures``; the head view (token→token lines) in
``head_view``.

Every builder checks that the attention and the token labels describe the same sentence and raises a
``ValueError`` when they do not (BertViz's rule: a mismatch is an error, not a broken picture).
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from explorer.figures import (
    PALETTE,
    add_to_pair,
    finish,
    heatmap_height,
    label_margin,
    label_pair_axis,
    stacked_pair,
    token_font,
)
from explorer.figures.attention_colour import WEIGHT, colour_axis, coloured, window_lines
from explorer.interpret.analysis import (
    RELATIVE_LIMIT,
    apply_threshold,
    block_mean,
    check_attention,
    relative_to_uniform,
    unique_labels,
)

# The overview grid pools long sentences to this many positions per axis.
GRID_MAX_POSITIONS = 48
# The outline of a chosen query's row: red stands out against all of Viridis (purple, blue, green, yellow).
QUERY_OUTLINE = "#ff4b4b"


def attention_heatmap(
    weights: np.ndarray,
    labels: list[str],
    title: str,
    threshold: float = 0.0,
    value_name: str = "weight",
    key_labels: list[str] | None = None,
    signed: bool = False,
    start: int = 0,
    key_start: int | None = None,
    colouring: str = WEIGHT,
    causal: bool = False,
    total: int = 0,
    trained: int | None = None,
) -> go.Figure:
    """One head's ``[T, T]`` attention: queries down, keys across; hover ``query → key: weight``.

    Cells below ``threshold`` are left empty. ``key_labels`` (default: ``labels``) label the columns when
    queries and keys differ (a window of queries over all keys). ``signed`` uses a diverging scale (for
    pre-softmax scores). ``start``/``key_start`` are the positions of the first query/key (when paging).
    ``colouring`` (``COLOURINGS``; ``causal`` and ``total``, the sentence's length, for the relative one) and
    ``trained`` (the end of the model's training windows, drawn dashed) as in ``heads_figure``.
    """
    weights = np.asarray(weights, np.float32)
    key_labels = labels if key_labels is None else key_labels
    if weights.ndim != 2:
        raise ValueError(f"A head's attention is [T, T]; got shape {weights.shape}.")
    if weights.shape != (len(labels), len(key_labels)):
        raise ValueError(
            f"Attention of shape {weights.shape} does not match {len(labels)} query and {len(key_labels)} key "
            f"labels; pass the labels of the same sentence."
        )
    rows = unique_labels(labels, start)
    cols = unique_labels(key_labels, start if key_start is None else key_start)
    if signed:
        z, customdata, number = apply_threshold(weights, threshold) if threshold > 0 else weights, None, "%{z:.2f}"
        scale = dict(colorscale="RdBu", zmid=0.0, reversescale=True, colorbar={"title": {"text": value_name}})
    else:
        z, customdata, number = coloured(weights, colouring, threshold, causal, start, total)
        axis = colour_axis(colouring)
        scale = dict(colorscale=axis["colorscale"], zmin=axis["cmin"], zmax=axis["cmax"], colorbar=axis["colorbar"])
        if colouring == WEIGHT and value_name != "weight":
            scale["colorbar"] = {"title": {"text": value_name}}
    scale["colorbar"] = {**scale["colorbar"], "thickness": 12}
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=cols,
            y=rows,
            customdata=customdata,
            hovertemplate=f"%{{y}} → %{{x}}: {number}<extra></extra>",
            hoverongaps=False,
            **scale,
        )
    )
    if key_start is None or key_start == start:
        fig.update_layout(shapes=window_lines(trained, start, len(rows)))
    font = {"size": token_font(max(len(rows), len(cols)))}
    fig.update_xaxes(type="category", tickangle=-60, title="key (attended to)", tickfont=font)
    fig.update_yaxes(type="category", autorange="reversed", title="query", tickfont=font)
    return finish(fig, title, heatmap_height(len(rows), minimum=300, maximum=640) + label_margin(cols, font["size"]))


# Pixels the Attention page's main column offers a figure at a 1440 px wide window (sidebar open).
PAGE_WIDTH = 900
SMALLEST_CELL = 11  # px per token below which angled labels of neighbours overlap
LARGEST_CELL = 36  # px per token above which a short sentence's heatmap is mostly empty colour


def fitting_font(cell: float) -> int:
    """The largest tick font (px, 6 at the least) whose labels angled at 60° clear their neighbours
    ``cell`` px apart: a label's height across its slant is about its font size."""
    return max(6, int(cell * 0.85))


def _domain(low: float, high: float) -> list[float]:
    """A paper-fraction axis domain, kept inside [0, 1] despite float rounding (plotly rejects -1e-17)."""
    return [min(max(round(low, 6), 0.0), 1.0), min(max(round(high, 6), 0.0), 1.0)]


def heads_figure(
    weights: np.ndarray,
    labels: list[str],
    names: list[str],
    threshold: float = 0.0,
    start: int = 0,
    columns: int = 4,
    title: str = "Attention weights: rows are queries, columns the keys they attend to",
    width: int = PAGE_WIDTH,
    colouring: str = WEIGHT,
    causal: bool = False,
    total: int = 0,
    trained: int | None = None,
    query: int | None = None,
) -> go.Figure:
    """Several heads' ``[n, T, T]`` attention as small multiples in ONE figure, with hover
    ``head · query → key: weight``. ``query`` (a position) outlines that query's row in every panel.

    Every token is labelled on the outer axes (queries left of each row, keys under the bottom row). Up to
    ``columns`` panels sit side by side, fewer when a panel would get less than ``SMALLEST_CELL`` px per
    token in ``width`` px; the figure's own width and height are set so cells stay square. One figure with
    n panels draws markedly faster in a browser than n separate figures, which is what keeps the Attention
    page's default view quick to update while typing.

    ``colouring``: ``WEIGHT`` (0-1) or ``RELATIVE`` (to uniform attention; hover keeps the weight), with
    ``causal`` and ``total`` (the sentence's length, when the panels show a window of it) saying how many
    keys each query had. ``trained``: the position where the model's training windows ended, drawn dashed.
    """
    weights = np.asarray(weights, np.float32)
    if weights.ndim != 3 or weights.shape[1] != weights.shape[2]:
        raise ValueError(f"Expected heads of shape [n, T, T], got {weights.shape}.")
    if weights.shape[0] != len(names) or weights.shape[0] == 0:
        raise ValueError(f"{weights.shape[0]} heads but {len(names)} names; give one name per head.")
    if weights.shape[1] != len(labels):
        raise ValueError(
            f"The attention covers {weights.shape[1]} tokens but {len(labels)} token labels were given; pass the "
            f"labels of the same sentence."
        )
    count, length = weights.shape[0], weights.shape[1]
    axis = unique_labels(labels, start)
    font = token_font(length)
    label_px = label_margin(axis, font)
    # Geometry in pixels (then in the paper fractions plotly wants), built as a plain dict:
    # make_subplots/update_* took ~100 ms per rebuild here, and automargin's extra layout passes were a
    # fifth of the redraw time.
    gap, title_px, colorbar_px = 16, 24, 80
    room = width - label_px - colorbar_px
    cols = max(1, min(columns, count))
    while cols > 1 and (room - gap * (cols - 1)) / (cols * length) < SMALLEST_CELL:
        cols -= 1
    cell = int(min(LARGEST_CELL, max(8, (room - gap * (cols - 1)) / (cols * length))))
    # Key labels are angled at 60°: neighbours clear each other while the font is under ~0.85 of a cell
    # (a half-width Compare panel of 21 tokens overlapped at 11 px on 12 px cells).
    font = min(font, fitting_font(cell))
    label_px = label_margin(axis, font)
    rows = -(-count // cols)
    panel = cell * length
    # One panel per row (a narrow column): every panel names its keys, so each reads on its own.
    keys_below_each = cols == 1
    row_gap = gap + title_px + (label_px if keys_below_each else 0)
    plot_w = cols * panel + (cols - 1) * gap
    plot_h = rows * panel + (rows - 1) * row_gap
    tick_font = {"size": font}
    layout: dict = {"annotations": [], "shapes": []}
    data = []
    colours, customdata, number = coloured(weights, colouring, threshold, causal, start, total)
    for index in range(count):
        row, col = divmod(index, cols)
        x_name = "x" if index == 0 else f"x{index + 1}"
        y_name = "y" if row == 0 else f"y{row + 1}"
        x0 = col * (panel + gap) / plot_w
        y1 = 1.0 - row * (panel + row_gap) / plot_h
        layout["xaxis" if index == 0 else f"xaxis{index + 1}"] = {
            "domain": _domain(x0, x0 + panel / plot_w),
            "anchor": y_name,
            "type": "category",
            "tickangle": -60,
            "tickfont": tick_font,
            "showticklabels": keys_below_each or row == rows - 1 or index + cols >= count,
            "automargin": False,
        }
        if col == 0:
            layout["yaxis" if row == 0 else f"yaxis{row + 1}"] = {
                "domain": _domain(y1 - panel / plot_h, y1),
                "anchor": x_name,
                "type": "category",
                "autorange": "reversed",
                "tickfont": tick_font,
                "automargin": False,
            }
        if query is not None and 0 <= query - start < length:
            layout["shapes"].append(
                {
                    "type": "rect",
                    "xref": f"{x_name} domain",
                    "yref": y_name,
                    "x0": 0,
                    "x1": 1,
                    "y0": query - start - 0.5,
                    "y1": query - start + 0.5,
                    "line": {"color": QUERY_OUTLINE, "width": 2},
                }
            )
        layout["annotations"].append(
            {
                "text": names[index],
                "x": x0 + panel / plot_w / 2,
                "y": y1,
                "xref": "paper",
                "yref": "paper",
                "xanchor": "center",
                "yanchor": "bottom",
                "showarrow": False,
                "font": {"size": 13},
            }
        )
        data.append(
            {
                "type": "heatmap",
                "z": colours[index],
                "x": axis,
                "y": axis,
                "xaxis": x_name,
                "yaxis": y_name,
                "coloraxis": "coloraxis",
                "hoverongaps": False,
                "name": names[index],
                "hovertemplate": f"{names[index]}<br>%{{y}} → %{{x}}: {number}<extra></extra>",
                **({"customdata": customdata[index]} if customdata is not None else {}),
            }
        )
        layout["shapes"] += window_lines(trained, start, length, x_name, y_name)
    scale = colour_axis(colouring)
    layout["coloraxis"] = {
        **scale,
        "colorbar": {**scale["colorbar"], "thickness": 12, "len": min(1.0, 320 / plot_h)},
    }
    top = 40 + title_px
    layout["margin"] = {"l": label_px, "r": colorbar_px, "t": top, "b": label_px}
    layout["width"] = label_px + plot_w + colorbar_px
    return finish({"data": data, "layout": layout}, title, top + plot_h + label_px)


def attention_grid(
    weights: np.ndarray,
    labels: list[str],
    max_positions: int = GRID_MAX_POSITIONS,
    layer_numbers: list[int] | None = None,
    badges: list[list[str]] | None = None,
    colouring: str = WEIGHT,
    causal: bool = False,
    trained: int | None = None,
    start: int = 0,
    total: int = 0,
) -> go.Figure:
    """Every layer x every head in one figure (rows: layers, columns: heads).

    Sentences longer than ``max_positions`` are block-averaged (hover then names the position range), so
    the grid stays light at 512 tokens. ``layer_numbers`` (1-based) name the rows when ``weights`` holds a
    subset of the layers; ``badges`` ``[L][H]`` (e.g. head-role badges) follow each panel's name.
    ``colouring``, ``causal``, ``trained``, ``start`` (the position of ``labels[0]``) and ``total`` (the
    sentence's length when ``weights`` cover a part of it) as in ``heads_figure``; a block's weights are
    compared with uniform attention one by one, then averaged.
    """
    check_attention(weights, labels, ndim=4)
    weights = np.asarray(weights, np.float32)
    layers, heads, length, _ = weights.shape
    numbers = list(range(1, layers + 1)) if layer_numbers is None else list(layer_numbers)
    if len(numbers) != layers:
        raise ValueError(f"{layers} layers of attention but {len(numbers)} layer numbers.")
    pooled = length > max_positions
    fig = make_subplots(
        rows=layers,
        cols=heads,
        subplot_titles=[
            f"L{numbers[ly]} H{h + 1}" + (f" {badges[ly][h]}" if badges else "")
            for ly in range(layers)
            for h in range(heads)
        ],
        horizontal_spacing=0.02,
        vertical_spacing=0.06 if layers < 6 else 0.02,
    )
    ranges = [(start + p, start + p) for p in range(length)]
    for layer in range(layers):
        for head in range(heads):
            matrix = weights[layer, head]
            if pooled:
                z, customdata, number = _pooled(matrix, max_positions, colouring, causal, start, total)
                ranges = [(start + a, start + b) for a, b in block_mean(matrix, max_positions)[1]]
                names = [f"{a}–{b}" for a, b in ranges]
            else:
                z, customdata, number = coloured(matrix, colouring, causal=causal, start=start, total=total)
                names = unique_labels(labels, start)
            fig.add_trace(
                go.Heatmap(
                    z=z,
                    x=names,
                    y=names,
                    customdata=customdata,
                    coloraxis="coloraxis",
                    hovertemplate=f"L{numbers[layer]} H{head + 1}<br>%{{y}} → %{{x}}: {number}<extra></extra>",
                ),
                row=layer + 1,
                col=head + 1,
            )
    # Token labels on the outer axes only: keys under the bottom row, queries left of the first column. Keys
    # are named only while each gets SMALLEST_CELL px (12 narrow panels of 17 tokens would pile them up);
    # hover names every cell's tokens either way.
    axis_names = names if pooled else unique_labels(labels, start)
    font = {"size": max(7, token_font(len(axis_names)) - 2)}
    margin = label_margin(axis_names, font["size"])
    panel_width = (PAGE_WIDTH - margin - 80) / heads
    keys_named = panel_width / len(axis_names) >= SMALLEST_CELL
    font = {"size": min(font["size"], fitting_font(panel_width / len(axis_names)))}
    fig.update_xaxes(type="category", showticklabels=False, tickangle=-60, tickfont=font)
    fig.update_yaxes(type="category", autorange="reversed", showticklabels=False, tickfont=font)
    fig.update_xaxes(showticklabels=keys_named, row=layers)
    fig.update_yaxes(showticklabels=True, col=1)
    # Where training windows ended: between the block that holds the last trained position and the next.
    boundary = None if trained is None else next((i for i, (a, _) in enumerate(ranges) if a >= trained), None)
    shapes = []
    for index in range(layers * heads):
        suffix = "" if index == 0 else str(index + 1)
        shapes += window_lines(boundary, 0, len(ranges), f"x{suffix}", f"y{suffix}")  # in block indices
    scale = colour_axis(colouring)
    fig.update_layout(
        coloraxis={**scale, "colorbar": {**scale["colorbar"], "thickness": 12}},
        margin={"l": 10, "r": 10, "t": 60, "b": 10},
        shapes=shapes,
    )
    title = "All layers × all heads: rows are queries, columns keys" + (
        f" (averaged over blocks of ~{length / max_positions:.1f} positions)" if pooled else ""
    )
    if not keys_named:
        title += " (hover a cell for its tokens)"
    panel = max(160, 900 // max(heads, 1), (font["size"] + 1) * len(axis_names))
    bottom = margin if keys_named else 20
    return finish(fig, title, int(min(2400, 60 + layers * panel + bottom)))


def _pooled(
    matrix: np.ndarray, size: int, colouring: str, causal: bool, start: int = 0, total: int = 0
) -> tuple[np.ndarray, np.ndarray | None, str]:
    """A long head's ``[T, T]`` attention averaged over blocks, coloured: the mean weight, or the mean of
    the weights' (clipped) ratios to uniform; hover gives the block's mean weight either way."""
    weights, _ = block_mean(matrix, size)
    if colouring == WEIGHT:
        return weights.astype(np.float32), None, "%{z:.2f}"
    relative = relative_to_uniform(matrix, causal, start, max(total, matrix.shape[-1]))
    relative = np.where(np.isnan(relative), -RELATIVE_LIMIT, relative)  # keys a causal query could not see
    z, _ = block_mean(relative, size)
    customdata = np.stack([weights, np.exp2(z)], axis=-1).astype(np.float32)
    return z.astype(np.float32), customdata, "%{customdata[0]:.2f} (%{customdata[1]:.2g}× uniform)"


def query_key_figure(
    scores: np.ndarray, weights: np.ndarray, labels: list[str], query: int, head_names: list[str]
) -> go.Figure:
    """For one query token: q·k/sqrt(K) for every key (top, before softmax) and the resulting weights
    (bottom), one bar series per selected head. ``scores`` and ``weights`` are ``[h, T]``; keys a causal
    mask hides show a NaN score."""
    scores, weights = np.asarray(scores, np.float32), np.asarray(weights, np.float32)
    expected = (len(head_names), len(labels))
    if scores.shape != expected or weights.shape != expected:
        raise ValueError(f"Scores {scores.shape} and weights {weights.shape} must both be [heads, T] = {expected}.")
    if not 0 <= query < len(labels):
        raise ValueError(f"Query position {query} is outside the sentence (0..{len(labels) - 1}).")
    x = unique_labels(labels)
    fig = stacked_pair(("score q·k / √K (before softmax)", "attention weight (after softmax)"))
    for i, name in enumerate(head_names):
        add_to_pair(
            fig,
            go.Bar,
            {"y": scores[i], "hovertemplate": f"{name}<br>{x[query]} → %{{x}}: score %{{y:.2f}}<extra></extra>"},
            {"y": weights[i], "hovertemplate": f"{name}<br>{x[query]} → %{{x}}: weight %{{y:.2f}}<extra></extra>"},
            x=x,
            name=name,
            legendgroup=name,
            marker_color=PALETTE[i % len(PALETTE)],
        )
    label_pair_axis(fig, len(labels))
    fig.update_yaxes(range=[0, 1], row=2, col=1)
    fig.update_layout(barmode="group", legend={"orientation": "h", "y": 1.08, "yanchor": "bottom"})
    return finish(fig, f"Query {x[query]}: what it scores and where it looks", 480)
