"""The Attention page's heavier views, each drawn only while it is open: the overview grid, the head view,
mean & entropy, query / key, and head ablation. Every choice they offer is kept in the link."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import streamlit as st

from explorer import export
from explorer.figures import attention as figs
from explorer.figures import head_measures, predictions
from explorer.figures.head_view import head_view_height, head_view_html
from explorer.interpret import analysis
from explorer.interpret.head_roles import role_badge
from explorer.pipeline import DEFAULT_MEANING, NO_OUTPUT_HEAD, PREDICTION_MEANING, prediction_at
from pages.common.text import SentenceView, model_token_labels
from pages.common.url_state import INT, TEXTS, kept, one_of, some_of
from pages.common.widgets import chart, download_row, position_picker

GRID_MAX_PANELS = 48  # beyond this the overview grid shows only the chosen layers
HEAD_VIEW_MAX_HEADS = 6
QUERY_KEY_MAX_HEADS = 8


@dataclass(frozen=True)
class AttentionView(SentenceView):
    """What every view needs from the page besides the sentence and its run: the page's choices."""

    layers: list[int]  # 1-based, sorted
    selected: list[tuple[int, int]]  # (layer, head), 0-based
    causal: bool
    threshold: float
    window: slice
    roles: list[list[dict]] | None  # head roles, when already known
    colouring: str  # explorer.figures.attention_colour.COLOURINGS
    trained: int | None  # where the model's training windows ended (explorer.model.bundle.training_window)
    span: slice  # the positions the views show: all, or without the tokens the tokenizer adds at the ends
    query: int  # the query token the page outlines (and the Step through page follows)


def overview_grid(v: AttentionView) -> None:
    config = v.config
    st.markdown("Every layer × every head at once (long inputs are averaged over blocks of positions).")
    span = v.span
    grid, numbers = v.out.attention_weights[:, :, span, span], None  # [L, H, T', T']
    if config.num_layers * config.num_heads > GRID_MAX_PANELS:
        # A big model's grid would be hundreds of heatmaps; show the chosen layers' heads instead.
        numbers = v.layers or [1]
        grid = grid[[layer - 1 for layer in numbers]]
        st.caption(
            f"This model has {config.num_layers * config.num_heads} heads; the grid shows the chosen layers "
            f"({', '.join(f'L{layer}' for layer in numbers)})."
        )
    rows = numbers or list(range(1, config.num_layers + 1))
    badges = None
    if v.roles is not None:
        badges = [[role_badge(v.roles[ly - 1][h]["role"]) for h in range(config.num_heads)] for ly in rows]
        st.caption("Badges: each head's role over held-out sentences (the Interpret page explains them).")
    chart(
        figs.attention_grid(
            grid,
            v.labels[span],
            layer_numbers=numbers,
            start=span.start,
            total=len(v.labels),
            badges=badges,
            colouring=v.colouring,
            causal=v.causal,
            trained=v.trained,
        ),
        "attention_grid",
        json=lambda: export.to_json({"tokens": v.labels, "causal": v.causal, "weights": v.out.attention_weights}),
    )


def head_view(v: AttentionView) -> None:
    if not v.selected:
        st.info("Choose layers and heads above; the head view draws their lines.")
        return
    # Long inputs: the lines of the current window only (both ends inside it), and a line budget shared by
    # the heads, so the drawing stays readable and light.
    window, shown = v.window, v.labels[v.window]
    # -1 stands for "all tokens" (a select box shows None as nothing chosen).
    kept("attention_focus", -1, "focus", INT, fix=one_of(range(-1, len(shown))))
    focus_names = analysis.unique_labels(shown, window.start)
    focus = st.selectbox(
        "Focus on one query",
        range(-1, len(shown)),
        key="attention_focus",
        format_func=lambda i: "all tokens" if i < 0 else focus_names[i],
    )
    query = None if focus < 0 else focus
    chosen = v.selected[:HEAD_VIEW_MAX_HEADS]
    if len(v.selected) > HEAD_VIEW_MAX_HEADS:
        st.caption(f"Showing the first {HEAD_VIEW_MAX_HEADS} selected heads; deselect some to see others.")
    line_sets = [
        analysis.head_view_lines(
            v.out.attention_weights[ly, h][window, window],
            analysis.head_label(ly, h),
            threshold=max(v.threshold, analysis.HEAD_VIEW_MIN_WEIGHT),
            query=query,
            max_lines=analysis.HEAD_VIEW_MAX_LINES // len(chosen),
        )
        for ly, h in chosen
    ]
    st.caption("Hover a token to see only its lines, a line for its weight.")
    dropped = sum(s.dropped for s in line_sets)
    # An iframe: Streamlit's sanitised HTML drops SVG. The token text in it is escaped (head_view_html).
    st.iframe(
        head_view_html(line_sets, shown, focus=query, start=window.start, dropped=dropped),
        height=head_view_height(len(shown), dropped),
    )
    download_row(
        "attention_head_view",
        csv=lambda: export.rows_csv(
            ["head", "query", "key", "weight"],
            [
                (s.head, int(q) + window.start, int(k) + window.start, float(w))
                for s in line_sets
                for q, k, w in zip(s.queries, s.keys, s.weights, strict=True)
            ],
        ),
    )


def mean_and_entropy(v: AttentionView) -> None:
    config, labels, window = v.config, v.labels, v.window
    entropy = analysis.head_entropy(v.out.attention_weights)
    mean = analysis.mean_over_heads(v.out.attention_weights)
    max_bits = float(np.log2(max(len(labels), 2)))
    chart(
        head_measures.entropy_figure(entropy, max_bits),
        "attention_entropy",
        csv=lambda: export.matrix_csv(
            entropy,
            [f"L{ly + 1}" for ly in range(config.num_layers)],
            [f"H{h + 1}" for h in range(config.num_heads)],
            "layer \\ head",
        ),
    )
    st.caption(
        "Low entropy: the head focuses on one or two tokens. High: it spreads its attention (a bag-of-words average)."
    )
    # Side by side only while two heatmaps still have room to name every token.
    shown = window.stop - window.start
    columns = st.columns(2 if shown <= 24 else 1)
    for index, layer in enumerate(v.layers or [1]):
        with columns[index % len(columns)]:
            chart(
                figs.attention_heatmap(
                    mean[layer - 1][window, window],
                    labels[window],
                    f"Layer {layer}: mean over heads",
                    threshold=v.threshold,
                    start=window.start,
                    colouring=v.colouring,
                    causal=v.causal,
                    total=len(labels),
                    trained=v.trained,
                ),
                f"attention_mean_{layer}",
                csv=lambda m=mean[layer - 1]: export.matrix_csv(m, labels, labels, "query \\ key"),
            )
    if v.selected:
        chosen = v.selected[:QUERY_KEY_MAX_HEADS]
        per_query = np.stack([analysis.attention_entropy(v.out.attention_weights[ly, h]) for ly, h in chosen])
        names = [analysis.head_label(ly, h) for ly, h in chosen]
        chart(
            head_measures.entropy_per_query_figure(per_query, labels, names),
            "attention_entropy_query",
            csv=lambda: export.matrix_csv(per_query, names, labels, "head \\ query"),
        )


def query_key(v: AttentionView) -> None:
    if not v.selected:
        st.info("Choose layers and heads above to compare their scores.")
        return
    labels, query = v.labels, v.query
    chosen = v.selected[:QUERY_KEY_MAX_HEADS]
    names = [analysis.head_label(ly, h) for ly, h in chosen]
    scores = np.stack([v.out.attention_scores[ly, h, query] for ly, h in chosen]).astype(np.float64)  # [h, T]
    weights = np.stack([v.out.attention_weights[ly, h, query] for ly, h in chosen])  # [h, T]
    if v.causal:
        scores[:, query + 1 :] = np.nan  # masked keys: no score reaches the softmax
    st.markdown(
        "The query vector of this token is compared with every key by a dot product, scaled by 1/√K. The "
        "softmax turns those scores into weights: a score just a few units higher takes most of the weight."
    )
    chart(
        figs.query_key_figure(scores, weights, labels, query, names),
        "attention_query_key",
        csv=lambda: export.matrix_csv(
            np.concatenate([scores, weights]),
            [f"{n} score" for n in names] + [f"{n} weight" for n in names],
            labels,
            "series \\ key",
        ),
    )


def head_ablation(v: AttentionView) -> None:
    config, labels, out, sentence = v.config, v.labels, v.out, v.sentence
    all_heads = [analysis.head_label(ly, h) for ly in range(config.num_layers) for h in range(config.num_heads)]
    kept("attention_ablate", [], "off", TEXTS, fix=some_of(all_heads))
    off = st.pills("Switch heads off", all_heads, selection_mode="multi", key="attention_ablate")
    mask = analysis.head_mask_from_labels(off, config.num_layers, config.num_heads)
    ablated = sentence.run(head_mask=mask, causal=v.causal)
    effect = analysis.ablation_effect(out.final_hidden, ablated.final_hidden, out.logits, ablated.logits)
    if not off:
        st.info("Pick heads to switch off: their output is replaced by zeros and everything after them is recomputed.")
    chart(
        head_measures.ablation_figure(effect, labels, off),
        "attention_ablation",
        csv=lambda: export.rows_csv(
            ["position", "token", "relative_hidden_change", "kl_bits", "top_changed"],
            [(i, t, float(a), float(b), bool(c)) for i, (t, a, b, c) in enumerate(zip(labels, *effect, strict=True))],
        ),
    )
    bundle = sentence.bundle
    if not config.output_head:
        st.info(NO_OUTPUT_HEAD + " The chart above shows how much each token's final hidden state changed.")
        return
    position = position_picker("Token to predict", "attention_predict", "predict", labels, 0)
    st.markdown(
        f"The model's prediction at position {position}: {PREDICTION_MEANING.get(bundle.task, DEFAULT_MEANING)}."
    )
    if not bundle.trained:
        st.warning(
            "This model is untrained, so its predictions are noise; train one on the Train page to see "
            "ablation change real predictions."
        )
    vocab_labels = model_token_labels(bundle)
    for column, head_mask, is_ablated, name in zip(
        st.columns(2), (None, mask), (False, True), ("all heads", "heads switched off"), strict=True
    ):
        logits = prediction_at(
            bundle, sentence.engine, sentence.model_ids, position, head_mask=head_mask, causal=v.causal
        )
        top_ids, probs = analysis.top_predictions(logits, 5)
        names = [vocab_labels[i] for i in top_ids]
        with column:
            chart(
                predictions.predictions_figure(names, probs, f"Top predictions, {name}", ablated=is_ablated),
                f"attention_predictions_{int(is_ablated)}",
                csv=lambda n=names, p=probs: export.rows_csv(
                    ["token", "probability"], list(zip(n, p.tolist(), strict=True))
                ),
            )


VIEWS: dict[str, Callable[[AttentionView], None]] = {
    "Overview grid": overview_grid,
    "Head view": head_view,
    "Mean & entropy": mean_and_entropy,
    "Query / key": query_key,
    "Head ablation": head_ablation,
}
