"""Attention page: per-head heatmaps for the chosen layers and heads, plus heavier views on demand."""

import numpy as np
import streamlit as st

from explorer import analysis, export
from explorer.figures import attention as figs
from explorer.head_roles import role_badge
from explorer.pipeline import DEFAULT_MEANING, NO_OUTPUT_HEAD, PREDICTION_MEANING, prediction_at
from pages.common import (
    WINDOW,
    chart,
    current_sentence,
    model_head_roles,
    model_token_labels,
    sidebar,
    sync_url,
    url_value,
    window_control,
)

sidebar()
st.title("Attention")
st.caption(
    "Each head turns every token into a query and a key; a query's weights over the keys (a softmax of q·k/√K) "
    "say where that token takes information from. Rows: queries; columns: keys; every row sums to 1."
)

sentence = current_sentence()
if sentence is None:
    st.stop()
config = sentence.bundle.config
labels = sentence.labels
length = len(sentence)
layer_options = list(range(1, config.num_layers + 1))
GRID_MAX_PANELS = 48  # beyond this the overview grid shows only the chosen layers
head_options = list(range(1, config.num_heads + 1))


def parse_list(options):
    def parse(raw: str) -> list[int]:
        values = [int(v) for v in raw.split(",") if v.strip()]
        if not values or any(v not in options for v in values):
            raise ValueError(raw)
        return values

    return parse


st.session_state.setdefault("attention_layers", url_value("layer", [1], parse_list(layer_options)))
st.session_state.setdefault("attention_heads", url_value("head", head_options, parse_list(head_options)))
c1, c2, c3, c4 = st.columns([2, 3, 2, 2])
layers = c1.pills(
    "Layers", layer_options, selection_mode="multi", key="attention_layers", format_func=lambda v: f"L{v}"
)
heads = c2.pills("Heads", head_options, selection_mode="multi", key="attention_heads", format_func=lambda v: f"H{v}")
st.session_state.setdefault("attention_causal", False)
causal = c3.toggle(
    "Causal mask (decoder view)",
    key="attention_causal",
    help="A decoder may only look back: every query is limited to the keys at or before it.",
)
st.session_state.setdefault("attention_threshold", 0.0)
threshold = c4.slider("Hide weights below", 0.0, 1.0, step=0.01, key="attention_threshold")

# The selection is part of the link: ?layer=1,2&head=1,3 (left out while it is the default).
sync_url("layer", ",".join(str(v) for v in sorted(layers)), "1")
sync_url("head", ",".join(str(v) for v in sorted(heads)), ",".join(str(v) for v in head_options))

out = sentence.run(causal=causal)
if causal:
    st.info(
        "Causal mask on: the upper triangle is empty because no token may attend to a later one. This is how a "
        "decoder (GPT-style) sees the same sentence; the encoder was trained without it."
    )

window = window_control(length, "attention_window")
shown = labels[window]
selected = [(layer - 1, head - 1) for layer in sorted(layers) for head in sorted(heads)]

if not selected:
    st.info("Choose at least one layer and one head to draw their attention.")
else:
    if length > WINDOW:
        st.caption(
            f"Showing queries and keys {window.start}–{window.stop - 1} of {length}; move the window to page through."
        )
    names = [f"Layer {layer + 1} · head {head + 1}" for layer, head in selected]
    stack = np.stack([out.attention_weights[layer, head] for layer, head in selected])  # [n, T, T]

    def long_rows():
        return [
            (n, q, labels[q], k, labels[k], float(stack[i, q, k]))
            for i, n in enumerate(names)
            for q in range(length)
            for k in range(length)
        ]

    chart(
        figs.heads_figure(stack[:, window, window], shown, names, threshold=threshold, start=window.start),
        key="attention_heads_chart",
        csv=lambda: export.rows_csv(["head", "query_position", "query", "key_position", "key", "weight"], long_rows()),
        json=lambda: export.to_json({"heads": names, "causal": causal, "tokens": labels, "weights": stack}),
    )

st.divider()
views = ["Overview grid", "Head view", "Mean & entropy", "Query / key", "Head ablation"]
view = st.segmented_control(
    "More views",
    views,
    key="attention_view",
    help="Heavier views are drawn only when you open them, so editing the text stays fast.",
)

if view == "Overview grid":
    st.markdown("Every layer × every head at once (long inputs are averaged over blocks of positions).")
    grid, numbers = out.attention_weights, None
    if config.num_layers * config.num_heads > GRID_MAX_PANELS:
        # A big model's grid would be hundreds of heatmaps; show the chosen layers' heads instead.
        keep = sorted(layers) or [1]
        grid, numbers = grid[[layer - 1 for layer in keep]], keep
        st.caption(
            f"This model has {config.num_layers * config.num_heads} heads; the grid shows the chosen layers "
            f"({', '.join(f'L{layer}' for layer in keep)})."
        )
    roles, _ = model_head_roles(sentence.bundle)  # once per model; None without the English corpus
    rows = numbers or layer_options
    badges = (
        None
        if roles is None
        else [[role_badge(roles[ly - 1][h]["role"]) for h in range(config.num_heads)] for ly in rows]
    )
    if roles is not None:
        st.caption("Badges: each head's role over held-out sentences (the Interpret page explains them).")
    chart(
        figs.attention_grid(grid, labels, layer_numbers=numbers, badges=badges),
        "attention_grid",
        json=lambda: export.to_json({"tokens": labels, "causal": causal, "weights": out.attention_weights}),
    )

elif view == "Head view":
    if not selected:
        st.info("Choose layers and heads above; the head view draws their lines.")
    else:
        # Long inputs: the lines of the current window only (both ends inside it), and a line budget
        # shared by the heads, so the drawing stays readable and light.
        focus_options = ["all tokens"] + analysis.unique_labels(shown, window.start)
        focus = st.selectbox("Focus on one query", focus_options, key="attention_focus")
        query = None if focus == "all tokens" else focus_options.index(focus) - 1
        chosen = selected[:6]
        if len(selected) > 6:
            st.caption("Showing the first 6 selected heads; deselect some to see others.")
        budget = analysis.HEAD_VIEW_MAX_LINES // len(chosen)
        line_sets = [
            analysis.head_view_lines(
                out.attention_weights[ly, h][window, window],
                analysis.head_label(ly, h),
                threshold=max(threshold, analysis.HEAD_VIEW_MIN_WEIGHT),
                query=query,
                max_lines=budget,
            )
            for ly, h in chosen
        ]
        chart(
            figs.head_view_figure(line_sets, shown, focus=query, start=window.start),
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

elif view == "Mean & entropy":
    entropy = analysis.head_entropy(out.attention_weights)
    mean = analysis.mean_over_heads(out.attention_weights)
    max_bits = float(np.log2(max(length, 2)))
    chart(
        figs.entropy_figure(entropy, max_bits),
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
    columns = st.columns(2)
    for index, layer in enumerate(sorted(layers) or [1]):
        with columns[index % 2]:
            chart(
                figs.attention_heatmap(
                    mean[layer - 1][window, window],
                    shown,
                    f"Layer {layer}: mean over heads",
                    threshold=threshold,
                    start=window.start,
                ),
                f"attention_mean_{layer}",
                csv=lambda m=mean[layer - 1]: export.matrix_csv(m, labels, labels, "query \\ key"),
            )
    if selected:
        per_query = np.stack([analysis.attention_entropy(out.attention_weights[ly, h]) for ly, h in selected[:8]])
        names = [analysis.head_label(ly, h) for ly, h in selected[:8]]
        chart(
            figs.entropy_per_query_figure(per_query, labels, names),
            "attention_entropy_query",
            csv=lambda: export.matrix_csv(per_query, names, labels, "head \\ query"),
        )

elif view == "Query / key":
    if not selected:
        st.info("Choose layers and heads above to compare their scores.")
    else:
        options = analysis.unique_labels(labels)
        pick = st.selectbox("Query token", options, key="attention_query")
        query = options.index(pick)
        chosen = selected[:8]
        names = [analysis.head_label(ly, h) for ly, h in chosen]
        scores = np.stack([out.attention_scores[ly, h, query] for ly, h in chosen]).astype(np.float64)
        weights = np.stack([out.attention_weights[ly, h, query] for ly, h in chosen])
        if causal:
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

elif view == "Head ablation":
    all_heads = [analysis.head_label(ly, h) for ly in range(config.num_layers) for h in range(config.num_heads)]
    st.session_state.setdefault("attention_ablate", [])
    off = st.pills("Switch heads off", all_heads, selection_mode="multi", key="attention_ablate")
    mask = analysis.head_mask_from_labels(off, config.num_layers, config.num_heads)
    ablated = sentence.run(head_mask=mask, causal=causal)
    effect = analysis.ablation_effect(out.final_hidden, ablated.final_hidden, out.logits, ablated.logits)
    if not off:
        st.info("Pick heads to switch off: their output is replaced by zeros and everything after them is recomputed.")
    chart(
        figs.ablation_figure(effect, labels, off),
        "attention_ablation",
        csv=lambda: export.rows_csv(
            ["position", "token", "relative_hidden_change", "kl_bits", "top_changed"],
            [(i, t, float(a), float(b), bool(c)) for i, (t, a, b, c) in enumerate(zip(labels, *effect, strict=True))],
        ),
    )

    bundle = sentence.bundle
    if not bundle.config.output_head:
        st.info(NO_OUTPUT_HEAD + " The chart above shows how much each token's final hidden state changed.")
        st.stop()
    vocab_labels = model_token_labels(bundle)
    options = analysis.unique_labels(labels)
    pick = st.selectbox("Token to predict", options, key="attention_predict")
    position = options.index(pick)
    meaning = PREDICTION_MEANING.get(bundle.task, DEFAULT_MEANING)
    st.markdown(f"The model's prediction at position {position}: {meaning}.")
    if not bundle.trained:
        st.warning(
            "This model is untrained, so its predictions are noise; train one on the Train page to see "
            "ablation change real predictions."
        )
    base, changed = (
        prediction_at(bundle, sentence.engine, sentence.model_ids, position, head_mask=m, causal=causal)
        for m in (None, mask)
    )
    left, right = st.columns(2)
    for column, logits, is_ablated, name in (
        (left, base, False, "all heads"),
        (right, changed, True, "heads switched off"),
    ):
        top_ids, probs = analysis.top_predictions(logits, 5)
        names = [vocab_labels[i] for i in top_ids]
        with column:
            chart(
                figs.predictions_figure(names, probs, f"Top predictions, {name}", ablated=is_ablated),
                f"attention_predictions_{int(is_ablated)}",
                csv=lambda n=names, p=probs: export.rows_csv(
                    ["token", "probability"], list(zip(n, p.tolist(), strict=True))
                ),
            )
