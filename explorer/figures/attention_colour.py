"""How attention heatmaps are coloured on long texts, and where the model's training windows end in them.

By the weight on a fixed 0-1 scale, or relative to uniform attention (``analysis.relative_to_uniform``): on a long
text a broad head's weights are all near 1/T, one dark colour on the 0-1 scale; relative to uniform they read as
grey and the keys a head singles out stand out. Used by the heatmaps of ``explorer.figures.attention``.
"""

from __future__ import annotations

import numpy as np

from explorer.figures import SIGNED_SCALE, WEIGHT_SCALE
from explorer.interpret.analysis import RELATIVE_LIMIT, apply_threshold, relative_to_uniform

WEIGHT, RELATIVE = "weight 0–1", "relative to uniform"
COLOURINGS = (WEIGHT, RELATIVE)
RELATIVE_FROM = 64  # tokens: above this the relative colouring is the default


def default_colouring(length: int) -> str:
    """The colouring a text of ``length`` tokens opens with."""
    return RELATIVE if length > RELATIVE_FROM else WEIGHT


def colour_axis(colouring: str) -> dict:
    """The shared colour axis of a colouring: 0-1 Viridis, or diverging around uniform (grey) with the
    ratio written on the colour bar."""
    if colouring == WEIGHT:
        return {"colorscale": WEIGHT_SCALE, "cmin": 0.0, "cmax": 1.0, "colorbar": {"title": {"text": "weight"}}}
    if colouring != RELATIVE:
        raise ValueError(f"Colouring must be one of {COLOURINGS}, got {colouring!r}.")
    ticks = np.arange(-RELATIVE_LIMIT, RELATIVE_LIMIT + 1, 3)
    names = [("uniform" if t == 0 else f"{2**t:.0f}×" if t > 0 else f"1/{2**-t:.0f}×") for t in ticks]
    return {
        "colorscale": SIGNED_SCALE,
        "cmin": -RELATIVE_LIMIT,
        "cmax": RELATIVE_LIMIT,
        "colorbar": {"title": {"text": "× uniform"}, "tickvals": ticks.tolist(), "ticktext": names},
    }


def coloured(
    weights: np.ndarray, colouring: str, threshold: float = 0.0, causal: bool = False, start: int = 0, total: int = 0
) -> tuple[np.ndarray, np.ndarray | None, str]:
    """What a heatmap of ``[..., Q, K]`` weights colours (``z``), what its hover reads (``customdata``: the
    weight and its ratio to uniform, or None when z is the weight), and that hover's number template.
    ``start``/``total``: the window's first position and the sentence's length (for the keys a query had)."""
    weights = np.asarray(weights, np.float32)
    shown = apply_threshold(weights, threshold) if threshold > 0 else weights
    if colouring == WEIGHT:
        return shown, None, "%{z:.2f}"
    if colouring != RELATIVE:
        raise ValueError(f"Colouring must be one of {COLOURINGS}, got {colouring!r}.")
    total = max(total, weights.shape[-1])
    ratio = np.exp2(relative_to_uniform(weights, causal, start, total, limit=None))  # weight x keys, for hover
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(np.isnan(shown), np.nan, np.clip(np.log2(ratio), -RELATIVE_LIMIT, RELATIVE_LIMIT))
    customdata = np.stack([weights, ratio], axis=-1).astype(np.float32)
    return z.astype(np.float32), customdata, "%{customdata[0]:.2f} (%{customdata[1]:.2g}× uniform)"


def window_lines(trained: int | None, start: int, count: int, x: str = "x", y: str = "y") -> list[dict]:
    """Dashed lines (a query row and a key column) where the model's training windows end, when that
    position falls inside the ``count`` positions shown from ``start``: past it the model meets positions
    it never saw in training (``explorer.model.bundle.training_window``)."""
    if trained is None or not 0 < trained - start < count:
        return []
    at = trained - start - 0.5  # between the last trained position and the first untrained one
    lines = []
    # A white dash over a dark line: visible on every colour of both scales (a red one vanished on red cells).
    for line in ({"color": "#1a1a1a", "width": 3}, {"color": "#ffffff", "width": 1.5, "dash": "dash"}):
        style = {"type": "line", "line": line, "layer": "above", "xref": x, "yref": y}
        lines += [
            {**style, "x0": at, "x1": at, "y0": -0.5, "y1": count - 0.5},
            {**style, "x0": -0.5, "x1": count - 0.5, "y0": at, "y1": at},
        ]
    return lines
