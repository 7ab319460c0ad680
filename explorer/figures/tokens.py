"""Token figures: coloured chips (HTML) and a bytes-per-token chart."""

from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go

from explorer.figures import check_labels, finish

# Light backgrounds with dark text read the same on a light and a dark page.
CHIP_COLOURS = ["#fde2a7", "#c7e9c0", "#c6dbef", "#fcc5c0", "#dadaeb", "#d9f0d3", "#fee6ce", "#d0e1f2"]
UNKNOWN_COLOUR = "#ff9d9d"


def token_chips_html(
    labels: list[str], ids: list[int | None], byte_counts: list[int], unknown: list[bool] | np.ndarray | None = None
) -> str:
    """One coloured chip per token with its position, text, tiktoken id and byte count.

    Token text is HTML-escaped (a token can be ``<script>``); unknown tokens (outside the model's
    vocabulary) are red and marked ``[UNK]``.
    """
    count = len(labels)
    check_labels(len(ids), labels, "The id list")
    check_labels(len(byte_counts), labels, "The byte counts")
    unknown = [False] * count if unknown is None else [bool(u) for u in unknown]
    check_labels(len(unknown), labels, "The unknown-token mask")
    chips = []
    for position, (label, token_id, size, unk) in enumerate(zip(labels, ids, byte_counts, unknown, strict=True)):
        colour = UNKNOWN_COLOUR if unk else CHIP_COLOURS[position % len(CHIP_COLOURS)]
        token_id = "mask" if token_id is None else token_id  # a [MASK] typed in the text has no tiktoken id
        title = f"position {position} · id {token_id} · {size} byte{'s' if size != 1 else ''}"
        if unk:
            title += " · not in the model's vocabulary: the model sees [UNK]"
        mark = ' <b style="color:#8b0000">[UNK]</b>' if unk else ""
        chips.append(
            f'<span title="{html.escape(title)}" style="display:inline-block;margin:2px;padding:2px 6px;'
            f"border-radius:6px;background:{colour};color:#111;font-family:monospace;line-height:1.3;"
            f'text-align:center">{html.escape(label)}{mark}<br>'
            f'<span style="font-size:0.7em;color:#333">{token_id} · {size}B</span></span>'
        )
    return '<div style="line-height:2.4">' + "".join(chips) + "</div>"


def token_bytes_figure(
    labels: list[str], ids: list[int], byte_counts: list[int], unknown: list[bool] | np.ndarray | None = None
) -> go.Figure:
    """Bytes per token as bars; hover shows the token, its id and whether the model knows it."""
    check_labels(len(byte_counts), labels, "The byte counts")
    check_labels(len(ids), labels, "The id list")
    unknown = [False] * len(labels) if unknown is None else [bool(u) for u in unknown]
    hover = [
        f"{i}: {label}<br>id {token_id} · {size} bytes{' · [UNK] for the model' if unk else ''}"
        for i, (label, token_id, size, unk) in enumerate(zip(labels, ids, byte_counts, unknown, strict=True))
    ]
    colours = ["#d62728" if unk else "#1f77b4" for unk in unknown]
    fig = go.Figure(
        go.Bar(
            x=list(range(len(labels))),
            y=list(byte_counts),
            marker_color=colours,
            hovertext=hover,
            hovertemplate="%{hovertext}<extra></extra>",
            name="bytes",
        )
    )
    fig.update_xaxes(title="token position")
    if len(labels) <= 64:  # beyond that the labels overlap; hover still names every token
        fig.update_xaxes(tickvals=list(range(len(labels))), ticktext=labels)
    fig.update_yaxes(title="UTF-8 bytes")
    return finish(fig, "Bytes per token", 260)
