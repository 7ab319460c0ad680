"""Training figures: loss curves, the probe's attention beside the ideal pattern, gradient telemetry,
closeness to the ideal attention, and the embedding plane of a snapshot. Pure builders for the Train page
(arrays in, a Plotly figure out)."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

from explorer.figures import PALETTE, WEIGHT_SCALE, check_labels, finish, label_margin, layer_head_grid, token_font
from explorer.interpret.analysis import check_attention, head_label, unique_labels

# A live curve redraws every couple of seconds, in the server and in every watching browser: a few hundred
# points per trace keep its shape (each stretch's lowest and highest value are kept) at a fraction of the cost.
MAX_CURVE_POINTS = 400
# Earlier runs' lines: dashed in turn, so each reads apart from this run's solid lines and from each other.
EARLIER_DASHES = ("dash", "dot", "dashdot", "longdash")


def _thin(steps: np.ndarray, values: np.ndarray, limit: int = MAX_CURVE_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """At most ``limit`` points of a curve: the first and the last, and in each of ``(limit - 2) // 3``
    equal stretches its lowest and highest finite value and its first non-finite one (a gap in the line
    stays a gap)."""
    count = len(steps)
    if count <= limit:
        return steps, values
    buckets = max(1, (limit - 2) // 3)
    size = -(-count // buckets)
    padded = np.full(buckets * size, np.nan)
    padded[:count] = values
    rows = padded.reshape(buckets, size)
    finite = np.isfinite(rows)
    base = np.arange(buckets) * size
    lowest = base + np.argmin(np.where(finite, rows, np.inf), axis=1)
    highest = base + np.argmax(np.where(finite, rows, -np.inf), axis=1)
    padding = np.arange(buckets * size).reshape(buckets, size) >= count
    gaps = ~finite & ~padding
    first_gap = (base + np.argmax(gaps, axis=1))[gaps.any(axis=1)]
    keep = np.unique(np.concatenate(([0, count - 1], lowest, highest, first_gap)))
    keep = keep[keep < count]
    return steps[keep], values[keep]


def _line(x, y, **trace) -> dict:
    return {"type": "scatter", "x": x, "y": y, **trace}


def loss_figure(
    steps: list[int] | np.ndarray,
    loss: list[float] | np.ndarray,
    eval_steps: list[int] | np.ndarray,
    eval_loss: list[float] | np.ndarray,
    title: str = "Loss",
    baseline: float | None = None,
    earlier: list[dict] | tuple = (),
    run_label: str | None = None,
    height: int = 320,
) -> go.Figure:
    """Training loss per step (thin line) and held-out loss at each evaluation (markers).

    ``baseline`` (text tasks): the held-out loss of always guessing the training text's token frequencies,
    drawn as a dashed line, so a learner sees when the model starts to use context.
    ``earlier``: earlier runs to compare with, each ``{"label", "steps", "loss"}`` (the label names the run
    and what differs from this one), each in a colour and dash of its own under this run's solid lines.
    ``run_label``: names this run's two lines ("train · run 3") when earlier runs are drawn.
    Non-finite losses (a blow-up) are not plotted: a red cross at the top of the chart marks each step.

    Built as a plain dict (see ``finish``): it is redrawn every couple of seconds while a run goes on.
    """
    steps, loss = np.asarray(steps), np.asarray(loss, np.float64)
    eval_steps, eval_loss = np.asarray(eval_steps), np.asarray(eval_loss, np.float64)
    if len(steps) != len(loss) or len(eval_steps) != len(eval_loss):
        raise ValueError("Every loss value needs its step: steps and losses must have the same length.")
    data = []
    finite_values = [loss[np.isfinite(loss)]]
    for index, run in enumerate(earlier):
        run_steps, run_loss = np.asarray(run["steps"]), np.asarray(run["loss"], np.float64)
        if len(run_steps) != len(run_loss):
            raise ValueError("Every loss value of an earlier run needs its step.")
        run_steps, run_loss = _thin(run_steps, run_loss)
        finite_values.append(run_loss[np.isfinite(run_loss)])
        data.append(
            _line(
                run_steps,
                np.where(np.isfinite(run_loss), run_loss, np.nan),
                mode="lines",
                name=run["label"],
                opacity=0.8,
                line={
                    "color": PALETTE[(index + 2) % len(PALETTE)],
                    "width": 1.5,
                    "dash": EARLIER_DASHES[index % len(EARLIER_DASHES)],
                },
                hovertemplate=f"{run['label']} · step %{{x}}: loss %{{y:.4f}}<extra></extra>",
            )
        )
    shown_steps, shown_loss = _thin(steps, loss)
    data.append(
        _line(
            shown_steps,
            np.where(np.isfinite(shown_loss), shown_loss, np.nan),
            mode="lines",
            name=f"train · {run_label}" if run_label else "train",
            line={"color": PALETTE[0], "width": 1.5},
            hovertemplate="step %{x}: train loss %{y:.4~g}<extra></extra>",
        )
    )
    data.append(
        _line(
            eval_steps,
            np.where(np.isfinite(eval_loss), eval_loss, np.nan),
            mode="lines+markers",
            name=f"held-out · {run_label}" if run_label else "held-out",
            line={"color": PALETTE[1], "width": 2},
            hovertemplate="step %{x}: held-out loss %{y:.4~g}<extra></extra>",
        )
    )
    bad = ~np.isfinite(loss)
    if bad.any():
        finite = np.concatenate(finite_values)
        top = float(finite.max()) if finite.size else 1.0
        data.append(
            _line(
                steps[bad],
                np.full(int(bad.sum()), top),
                mode="markers",
                name="loss not finite",
                marker={"symbol": "x", "size": 11, "color": "#d62728"},
                customdata=[str(v) for v in loss[bad]],
                hovertemplate="step %{x}: the loss was %{customdata} (not plotted)<extra></extra>",
            )
        )
    layout = {
        "xaxis": {"title": {"text": "step"}},
        # Three significant digits on the ticks: a blown-up run's loss (2e7) otherwise reads 21267947….
        "yaxis": {"title": {"text": "cross-entropy (nats)"}, "type": "log", "tickformat": ".3~g"},
        "legend": {"orientation": "h", "y": 1.02, "x": 1, "xanchor": "right", "yanchor": "bottom"},
    }
    if baseline is not None and np.isfinite(baseline) and baseline > 0:
        layout["shapes"] = [
            {
                "type": "line",
                "xref": "x domain",
                "x0": 0,
                "x1": 1,
                "yref": "y",
                "y0": baseline,
                "y1": baseline,
                "line": {"dash": "dash", "color": PALETTE[7], "width": 1},
            }
        ]
        layout["annotations"] = [
            {
                "text": f"unigram baseline {baseline:.2f}",
                "showarrow": False,
                "xref": "x domain",
                "x": 0,
                "xanchor": "left",
                "yref": "y",
                # On a log axis plotly places a shape at its data value but an annotation at the value's
                # log10: given 7.11 as it is, the label sat at 10^7.11 and stretched the axis to 1e7.
                "y": math.log10(baseline),
                "yanchor": "top",
            }
        ]
    return finish({"data": data, "layout": layout}, title, height)


# The probe grid's geometry, in pixels: the Train page shows it in a column beside the loss chart.
PROBE_GAP = 6  # between panels of a row
PROBE_TITLE = 18  # a panel's title above it
PROBE_COLORBAR = 46  # the colour bar and its ticks on the right
MAX_PROBE_PANEL = 150  # a panel no larger than this, however wide the column: a small model stays small


def probe_attention_figure(
    weights: np.ndarray,
    labels: list[str] | tuple[str, ...],
    title: str,
    ideal: np.ndarray | None = None,
    badges: list[list[str]] | None = None,
    width: int = 520,
) -> go.Figure:
    """The Train page's probe: every layer x head (rows: layers, columns: heads), and for a toy task the
    ideal pattern as one more panel at the end of the first row, drawn at the same size on the same colour
    scale, so a learner sees how far each head is from it.

    Args:
      weights: ``[L, H, T, T]`` attention on the probe (a probe is short: no pooling).
      labels: ``[T]`` the probe's tokens.
      ideal: ``[T, T]`` the task's ideal attention, or None (text tasks).
      badges: ``[L][H]`` text after each panel's name (head-role badges in the replay).
      width: the pixels the figure is drawn in: panels are square at this width, and only as many token
        labels are written as fit side by side (every second or third one otherwise; hover names each).
    """
    check_attention(weights, list(labels), ndim=4)
    weights = np.asarray(weights, np.float32)
    layers, heads, length, _ = weights.shape
    if ideal is not None and np.shape(ideal) != (length, length):
        raise ValueError(f"The ideal pattern is {np.shape(ideal)} but the probe has {length} tokens.")
    names = unique_labels(list(labels))
    font = min(10, token_font(length))
    left = bottom = label_margin(names, font)
    columns = heads + (ideal is not None)
    panel = (width - left - PROBE_COLORBAR - (columns - 1) * PROBE_GAP) / columns
    panel = float(min(MAX_PROBE_PANEL, max(panel, 24)))
    plot_width = columns * panel + (columns - 1) * PROBE_GAP
    plot_height = layers * panel + (layers - 1) * PROBE_TITLE
    # Rotated x labels and stacked y labels each need a line of the font: write every ``every``-th one.
    every = max(1, math.ceil((font + 2) / (panel / length)))
    ticks = {"tickmode": "array", "tickvals": names[::every], "ticktext": names[::every], "tickfont": {"size": font}}
    data, layout, annotations = [], {}, []
    panels = [(layer, head) for layer in range(layers) for head in range(heads)]
    panels += [(0, heads)] if ideal is not None else []
    for index, (layer, head) in enumerate(panels, 1):
        is_ideal = head == heads
        name = "ideal" if is_ideal else f"L{layer + 1} H{head + 1}" + (f" {badges[layer][head]}" if badges else "")
        suffix = "" if index == 1 else str(index)
        x0 = head * (panel + PROBE_GAP) / plot_width
        y1 = 1 - layer * (panel + PROBE_TITLE) / plot_height
        # Rounded into [0, 1]: the last panel's edge computed in floats may land a hair outside.
        domain_x = [max(0.0, round(x0, 6)), min(1.0, round(x0 + panel / plot_width, 6))]
        domain_y = [max(0.0, round(y1 - panel / plot_height, 6)), min(1.0, round(y1, 6))]
        data.append(
            {
                "type": "heatmap",
                "z": np.asarray(ideal if is_ideal else weights[layer, head], np.float32),
                "x": names,
                "y": names,
                "coloraxis": "coloraxis",
                "xaxis": f"x{suffix}",
                "yaxis": f"y{suffix}",
                "hovertemplate": f"{name}<br>%{{y}} → %{{x}}: %{{z:.2f}}<extra></extra>",
            }
        )
        bottom_row = layer == layers - 1 or is_ideal and layers == 1
        layout[f"xaxis{suffix}"] = {
            "type": "category", "domain": domain_x, "anchor": f"y{suffix}", "automargin": False,
            "showticklabels": bottom_row, "tickangle": -90, **ticks,
        }  # fmt: skip
        layout[f"yaxis{suffix}"] = {
            "type": "category", "domain": domain_y, "anchor": f"x{suffix}", "automargin": False,
            "autorange": "reversed", "showticklabels": head == 0, **ticks,
        }  # fmt: skip
        annotations.append(
            {
                "text": f"<b>{name}</b>" if is_ideal else name,
                "showarrow": False,
                "xref": "paper",
                "yref": "paper",
                "x": (domain_x[0] + domain_x[1]) / 2,
                "y": domain_y[1],
                "xanchor": "center",
                "yanchor": "bottom",
                "font": {"size": 11},
            }
        )
    layout.update(
        coloraxis={"colorscale": WEIGHT_SCALE, "cmin": 0.0, "cmax": 1.0, "colorbar": {"thickness": 10, "len": 1.0}},
        annotations=annotations,
        margin={"l": left, "r": width - left - plot_width, "t": 40 + PROBE_TITLE, "b": bottom},
    )
    height = int(40 + PROBE_TITLE + plot_height + bottom)
    return finish({"data": data, "layout": layout}, title, height)


def telemetry_figure(
    steps: list[int] | np.ndarray,
    groups: tuple[str, ...] | list[str],
    grad_norms: np.ndarray,
    update_ratios: np.ndarray,
) -> go.Figure:
    """Per-group gradient norm and update/weight ratio over steps (two panels, one line per group).

    A healthy run keeps update/weight ratios around 1e-3; far above means the learning rate is too high
    for that group, far below means it barely learns.

    Built as a plain dict (see ``finish``): it is redrawn every couple of seconds while a run goes on.
    """
    steps = np.asarray(steps)
    grad_norms, update_ratios = np.asarray(grad_norms), np.asarray(update_ratios)
    if grad_norms.shape != (len(steps), len(groups)) or update_ratios.shape != grad_norms.shape:
        raise ValueError(
            f"Telemetry must be [steps, groups] = ({len(steps)}, {len(groups)}); got {grad_norms.shape} and "
            f"{update_ratios.shape}."
        )
    data = []
    for index, group in enumerate(groups):
        colour = PALETTE[index % len(PALETTE)]
        for col, values, name in ((1, grad_norms[:, index], "grad norm"), (2, update_ratios[:, index], "ratio")):
            x, y = _thin(steps, values.astype(np.float64))
            axis = "" if col == 1 else str(col)
            data.append(
                _line(
                    x,
                    np.where(np.isfinite(y) & (y > 0), y, np.nan),
                    mode="lines",
                    name=group,
                    legendgroup=group,
                    showlegend=col == 1,
                    line={"color": colour, "width": 1.3},
                    hovertemplate=f"{group} · step %{{x}}: {name} %{{y:.3g}}<extra></extra>",
                    xaxis=f"x{axis}",
                    yaxis=f"y{axis}",
                )
            )
    # The two panels side by side, as make_subplots(rows=1, cols=2, subplot_titles=...) lays them out.
    layout = {
        "xaxis": {"anchor": "y", "domain": [0.0, 0.45], "title": {"text": "step"}},
        "yaxis": {"anchor": "x", "domain": [0.0, 1.0], "type": "log"},
        "xaxis2": {"anchor": "y2", "domain": [0.55, 1.0], "title": {"text": "step"}},
        "yaxis2": {"anchor": "x2", "domain": [0.0, 1.0], "type": "log"},
        "annotations": [
            {
                "text": text,
                "font": {"size": 16},
                "showarrow": False,
                "x": x,
                "xanchor": "center",
                "xref": "paper",
                "y": 1.0,
                "yanchor": "bottom",
                "yref": "paper",
            }
            for text, x in (("gradient norm", 0.225), ("update / weight ratio", 0.775))
        ],
        "margin": {"l": 10, "r": 10, "t": 70, "b": 10},  # room for the panel titles under the figure title
    }
    return finish({"data": data, "layout": layout}, "Gradient telemetry per parameter group", 320)


def closeness_figure(closeness: np.ndarray, title: str = "Attention vs the ideal pattern") -> go.Figure:
    """``[L, H]`` share of attention on the right keys, per layer and head (1 = exactly the ideal)."""
    closeness = np.asarray(closeness, np.float32)
    if closeness.ndim != 2:
        raise ValueError(f"Closeness is [layers, heads]; got shape {closeness.shape}.")
    fig = layer_head_grid(
        closeness,
        1.0,
        "on target",
        # Formatted in the browser: rounding float32 here would still print 0.9800000190734863.
        texttemplate="%{z:.2f}",
        textfont={"size": 13},
        hovertemplate="%{y} %{x}: %{z:.1%} of attention on the ideal keys<extra></extra>",
    )
    layers = closeness.shape[0]
    return finish(fig, title, 120 + 40 * layers)


def closeness_timeline_figure(steps: list[int] | tuple | np.ndarray, closeness: np.ndarray) -> go.Figure:
    """Each head's closeness to the ideal pattern over the steps (``[E, L, H]`` at ``E`` steps): the step
    where a line shoots up is where that head "clicks"."""
    steps, closeness = np.asarray(steps), np.asarray(closeness, np.float32)
    if closeness.ndim != 3 or closeness.shape[0] != len(steps):
        raise ValueError(f"Closeness over time is [steps, layers, heads] with one row per step; got {closeness.shape}.")
    fig = go.Figure()
    _, layers, heads = closeness.shape
    for layer in range(layers):
        for head in range(heads):
            name = head_label(layer, head)
            fig.add_trace(
                go.Scatter(
                    x=steps,
                    y=closeness[:, layer, head],
                    mode="lines+markers",
                    name=name,
                    marker={"size": 4},
                    line={"color": PALETTE[(layer * heads + head) % len(PALETTE)], "width": 1.5,
                          "dash": "solid" if layer % 2 == 0 else "dash"},
                    hovertemplate=f"{name} · step %{{x}}: %{{y:.0%}} of attention on the ideal keys<extra></extra>",
                )
            )  # fmt: skip
    fig.update_xaxes(title="step")
    fig.update_yaxes(title="on target", range=[0, 1.02])
    return finish(fig, "Each head's closeness to the ideal pattern over training", 300)


def embedding_plane_figure(points: np.ndarray, labels: list[str] | tuple[str, ...], title: str) -> go.Figure:
    """Tokens on the first two principal components of their embedding rows, labelled."""
    points = np.asarray(points, np.float32)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"Points must be [N, 2]; got {points.shape}.")
    check_labels(points.shape[0], list(labels), "The embedding plane")
    fig = go.Figure(
        go.Scatter(
            x=points[:, 0],
            y=points[:, 1],
            mode="markers+text",
            text=list(labels),
            textposition="top center",
            marker={"size": 8, "color": PALETTE[0], "opacity": 0.8},
            hovertemplate="%{text}<extra></extra>",
        )
    )
    fig.update_xaxes(title="PC1")
    fig.update_yaxes(title="PC2")
    return finish(fig, title, 380)
