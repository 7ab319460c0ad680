"""The head view as BertViz draws it: queries in a column on the left, keys on the right, a line per weight;
hovering a token shows only its lines.

A small self-contained HTML/SVG document (no script, nothing fetched: the app may run offline), which the
page shows in an iframe (Streamlit's sanitised HTML drops SVG). The hover is CSS alone: every line carries
the classes of its query and key (``q3 k5``), and one rule per token fades every other line while that
token is hovered (``:has``, in every current browser). Each line's ``<title>`` is its tooltip:
``L1 H2: 3 ␣cat → 2 ␣the: 0.45``. Token text is the user's: every piece of it is HTML-escaped.
"""

from __future__ import annotations

import hashlib
import html

import numpy as np

from explorer.figures import PALETTE, TEXT_COLOUR
from explorer.interpret.analysis import HeadViewLines

ROW_PX = 20  # one token per row
TOP_PX = 34  # the legend and the column titles
TOKEN_PX = 150  # room for a token's text beside each column
GAP_PX = 260  # between the two columns, where the lines run
FADED = 0.04  # opacity of the lines that are not the hovered token's
FOCUS_COLOUR = "#d62728"
# Opacity levels of lines, by weight relative to the head's strongest line: a broad head (all weights small)
# still shows its strongest lines in full instead of disappearing.
LINE_LEVELS = (0.15, 0.3, 0.5, 0.75, 1.0)


def _opacity(weight: float, strongest: float) -> float:
    """The line's opacity: its weight relative to its head's strongest line, in ``LINE_LEVELS`` steps, so a
    broad head (all weights small) still shows its strongest lines in full."""
    level = int(np.digitize(weight / max(strongest, 1e-9), [0.15, 0.35, 0.6, 0.85]))
    return LINE_LEVELS[level]


def head_view_html(
    lines: list[HeadViewLines], labels: list[str], focus: int | None = None, start: int = 0, dropped: int = 0
) -> str:
    """An HTML fragment drawing ``lines`` (one ``HeadViewLines`` per head, positions relative to ``labels``)
    between two columns of ``labels``; ``start`` is the position of ``labels[0]`` (a window of a long text),
    ``focus`` a query drawn in red (its lines are the only ones when the lines were chosen for it).

    Raises ``ValueError`` when a line reaches past the labels (lines of another sentence).
    """
    length = len(labels)
    for item in lines:
        if len(item.queries) and (item.queries.max() >= length or item.keys.max() >= length):
            raise ValueError(
                f"{item.head} has lines to position {max(item.queries.max(), item.keys.max())} but the "
                f"sentence has {length} tokens; pass the labels of the same sentence."
            )
    # A class unique to this drawing, so its rules never reach another head view on the page.
    root = "hv" + hashlib.sha1(repr((labels, start, [item.head for item in lines])).encode()).hexdigest()[:10]
    left, right = TOKEN_PX, TOKEN_PX + GAP_PX
    width, top = right + TOKEN_PX, TOP_PX
    height = top + ROW_PX * length + 8

    def y(position: int) -> float:
        return top + ROW_PX * position + ROW_PX / 2

    legend = []
    x = 0
    for h, item in enumerate(lines):
        colour = PALETTE[h % len(PALETTE)]
        legend.append(
            f'<rect x="{x}" y="4" width="12" height="12" fill="{colour}"/>'
            f'<text x="{x + 16}" y="14" class="legend" fill="{TEXT_COLOUR}">{html.escape(item.head)}</text>'
        )
        x += 24 + 8 * len(item.head)
    drawn = []
    for h, item in enumerate(lines):
        colour = PALETTE[h % len(PALETTE)]
        strongest = float(np.max(item.weights)) if len(item.weights) else 1.0
        for q, k, w in zip(item.queries.tolist(), item.keys.tolist(), item.weights.tolist(), strict=True):
            opacity = _opacity(w, strongest)
            tip = f"{item.head}: {q + start} {labels[q]} → {k + start} {labels[k]}: {w:.2f}"
            drawn.append(
                f'<line class="ln q{q} k{k}" x1="{left + 6}" y1="{y(q):.1f}" x2="{right - 6}" y2="{y(k):.1f}" '
                f'stroke="{colour}" stroke-opacity="{opacity}" stroke-width="{1 + 2.5 * opacity:.2f}">'
                f"<title>{html.escape(tip)}</title></line>"
            )
    tokens = []
    for i, label in enumerate(labels):
        text = html.escape(label)
        colour = FOCUS_COLOUR if focus == i else TEXT_COLOUR
        tokens.append(
            f'<text class="tok qt{i}" x="{left}" y="{y(i) + 4:.1f}" text-anchor="end" fill="{colour}">'
            f"<title>query {i + start}: {text}</title>{text}</text>"
            f'<text class="tok kt{i}" x="{right}" y="{y(i) + 4:.1f}" fill="{colour}">'
            f"<title>key {i + start}: {text}</title>{text}</text>"
        )
    # Hovering query i keeps the lines of class q{i}; hovering key i those of class k{i}.
    rules = [f".{root} .ln{{transition:stroke-opacity .12s}}"]
    rules += [f".{root} .tok{{font:12px sans-serif;cursor:default}} .{root} .legend{{font:12px sans-serif}}"]
    rules += [f".{root} .tok:hover{{fill:{FOCUS_COLOUR};font-weight:bold}}"]
    for i in range(length):
        rules.append(
            f".{root}:has(.qt{i}:hover) .ln:not(.q{i}),.{root}:has(.kt{i}:hover) .ln:not(.k{i}){{stroke-opacity:{FADED}}}"
        )
    note = (
        f'<p style="color:{TEXT_COLOUR};font-size:12px;margin:0">{dropped} weakest lines not drawn.</p>'
        if dropped
        else ""
    )
    rules.append("html,body{margin:0;background:transparent;font-family:sans-serif}")
    return (
        f"<style>{''.join(rules)}</style>"
        f'<div class="{root}" data-testid="head-view" style="overflow-x:auto">'
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="Head view: queries on the left, keys on the right">'
        f'<text x="{left}" y="{top - 4}" text-anchor="end" class="legend" fill="{TEXT_COLOUR}">queries</text>'
        f'<text x="{right}" y="{top - 4}" class="legend" fill="{TEXT_COLOUR}">keys</text>'
        f"{''.join(legend)}{''.join(drawn)}{''.join(tokens)}</svg>{note}</div>"
    )


def head_view_height(length: int, dropped: int = 0) -> int:
    """Pixels the head view of ``length`` tokens needs (its iframe does not grow by itself)."""
    return TOP_PX + ROW_PX * length + 8 + (20 if dropped else 0) + 8
