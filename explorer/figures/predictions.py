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
            # Printed beside each bar: the numbers are what a reader compares, not only on hover.
            text=[percent(p) for p in probs],
            textposition="outside",
            cliponaxis=False,
            hovertemplate="%{y}: %{x:.1%}<extra>" + series + "</extra>",
        )
    )
    fig.update_yaxes(type="category", autorange="reversed")
    # Room right of 100% for a printed label; ticks stop at 100%.
    fig.update_xaxes(title="probability", tickformat=".0%", range=[0, 1.18], tickvals=[0, 0.25, 0.5, 0.75, 1])
    return finish(fig, title, 90 + 28 * max(len(rows), 3))


def percent(probability: float) -> str:
    """A probability as people read it: ``"20%"``, ``"0.4%"`` below 1%, ``"<0.1%"`` below that."""
    if probability >= 0.01:
        return f"{probability:.0%}"
    return f"{probability:.1%}" if probability >= 0.001 else "<0.1%"


def mask_context(spans: list[str], position: int, width: int = 3) -> str:
    """The text around one masked position, the mask drawn as ``▢``: ``"…opened the ▢ and walked…"``.

    ``spans``: the text each token covers, spaces included (``explorer.pipeline.token_texts(strip=False)``).
    """
    if not 0 <= position < len(spans):
        raise ValueError(f"Position {position} is outside the text (0..{len(spans) - 1}).")
    before = "".join(spans[max(0, position - width) : position]).lstrip()
    after = "".join(spans[position + 1 : position + 1 + width]).rstrip()
    text = f"{before} ▢{after}".strip() if before else f"▢{after}"
    starts = any(s.strip() for s in spans[: max(0, position - width)])
    ends = any(s.strip() for s in spans[position + 1 + width :])
    return ("…" if starts else "") + " ".join(text.split()) + ("…" if ends else "")


def fill_table(fills: list[tuple[int, list[tuple[str, float]]]], spans: list[str]) -> dict[str, list]:
    """Every mask's guesses as one table (columns of equal length), for texts with many masks: the mask's
    number and position, its context, the best guess and its probability, and the other guesses with theirs.

    ``fills``: ``(position, [(token text, probability), ...])`` per mask, most probable first.
    """
    table: dict[str, list] = {"mask": [], "position": [], "context": [], "best guess": [], "probability": []}
    table["other guesses"] = []
    for number, (position, guesses) in enumerate(fills, start=1):
        if not guesses:
            raise ValueError(f"Mask {number} (position {position}) has no guesses.")
        table["mask"].append(number)
        table["position"].append(position)
        table["context"].append(mask_context(spans, position))
        table["best guess"].append(guesses[0][0].strip() or guesses[0][0])
        table["probability"].append(float(guesses[0][1]))
        table["other guesses"].append(" · ".join(f"{t.strip() or t} {percent(p)}" for t, p in guesses[1:]))
    return table
