"""Figures that measure heads: how focused each head's attention is (entropy per head and per query),
and what switching heads off does to the final representation and the predictions."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from explorer.figures import (
    PALETTE,
    finish,
    layer_head_grid,
)
from explorer.interpret.analysis import (
    AblationEffect,
    unique_labels,
)


def entropy_figure(entropy: np.ndarray, max_bits: float) -> go.Figure:
    """Mean attention entropy per head ``[L, H]`` in bits; 0 = focused on one token, ``max_bits`` = uniform."""
    entropy = np.asarray(entropy, np.float32)
    if entropy.ndim != 2:
        raise ValueError(f"Expected per-head entropy of shape [L, H], got {entropy.shape}.")
    fig = layer_head_grid(
        entropy,
        max(max_bits, 1e-6),
        "bits",
        # Formatted in the browser: rounding float32 here would still print 1.9199999570846558.
        texttemplate="%{z:.2f}",
        hovertemplate="%{y} %{x}: %{z:.2f} bits<extra></extra>",
    )
    layers = entropy.shape[0]
    return finish(fig, f"Mean attention entropy per head (uniform = {max_bits:.2f} bits)", 120 + 50 * layers)


def entropy_per_query_figure(entropy: np.ndarray, labels: list[str], head_names: list[str]) -> go.Figure:
    """Entropy (bits) of each query's attention for the chosen heads ``[h, T]``; hover names the token."""
    entropy = np.asarray(entropy, np.float32)
    if entropy.ndim != 2 or entropy.shape[0] != len(head_names) or entropy.shape[1] != len(labels):
        raise ValueError(
            f"Entropy of shape {entropy.shape} does not match {len(head_names)} heads x {len(labels)} tokens."
        )
    fig = go.Figure()
    x = unique_labels(labels)
    for i, name in enumerate(head_names):
        fig.add_trace(
            go.Bar(
                x=x,
                y=entropy[i],
                name=name,
                marker_color=PALETTE[i % len(PALETTE)],
                hovertemplate=f"{name}<br>%{{x}}: %{{y:.2f}} bits<extra></extra>",
            )
        )
    fig.update_xaxes(type="category", tickangle=-60, title="query token", showticklabels=len(labels) <= 96)
    fig.update_yaxes(title="entropy (bits)")
    fig.update_layout(barmode="group", legend={"orientation": "h", "y": 1.02, "yanchor": "bottom"})
    return finish(fig, "Entropy of each query's attention", 320)


def ablation_figure(effect: AblationEffect, labels: list[str], heads_off: list[str]) -> go.Figure:
    """Per token: relative change of the final representation and KL divergence of the predictions."""
    change = np.asarray(effect.hidden_change)
    if change.shape[0] != len(labels):
        raise ValueError(f"The ablation covers {change.shape[0]} tokens but {len(labels)} labels were given.")
    x = unique_labels(labels)
    hover = [f"{name}<br>top prediction changed" if c else name for name, c in zip(x, effect.top_changed, strict=True)]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(
        go.Bar(
            x=x,
            y=change,
            name="|Δh| / |h| (final representation)",
            marker_color=PALETTE[0],
            hovertext=hover,
            hovertemplate="%{hovertext}: %{y:.1%}<extra>|Δh| / |h|</extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=effect.prediction_kl,
            name="KL(before ‖ after), bits",
            mode="lines+markers",
            marker_color=PALETTE[3],
            hovertext=hover,
            hovertemplate="%{hovertext}: %{y:.2f} bits<extra>KL</extra>",
        ),
        secondary_y=True,
    )
    fig.update_xaxes(type="category", tickangle=-60, showticklabels=len(labels) <= 96)
    fig.update_yaxes(title="relative change", tickformat=".0%", secondary_y=False, rangemode="tozero")
    # Its own round ticks, not ticks forced onto the left axis's grid lines (which read 0.98, 1.96, …).
    fig.update_yaxes(title="KL (bits)", secondary_y=True, rangemode="tozero", tickmode="auto", nticks=6, showgrid=False)
    fig.update_layout(legend={"orientation": "h", "y": 1.02, "yanchor": "bottom"})
    return finish(fig, "Effect of switching off " + (", ".join(heads_off) if heads_off else "no heads"), 340)
