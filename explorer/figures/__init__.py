"""Figure builders: arrays and token strings in, ``plotly.graph_objects.Figure`` out.

Pure functions, one module per page (tokens, embeddings, attention, layer norm, model, training,
interpretability). They never touch Streamlit, so tests check traces, axis labels and hover text without a
browser. Colours are chosen to read on both the light and the dark theme: backgrounds are left to the
app's theme, colourscales are perceptually uniform (weights) or diverging around zero (signed values).
What a figure shows is computed before it is drawn (``explorer.interpret``); a figure only lays it out.

May import: text, interpret.
"""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

# Weights in [0, 1]: perceptually uniform and legible on white and on near-black backgrounds.
WEIGHT_SCALE = "Viridis"
# Signed values (embeddings, offsets): diverging, white-free middle would vanish on a dark theme, so a
# scale whose midpoint is a mid grey.
SIGNED_SCALE = [[0.0, "#2166ac"], [0.25, "#67a9cf"], [0.5, "#8c8c8c"], [0.75, "#ef8a62"], [1.0, "#b2182b"]]
# A qualitative palette distinguishable on both themes (Plotly's D3 set).
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]


# Text and grid colours that read on Streamlit's white and its near-black background alike (contrast
# about 4:1 on white, 5:1 on #0e1117). Figures carry their own neutral style instead of relying on
# Streamlit's plotly theme: restyling every figure in the browser made each chart ~25% slower to draw.
TEXT_COLOUR = "#7d7d7d"
GRID_COLOUR = "rgba(128,128,128,0.25)"


_AXIS_STYLE = {"gridcolor": GRID_COLOUR, "zerolinecolor": GRID_COLOUR, "linecolor": GRID_COLOUR, "automargin": True}
_SCENE_AXIS_STYLE = {"gridcolor": GRID_COLOUR, "backgroundcolor": "rgba(0,0,0,0)"}


TITLE_PX = 34  # the title's strip at the top of a figure
LEGEND_ROW_PX = 22


def legend_rows(names: list[str], width: int) -> int:
    """Rows a horizontal legend of ``names`` wraps to in ``width`` px: plotly places entries left to right,
    each its symbol and its text (~7 px a character at the legend's size), and starts a row when one does
    not fit. An overestimate only leaves a blank strip; an underestimate would cover the title."""
    rows, used = 1, 0
    for name in names:
        entry = 48 + 7 * len(name)
        if used and used + entry > width:
            rows, used = rows + 1, 0
        used += entry
    return rows


def _legend_names(data: list) -> list[str]:
    """The names a figure's legend lists: one per trace shown in it (heatmaps are not, unless asked)."""
    names = []
    for trace in data:
        shown = trace.get("showlegend", trace.get("type", "scatter") not in ("heatmap", "histogram2d", "contour"))
        if shown and trace.get("name"):
            names.append(str(trace["name"]))
    return names


def finish(fig: go.Figure | dict, title: str, height: int, legend_width: int = 420) -> go.Figure:
    """The layout every figure shares: a title, tight margins, a fixed height, transparent backgrounds
    and neutral text and grid colours that work on a light and a dark page. ``legend_width``: the pixels a
    legend above the plot may use (the narrowest column such a figure is drawn in; a figure's own width wins).

    Works on the figure's plain-dict form: plotly's ``update_*`` methods cost ~60 ms per figure here, a
    dict edit and one validated ``go.Figure(spec)`` a few ms, which matters when a figure is rebuilt on
    every keystroke. Values a builder already set (an axis's ``automargin``, the margins) are kept.
    """
    spec = fig.to_dict() if isinstance(fig, go.Figure) else fig
    layout = spec.setdefault("layout", {})
    layout.pop("template", None)  # to_dict() inlines the default template; ours is "none"
    layout["template"] = "none"
    layout["title"] = {"text": title, "x": 0.0, "xanchor": "left", "font": {"size": 14}}
    layout.setdefault("margin", {"l": 10, "r": 10, "t": 40, "b": 10})
    layout["height"] = height
    layout["paper_bgcolor"] = layout["plot_bgcolor"] = "rgba(0,0,0,0)"
    layout["font"] = {**layout.get("font", {}), "color": TEXT_COLOUR}
    layout["hoverlabel"] = {"namelength": -1}
    legend = layout.get("legend", {})
    if legend.get("orientation") == "h" and legend.get("y", 1.0) >= 1:
        # A legend above the plot starts on the left, under the title (on the right it would sit under
        # plotly's toolbar, which appears over the figure's top-right corner), in a strip of the top margin
        # of its own: as many rows as its entries wrap to, so a long legend never covers the title.
        rows = legend_rows(_legend_names(spec.get("data", [])), layout.get("width") or legend_width)
        layout["title"].update(yref="container", y=1.0, yanchor="top", pad={"t": 10})
        legend.update(x=0.0, xanchor="left", yref="container", y=1.0 - TITLE_PX / height, yanchor="top")
        layout["margin"] = {**layout["margin"], "t": max(layout["margin"].get("t", 40), TITLE_PX + 8 + 22 * rows)}
    axes = [k for k in layout if k.startswith(("xaxis", "yaxis"))] or ["xaxis", "yaxis"]
    counts = _category_counts(spec.get("data", []))
    for key in axes:
        layout[key] = {**_AXIS_STYLE, **layout.get(key, {})}
        if layout[key].get("type") == "category":
            # Plotly thins crowded category labels to every other or every third one; a token axis must
            # name every token (windows keep it at most WINDOW long), in a font small enough to fit.
            layout[key].setdefault("dtick", 1)
            if key in counts:
                layout[key].setdefault("tickfont", {"size": token_font(counts[key])})
    for key in [k for k in layout if k.startswith("scene")]:
        for axis in ("xaxis", "yaxis", "zaxis"):
            layout[key][axis] = {**_SCENE_AXIS_STYLE, **layout[key].get(axis, {})}
    return go.Figure(spec)


def _category_counts(data: list) -> dict[str, int]:
    """How many categories each axis (``"xaxis"``, ``"yaxis2"``, …) carries, from the traces drawn on it."""
    counts: dict[str, int] = {}
    for trace in data:
        for letter in ("x", "y"):
            values = trace.get(letter)
            if values is None or isinstance(values, dict):  # dict: a typed array of numbers, not labels
                continue
            axis = trace.get(f"{letter}axis", letter)
            name = f"{letter}axis{axis[1:]}"
            counts[name] = max(counts.get(name, 0), len(values))
    return counts


def check_labels(count: int, labels: list[str], what: str) -> None:
    """The explicit error for a token/data mismatch (instead of a silently misaligned picture)."""
    if len(labels) != count:
        raise ValueError(
            f"{what} covers {count} tokens but {len(labels)} token labels were given; pass the labels of "
            f"the same sentence."
        )


def token_font(count: int) -> int:
    """Tick font size (px) at which ``count`` token labels fit side by side on a screen-wide axis."""
    return 11 if count <= 32 else 10 if count <= 48 else 9 if count <= 72 else 8


def label_margin(labels: list[str], font: int) -> int:
    """Pixels that the longest token label (angled or not) needs beside its axis."""
    longest = max((len(label) for label in labels), default=1)
    return 12 + int(0.62 * font * min(longest, 24))


def heatmap_height(rows: int, minimum: int = 260, maximum: int = 760, per_row: int = 18) -> int:
    """Tall enough that every token row keeps a readable label: within limits that fit a screen when the
    labels fit there, taller (the page scrolls) when they would otherwise overlap."""
    needed = 90 + (token_font(rows) + 3) * rows
    return int(max(minimum, min(maximum, 90 + per_row * rows), needed))


def stacked_pair(titles: tuple[str, str]) -> go.Figure:
    """Two plots, one above the other, over the same token axis (e.g. scores over weights)."""
    return make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08, subplot_titles=titles)


def add_to_pair(fig: go.Figure, trace: type, top: dict, bottom: dict, **shared) -> None:
    """Draws one series in both plots of a ``stacked_pair``: ``trace(**shared, **top)`` above and
    ``trace(**shared, **bottom)`` below, listed once in the legend."""
    fig.add_trace(trace(**shared, **top), row=1, col=1)
    fig.add_trace(trace(**shared, showlegend=False, **bottom), row=2, col=1)


def label_pair_axis(fig: go.Figure, count: int) -> None:
    """Token labels once, under the bottom plot of a ``stacked_pair`` (and not at all past 96 tokens)."""
    fig.update_xaxes(type="category", tickangle=-60)
    fig.update_xaxes(showticklabels=False, row=1, col=1)
    fig.update_xaxes(showticklabels=count <= 96, row=2, col=1)


def layer_head_grid(values, zmax: float, colorbar: str, **trace) -> go.Figure:
    """One cell per head, ``[L, H]`` values coloured from 0 to ``zmax`` (rows L1 …, columns H1 …, top to
    bottom). ``trace`` adds what differs between views: the cells' text, hover and font."""
    layers, heads = len(values), len(values[0])
    fig = go.Figure(
        go.Heatmap(
            z=values,
            x=[f"H{h + 1}" for h in range(heads)],
            y=[f"L{layer + 1}" for layer in range(layers)],
            zmin=0.0,
            zmax=zmax,
            colorscale=WEIGHT_SCALE,
            colorbar={"title": {"text": colorbar}, "thickness": 12},
            **trace,
        )
    )
    fig.update_xaxes(type="category")
    fig.update_yaxes(type="category", autorange="reversed")
    return fig
