"""Attention page: per-head heatmaps for the chosen layers and heads, plus heavier views on demand.

Every choice is kept in the link (``pages.common.url_state``); the views live in
``pages.common.attention_views``.
"""

import numpy as np
import streamlit as st

from explorer import export
from explorer.figures import attention as figs
from explorer.figures import attention_colour as colours
from explorer.interpret import analysis
from explorer.interpret.head_roles import NONE, role_badge
from explorer.model import describe
from explorer.model.bundle import training_window
from pages.common import (
    BOOL,
    FLOAT,
    INTS,
    OPTIONAL_TEXT,
    WINDOW,
    chart,
    choose,
    head_roles_if_ready,
    kept,
    one_of,
    open_page,
    position_picker,
    some_of,
    window_control,
)
from pages.common.attention_views import VIEWS, AttentionView

sentence = open_page(
    "Attention",
    "Each head turns every token into a query and a key; a query's weights over the keys (a softmax of q·k/√K) "
    "say where that token takes information from. Rows: queries; columns: keys; every row sums to 1.",
)
config = sentence.bundle.config
labels, length = sentence.labels, len(sentence)
layer_options = list(range(1, config.num_layers + 1))
head_options = list(range(1, config.num_heads + 1))

# Role badges on the head pills once this model's roles are known (computed in the background, never
# waited for: the first picture comes first).
roles = head_roles_if_ready(sentence.bundle)
layers = kept("attention_layers", [1], "layer", INTS, fix=some_of(layer_options))


def head_name(head: int) -> str:
    role = roles[layers[0] - 1][head - 1]["role"] if roles is not None and len(layers) == 1 else NONE
    return f"H{head}" if role == NONE else f"H{head} {role_badge(role)}"  # no badge where no pattern fits


# Layers and heads get a row of their own: a 12-head model's pills (with role badges) need the width.
c1, c2 = st.columns([1, 2])
layers = c1.pills(
    "Layers", layer_options, selection_mode="multi", key="attention_layers", format_func=lambda v: f"L{v}"
)
kept("attention_heads", [1], "head", INTS, fix=some_of(head_options))
heads = c2.pills(
    "Heads" + (" (role in this layer)" if roles is not None and len(layers) == 1 else ""),
    head_options,
    selection_mode="multi",
    key="attention_heads",
    format_func=head_name,
)
# The colour choice needs the room of its two options ("relative to uniform" was cut off in a quarter).
c3, c4, c5, c6 = st.columns([1, 1, 1.45, 1])
kept("attention_causal", False, "causal", BOOL)
causal = c3.toggle(
    "Causal mask",
    key="attention_causal",
    help="The decoder's view: every query is limited to the keys at or before it (GPT-style models).",
)
hide_special, specials = False, "/".join(sentence.bundle.vocab.special_texts)
if sentence.prepared.special.any():  # only a tokenizer that adds [CLS]/[SEP]-style tokens gets the choice
    kept("attention_hide_special", False, "nospecial", BOOL)
    hide_special = c3.toggle(
        f"Hide {specials}",
        key="attention_hide_special",
        help="Leave out the rows and columns of the tokens the tokenizer adds: many heads park their attention "
        "there, and without them the rest of the pattern has the colours to itself.",
    )
kept("attention_threshold", 0.0, "threshold", FLOAT, fix=lambda v: min(max(round(float(v), 2), 0.0), 1.0))
threshold = c4.slider("Hide weights below", 0.0, 1.0, step=0.01, key="attention_threshold")
# No choice (the default): chosen by the text's length. Clicking the chosen option again returns to that.
kept("attention_colour", None, "colour", OPTIONAL_TEXT, fix=lambda v: v if v is None else one_of(colours.COLOURINGS)(v))
chosen_colour = c5.segmented_control(
    "Colour",
    colours.COLOURINGS,
    key="attention_colour",
    help="weight 0–1: the weight itself. relative to uniform: the weight against an even spread over the keys "
    "(grey), so broad heads stay readable on long texts. With neither chosen, the text's length decides.",
)
colouring = chosen_colour or colours.default_colouring(length)
trained = training_window(sentence.bundle)
with c6:
    query = position_picker(
        "Query row",
        "attention_query",
        "query",
        labels,
        0,
        help="Outlined in every heatmap; the Query / key view and the Step through page follow it.",
    )

out = sentence.run(causal=causal)
if causal:
    st.info(
        "Causal mask on: the upper triangle is empty because no token may attend to a later one. This is how a "
        "decoder (GPT-style) sees the same sentence; the encoder was trained without it."
    )

span = analysis.content_span(sentence.prepared.special) if hide_special else slice(0, length)
window = window_control(span.stop - span.start, "attention_window", first=span.start)
if hide_special:
    st.caption(
        f"Without {specials}: their rows and columns are left out, not renormalised, so a row sums to less than 1 "
        "where its query looked at them."
    )
if colouring == colours.RELATIVE:
    hint = "" if chosen_colour else " Choose **weight 0–1** above to see the weights themselves."
    st.caption(describe.colouring_sentence(length, chosen=chosen_colour is not None) + hint)
if trained is not None and length > trained:
    st.caption(describe.training_window_sentence(config, trained, length))
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
    chart(
        figs.heads_figure(
            stack[:, window, window],
            labels[window],
            names,
            threshold=threshold,
            start=window.start,
            colouring=colouring,
            causal=causal,
            total=length,
            trained=trained,
            query=query,
        ),
        key="attention_heads_chart",
        csv=lambda: export.attention_rows_csv(stack, names, labels),
        json=lambda: export.to_json({"heads": names, "causal": causal, "tokens": labels, "weights": stack}),
    )
    first_layer, first_head = selected[0]
    if st.button(
        f"Step through row {query} of layer {first_layer + 1} · head {first_head + 1}: every number behind it",
        key="attention_step_through",
        icon=":material/stairs:",
    ):
        choose("step_layer", first_layer + 1)
        choose("step_head", first_head + 1)
        st.switch_page("pages/step_through.py")

st.divider()
kept("attention_view", None, "view", OPTIONAL_TEXT, fix=lambda v: v if v is None else one_of(VIEWS)(v))
view = st.segmented_control(
    "More views",
    list(VIEWS),
    key="attention_view",
    help="Heavier views are drawn only when you open them, so editing the text stays fast.",
)
if view is not None:
    VIEWS[view](
        AttentionView(
            sentence, out, sorted(layers), selected, causal, threshold, window, roles, colouring, trained, span, query
        )
    )
