"""Interpretability figures: head roles and their timeline over training, attention rollout, the logit
lens, the part-of-speech probe, and one head's query/key map.

Numbers shown are rounded for reading (two or three significant digits, weights as 0.00-1.00); the
exact values stay in the arrays the pages export.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from explorer.figures import (
    GRID_COLOUR,
    PALETTE,
    WEIGHT_SCALE,
    check_labels,
    finish,
    heatmap_height,
    layer_head_grid,
)
from explorer.interpret.analysis import head_label, unique_labels
from explorer.interpret.head_roles import ROLES, role_badge
from explorer.interpret.qk_map import QueryKeyMap
from explorer.text.tokenizer import display_text

# One colour per universal tag, fixed so a tag keeps its colour from sentence to sentence.
TAG_COLOURS = {
    "NOUN": PALETTE[0],
    "VERB": PALETTE[3],
    "ADJ": PALETTE[2],
    "ADV": PALETTE[8],
    "PRON": PALETTE[4],
    "DET": PALETTE[1],
    "ADP": PALETTE[9],
    "NUM": PALETTE[5],
    "CONJ": PALETTE[6],
    "PRT": "#aec7e8",
    ".": PALETTE[7],
    "X": "#393b79",
}
# Category axes thin their tick labels when they crowd; every token keeps its label (dtick 1) up to
# this many, past which they could not be read anyway and hover names them.
MAX_LABELLED_TOKENS = 96


def _token_axis(count: int) -> dict:
    """A category axis with one tick label per token (up to ``MAX_LABELLED_TOKENS``)."""
    return {"type": "category", "dtick": 1, "showticklabels": count <= MAX_LABELLED_TOKENS}


# ----------------------------------------------------------------------------------------------------
# Head roles


def head_roles_figure(roles: list[list[dict]]) -> go.Figure:
    """Every head as a cell (rows: layers, columns: heads) showing its role badge, coloured by its score.

    ``roles`` is ``explorer.interpret.head_roles.label_heads``'s output; hover lists every role's score.
    """
    if not roles or not roles[0]:
        raise ValueError("There are no heads to show.")
    layers, heads = len(roles), len(roles[0])
    if any(len(row) != heads for row in roles):
        raise ValueError("Every layer must list the same number of heads.")
    score = np.array([[cell["score"] for cell in row] for row in roles])  # [L, H]
    badge = [[role_badge(cell["role"]) for cell in row] for row in roles]
    hover = [
        [
            f"{head_label(ly, h)}: {cell['role']} ({cell['score']:.2f})<br>"
            + "<br>".join(f"{name}: {cell['scores'][name]:.2f}" for name in ROLES)
            for h, cell in enumerate(row)
        ]
        for ly, row in enumerate(roles)
    ]
    fig = layer_head_grid(
        score,
        1.0,
        "score",
        text=badge,
        texttemplate="%{text}",
        hovertext=hover,
        hovertemplate="%{hovertext}<extra></extra>",
    )
    return finish(fig, "What each head does (its role and how strongly)", 120 + 50 * layers)


def role_timeline_figure(
    steps: Sequence[int], scores: np.ndarray, title: str, roles: list[list[dict]] | None = None
) -> go.Figure:
    """Role scores over training: x is the training step, one line per head.

    Args:
      steps: ``[S]`` training step of each snapshot.
      scores: ``[S, L, H]`` (e.g. ``explorer.interpret.head_roles.scores_over_snapshots``).
      title: what the scores are (which role).
      roles: the heads' current roles, to name each line with its badge.
    """
    scores = np.asarray(scores, np.float64)
    if scores.ndim != 3 or scores.shape[0] != len(steps):
        raise ValueError(f"Expected scores of shape [S, L, H] with S = {len(steps)} steps, got {scores.shape}.")
    layers, heads = scores.shape[1:]
    fig = go.Figure()
    for layer in range(layers):
        for head in range(heads):
            name = head_label(layer, head)
            if roles is not None:
                name += " " + role_badge(roles[layer][head]["role"])
            fig.add_trace(
                go.Scatter(
                    x=list(steps),
                    y=scores[:, layer, head],
                    mode="lines+markers",
                    name=name,
                    line={
                        "color": PALETTE[(layer * heads + head) % len(PALETTE)],
                        "dash": "solid" if layer % 2 == 0 else "dot",
                    },
                    hovertemplate=f"{name}<br>step %{{x}}: %{{y:.2f}}<extra></extra>",
                )
            )
    fig.update_xaxes(title="training step")
    fig.update_yaxes(title="score", range=[0, 1.02], tickformat=".2f")
    fig.update_layout(legend={"orientation": "h", "y": 1.02, "yanchor": "bottom"})
    return finish(fig, title, 360)


# ----------------------------------------------------------------------------------------------------
# Attention rollout


def rollout_figure(rollout: np.ndarray, labels: list[str]) -> go.Figure:
    """Rollout ``[T, T]``: top-layer positions down, input tokens across, every token labelled."""
    rollout = np.asarray(rollout, np.float64)
    if rollout.ndim != 2 or rollout.shape[0] != rollout.shape[1]:
        raise ValueError(f"Rollout is a square [T, T] matrix, got shape {rollout.shape}.")
    check_labels(rollout.shape[0], labels, "The rollout")
    axis = unique_labels(labels)
    fig = go.Figure(
        go.Heatmap(
            z=rollout,
            x=axis,
            y=axis,
            zmin=0.0,
            zmax=1.0,
            colorscale=WEIGHT_SCALE,
            colorbar={"title": {"text": "share"}, "thickness": 12},
            hovertemplate="%{y} ← %{x}: %{z:.2f}<extra></extra>",
        )
    )
    fig.update_xaxes(title="input token", tickangle=-60, **_token_axis(len(axis)))
    fig.update_yaxes(title="position at the top layer", autorange="reversed", **_token_axis(len(axis)))
    title = "Attention rollout: how much of each position traces back to each input token"
    return finish(fig, title, heatmap_height(len(axis), minimum=300, maximum=760))


# ----------------------------------------------------------------------------------------------------
# Logit lens


# Viridis is dark below about this value and light above: cell text flips from white to black there.
LIGHT_FROM = 0.6


def cell_labels(values: np.ndarray, x: list[str], y: list[str], texts: list[list[str]]) -> go.Scatter:
    """Each cell's text of a 0-1 Viridis heatmap, 12 px, white on its dark cells and black on its light
    ones (a heatmap's own cell text takes the figures' mid-grey, which reads on neither)."""
    values = np.asarray(values, np.float64)
    cells = [(i, j) for i in range(len(y)) for j in range(len(x))]
    return go.Scatter(
        x=[x[j] for _, j in cells],
        y=[y[i] for i, _ in cells],
        text=[texts[i][j] for i, j in cells],
        mode="text",
        textfont={"size": 12, "color": ["#000000" if values[i, j] >= LIGHT_FROM else "#ffffff" for i, j in cells]},
        hoverinfo="skip",
        showlegend=False,
    )


def _check_lens(rows: list[list[dict]], snapshot_names: list[str], labels: list[str]) -> None:
    if len(rows) != len(snapshot_names):
        raise ValueError(f"{len(rows)} lens rows but {len(snapshot_names)} snapshot names; give one per snapshot.")
    for row in rows:
        check_labels(len(row), labels, "The logit lens")


def logit_lens_figure(rows: list[list[dict]], snapshot_names: list[str], labels: list[str]) -> go.Figure:
    """The most probable token at every depth (rows) and position (columns), coloured by its probability.

    ``rows`` is ``explorer.interpret.logit_lens.lens_rows``'s output.
    """
    _check_lens(rows, snapshot_names, labels)
    axis = unique_labels(labels)
    top = [[display_text(cell["token"]) for cell in row] for row in rows]  # [S][T]
    probability = np.array([[cell["probability"] for cell in row] for row in rows])  # [S, T]
    fig = go.Figure(
        go.Heatmap(
            z=probability,
            x=axis,
            y=list(snapshot_names),
            zmin=0.0,
            zmax=1.0,
            colorscale=WEIGHT_SCALE,
            text=top,
            colorbar={"title": {"text": "probability"}, "thickness": 12},
            hovertemplate="%{y}<br>%{x}: %{text} (%{z:.2f})<extra></extra>",
        )
    )
    if len(axis) <= 32:
        fig.add_trace(cell_labels(probability, axis, list(snapshot_names), top))
    fig.update_xaxes(tickangle=-60, **_token_axis(len(axis)))
    fig.update_yaxes(type="category", autorange="reversed")
    return finish(fig, "Logit lens: the most likely token at every depth", 140 + 34 * len(snapshot_names))


def logit_lens_position_figure(
    rows: list[list[dict]], position: int, snapshot_names: list[str], labels: list[str]
) -> go.Figure:
    """For one position: the top-k tokens (columns, most likely first) at every depth (rows)."""
    _check_lens(rows, snapshot_names, labels)
    if not 0 <= position < len(labels):
        raise ValueError(f"Position {position} is outside the sentence (0..{len(labels) - 1}).")
    cells = [row[position]["top"] for row in rows]  # [S][k]
    k = len(cells[0])
    tokens = [[display_text(entry["token"]) for entry in cell] for cell in cells]  # [S][k]
    probability = np.array([[entry["probability"] for entry in cell] for cell in cells])  # [S, k]
    ranks = [f"#{r + 1}" for r in range(k)]
    fig = go.Figure(
        go.Heatmap(
            z=probability,
            x=ranks,
            y=list(snapshot_names),
            zmin=0.0,
            zmax=1.0,
            colorscale=WEIGHT_SCALE,
            text=tokens,
            colorbar={"title": {"text": "probability"}, "thickness": 12},
            hovertemplate="%{y} · %{x}: %{text} (%{z:.2f})<extra></extra>",
        )
    )
    fig.add_trace(cell_labels(probability, ranks, list(snapshot_names), tokens))
    fig.update_xaxes(type="category", title="rank")
    fig.update_yaxes(type="category", autorange="reversed")
    title = f"Logit lens at {unique_labels(labels)[position]}: top tokens at every depth"
    return finish(fig, title, 140 + 34 * len(snapshot_names))


# ----------------------------------------------------------------------------------------------------
# Part-of-speech probe


def probe_accuracy_figure(
    accuracy: np.ndarray, baseline: float, snapshot_names: list[str], given_accuracy: np.ndarray | None = None
) -> go.Figure:
    """Held-out accuracy of the probe at every snapshot (and, when given, of the probe given the
    embedding), against the token-id baseline (a flat line)."""
    names = list(snapshot_names)
    lines = [("linear probe", accuracy)]
    if given_accuracy is not None:
        lines.append(("linear probe given the embedding", given_accuracy))
    fig = go.Figure()
    for index, (name, values) in enumerate(lines):
        values = np.asarray(values, np.float64)
        if values.shape != (len(names),):
            raise ValueError(f"{values.shape} accuracies but {len(names)} snapshot names; give one per snapshot.")
        fig.add_trace(
            go.Scatter(
                x=names,
                y=values,
                mode="lines+markers",
                name=name,
                line={"color": PALETTE[index]},
                hovertemplate=f"%{{x}}: %{{y:.1%}}<extra>{name}</extra>",
            )
        )
    fig.add_trace(
        go.Scatter(
            x=names,
            y=[baseline] * len(names),
            mode="lines",
            name="most frequent tag of the token",
            line={"color": PALETTE[7], "dash": "dash"},
            hovertemplate=f"baseline: {baseline:.1%}<extra></extra>",
        )
    )
    fig.update_xaxes(type="category", tickangle=-30)
    fig.update_yaxes(title="held-out accuracy", tickformat=".0%", range=[0, 1])
    fig.update_layout(legend={"orientation": "h", "y": 1.02, "yanchor": "bottom"})
    return finish(fig, "Part of speech: how well a linear probe reads it at each depth", 360)


NO_TAG = "no tag"  # the legend entry of tokens the probe does not tag ([CLS], [SEP], whitespace)


def tag_strip_figure(
    labels: list[str], tags: list[str | None], confidence: np.ndarray, snapshot_name: str
) -> go.Figure:
    """The sentence as a strip of tokens, each coloured by the tag the probe gives it; one legend entry
    per tag, hover ``token: tag (probability)``. A None tag (a token the probe does not tag) is drawn as a
    faint "no tag" bar."""
    confidence = np.asarray(confidence, np.float64)
    check_labels(len(tags), labels, "The tags")
    check_labels(len(confidence), labels, "The tag probabilities")
    axis = unique_labels(labels)
    fig = go.Figure()
    for tag in dict.fromkeys(tags):
        where = [i for i, t in enumerate(tags) if t == tag]
        hover = f"%{{x}}: {tag} (%{{customdata:.2f}})" if tag is not None else "%{x}: no tag (not a word of the text)"
        fig.add_trace(
            go.Bar(
                x=[axis[i] for i in where],
                y=[1] * len(where),
                name=NO_TAG if tag is None else tag,
                marker_color=GRID_COLOUR if tag is None else TAG_COLOURS.get(tag, PALETTE[7]),
                text=[labels[i] for i in where],
                textposition="inside",
                insidetextanchor="middle",
                customdata=confidence[where],
                hovertemplate=hover + "<extra></extra>",
            )
        )
    fig.update_xaxes(categoryorder="array", categoryarray=axis, tickangle=-60, **_token_axis(len(axis)))
    fig.update_yaxes(visible=False, range=[0, 1])
    fig.update_layout(bargap=0.05, legend={"orientation": "h", "y": 1.02, "yanchor": "bottom"})
    return finish(fig, f"Part of speech read at {snapshot_name}", 220)


# ----------------------------------------------------------------------------------------------------
# Query/key map


def query_key_map_figure(qk: QueryKeyMap, labels: list[str], head_name: str) -> go.Figure:
    """One head's queries and keys in one plane; a line joins each query to the key it weights most.

    Hover names the token (and for a query, its strongest key and that weight).
    """
    length = qk.queries.shape[0]
    check_labels(length, labels, "The query/key map")
    axis = unique_labels(labels)
    fig = go.Figure()
    edges_x: list[float | None] = []
    edges_y: list[float | None] = []
    for query, key in enumerate(qk.strongest):
        edges_x += [float(qk.queries[query, 0]), float(qk.keys[key, 0]), None]
        edges_y += [float(qk.queries[query, 1]), float(qk.keys[key, 1]), None]
    fig.add_trace(
        go.Scatter(
            x=edges_x,
            y=edges_y,
            mode="lines",
            name="query → strongest key",
            line={"color": "rgba(128,128,128,0.5)", "width": 1},
            hoverinfo="skip",
        )
    )
    text_mode = "markers+text" if length <= 40 else "markers"
    query_hover = [
        f"query {axis[q]}<br>strongest key {axis[int(k)]} ({w:.2f})"
        for q, (k, w) in enumerate(zip(qk.strongest, qk.weights, strict=True))
    ]
    for points, name, hover, symbol, colour in (
        (qk.queries, "queries", query_hover, "circle", PALETTE[0]),
        (qk.keys, "keys", [f"key {a}" for a in axis], "diamond", PALETTE[1]),
    ):
        fig.add_trace(
            go.Scatter(
                x=points[:, 0],
                y=points[:, 1],
                mode=text_mode,
                name=name,
                text=labels,
                textposition="top center",
                marker={"symbol": symbol, "size": 9, "color": colour},
                hovertext=hover,
                hovertemplate="%{hovertext}<extra></extra>",
            )
        )
    first, second = qk.explained
    fig.update_xaxes(title=f"PC1 ({first:.0%} of the variance)", zeroline=False)
    fig.update_yaxes(title=f"PC2 ({second:.0%})", zeroline=False, scaleanchor="x", scaleratio=1)
    fig.update_layout(legend={"orientation": "h", "y": 1.02, "yanchor": "bottom"})
    return finish(fig, f"{head_name}: queries and keys in one plane", 460)
