"""Model figures: the forward pass as a flow of tensor shapes, and parameter counts per module."""

from __future__ import annotations

import plotly.graph_objects as go

from explorer.figures import PALETTE, finish
from explorer.interpret.shapes import ShapeStep


def architecture_figure(steps: list[ShapeStep]) -> go.Figure:
    """The forward pass top to bottom, one box per step with the tensor shape it produces.

    Boxes are coloured by stage (input, layer 1, ..., output); hover repeats operation and shape.
    """
    if not steps:
        raise ValueError("There are no steps to draw.")
    stages = list(dict.fromkeys(step.stage for step in steps))
    fig = go.Figure()
    for index, stage in enumerate(stages):
        rows = [(i, s) for i, s in enumerate(steps) if s.stage == stage]
        fig.add_trace(
            go.Scatter(
                x=[0.0] * len(rows),
                y=[i for i, _ in rows],
                mode="markers+text",
                marker={"symbol": "square", "size": 14, "color": PALETTE[index % len(PALETTE)]},
                text=[f"{s.operation}   {s.symbol} = {tuple(s.shape)}" for _, s in rows],
                textposition="middle right",
                textfont={"size": 13},
                name=stage,
                hovertext=[f"{stage}: {s.operation}<br>{s.symbol} = {tuple(s.shape)}" for _, s in rows],
                hovertemplate="%{hovertext}<extra></extra>",
            )
        )
    for i in range(len(steps) - 1):
        fig.add_annotation(
            x=0.0,
            y=i + 1,
            ax=0.0,
            ay=i,
            xref="x",
            yref="y",
            axref="x",
            ayref="y",
            showarrow=True,
            arrowhead=2,
            arrowsize=1,
            arrowwidth=1,
            arrowcolor="#888",
            text="",
        )
    fig.update_xaxes(visible=False, range=[-0.05, 1.0])
    # An explicit range, half a step beyond the first and last box: autorange padded the top by a band of
    # empty plot as tall as several steps.
    fig.update_yaxes(visible=False, range=[len(steps) - 0.5, -0.5])
    fig.update_layout(legend={"orientation": "h", "y": 1.02, "yanchor": "bottom"})
    return finish(fig, "The forward pass, with the shape of the data at every step", 90 + 30 * len(steps))


def parameter_figure(rows: list[tuple[str, str, int]]) -> go.Figure:
    """Parameters per module as horizontal bars, coloured by group (embedding, layer 1, ...)."""
    if not rows:
        raise ValueError("There are no parameters to draw.")
    total = sum(count for _, _, count in rows)
    groups = list(dict.fromkeys(group for group, _, _ in rows))
    fig = go.Figure()
    for index, group in enumerate(groups):
        members = [(module, count) for g, module, count in rows if g == group]
        fig.add_trace(
            go.Bar(
                y=[f"{group} · {module}" for module, _ in members],
                x=[count for _, count in members],
                orientation="h",
                name=group,
                marker_color=PALETTE[index % len(PALETTE)],
                customdata=[count / total for _, count in members],
                hovertemplate="%{y}: %{x:,} parameters (%{customdata:.1%})<extra></extra>",
            )
        )
    fig.update_yaxes(type="category", autorange="reversed")
    fig.update_xaxes(title="parameters")
    fig.update_layout(legend={"orientation": "h", "y": 1.02, "yanchor": "bottom"})
    return finish(fig, f"Parameters per module ({total:,} in total)", 80 + 22 * len(rows))
