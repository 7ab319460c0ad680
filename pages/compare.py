"""Compare page: two sentences side by side on the same layer and heads."""

import streamlit as st

from explorer import export
from explorer.figures import attention as figs
from explorer.figures import attention_colour as colours
from explorer.figures.similarity import token_similarity_figure
from explorer.interpret import analysis
from explorer.interpret.similarity import cosine_similarity, sentence_embedding, token_similarity
from explorer.model import describe
from explorer.model.bundle import SENTENCE_SIMILARITY, training_window
from pages.common import (
    INT,
    INTS,
    TEXT,
    WINDOW,
    chart,
    current_bundle,
    current_text,
    kept,
    one_of,
    prepare,
    sidebar,
    some_of,
)

COLUMN_WIDTH = 440  # px of one of two columns at a 1440 px wide window

sidebar()
st.title("Compare")
st.caption("The sentence from the sidebar (A) next to a second one (B), through the same heads.")

DEFAULT_B = "There is a map in the kitchen. Kate lost the maps because he wanted to help her."
bundle = current_bundle()
config = bundle.config
kept("compare_text", DEFAULT_B, "compare", TEXT)
text_b = st.text_area("Second sentence (B)", key="compare_text", height=80)

layer_options = list(range(1, config.num_layers + 1))
head_options = list(range(1, config.num_heads + 1))
c1, c2 = st.columns([1, 3])
kept("compare_layer", 1, "clayer", INT, fix=one_of(layer_options))
layer = c1.selectbox("Layer", layer_options, key="compare_layer", format_func=lambda v: f"L{v}")
kept("compare_heads", head_options[:2], "chead", INTS, fix=some_of(head_options))
heads = c2.pills("Heads", head_options, selection_mode="multi", key="compare_heads", format_func=lambda v: f"H{v}")

# Notices go above both columns, so a warning about A does not push A's charts below B's.
a, b = prepare(current_text(), bundle), prepare(text_b, bundle)
if a is None or b is None:
    st.stop()
if not heads:
    st.info("Choose at least one head.")
    st.stop()

runs = [(a, a.run(), "a"), (b, b.run(), "b")]
trained, longest = training_window(bundle), max(len(a), len(b))
if longest > colours.RELATIVE_FROM:
    st.caption(describe.colouring_sentence(longest, chosen=False))
if trained is not None and longest > trained:
    st.caption(describe.training_window_sentence(config, trained, longest))
for (sentence, out, name), column in zip(runs, st.columns(2), strict=True):
    with column:
        view = slice(0, min(len(sentence), WINDOW))
        chosen = sorted(heads)
        names = [f"{name.upper()} · layer {layer} · head {head}" for head in chosen]
        stack = out.attention_weights[layer - 1, [head - 1 for head in chosen]]  # [n, T, T]
        chart(
            figs.heads_figure(
                stack[:, view, view],
                sentence.labels[view],
                names,
                columns=1,
                title=f"Sentence {name.upper()}"
                + (f" (first {WINDOW} of {len(sentence)} tokens)" if len(sentence) > WINDOW else ""),
                width=COLUMN_WIDTH,
                colouring=colours.default_colouring(len(sentence)),
                total=len(sentence),
                trained=trained,
            ),
            f"compare_{name}",
            csv=lambda s=stack, n=names, labels=sentence.labels: export.attention_rows_csv(s, n, labels),
        )
        entropy = analysis.attention_entropy(out.attention_weights[layer - 1]).mean(-1)
        st.caption("Mean entropy per head (bits): " + ", ".join(f"H{h + 1} {e:.2f}" for h, e in enumerate(entropy)))

st.subheader("Sentence similarity")
embedding_a, embedding_b = (sentence_embedding(out.final_hidden) for _, out, _ in runs)
similarity = cosine_similarity(embedding_a, embedding_b)
st.metric("Cosine similarity of A and B", f"{similarity:.2f}")
if bundle.task == SENTENCE_SIMILARITY:
    st.caption(
        "Mean of the final hidden states over the tokens, L2-normalised: the sentence embedding this model was "
        "trained to produce, so paraphrases score high and unrelated sentences low."
    )
else:
    st.caption(
        "Mean of the final hidden states over the tokens, L2-normalised. This model was not trained for sentence "
        "similarity, so the number says less than it does for the pretrained MiniLM (pick it in the sidebar)."
    )
view_a, view_b = slice(0, min(len(a), WINDOW)), slice(0, min(len(b), WINDOW))
matrix = token_similarity(runs[0][1].final_hidden[view_a], runs[1][1].final_hidden[view_b])
chart(
    token_similarity_figure(matrix, a.labels[view_a], b.labels[view_b]),
    "compare_similarity",
    csv=lambda: export.matrix_csv(matrix, a.labels[view_a], b.labels[view_b], "token_a"),
)
