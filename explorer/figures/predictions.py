"""The model's top guesses for one position as bars (the Attention page's prediction panel, Fill mask)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from explorer.figures import (
    PALETTE,
    finish,
)


def predictions_figure(
    names: list[str], probs: np.ndarray, title: str, ablated: bool = False, series: str | None = None
) -> go.Figure:
    """Top predictions for one position as horizontal bars, most likely on top; hover shows the token.

    ``series`` names the bars in the hover (default: "all heads", or "heads switched off" when ``ablated``).
    """
    probs = np.asarray(probs, np.float32)
    if len(names) != len(probs):
        raise ValueError(f"{len(names)} predicted tokens but {len(probs)} probabilities; give one per token.")
    series = series or ("heads switched off" if ablated else "all heads")
    rows = [f"{i + 1}. {name}" for i, name in enumerate(names)]  # unique, ranked
    fig = go.Figure(
        go.Bar(
            y=rows,
            x=probs,
            orientation="h",
            name=series,
            marker_color=PALETTE[3] if ablated else PALETTE[0],
            hovertemplate="%{y}: %{x:.1%}<extra>" + series + "</extra>",
        )
    )
    fig.update_yaxes(type="category", autorange="reversed")
    fig.update_xaxes(title="probability", tickformat=".0%", range=[0, 1])
    return finish(fig, title, 90 + 28 * max(len(rows), 3))
