"""Compare page: two sentences side by side on the same layer and heads."""

import streamlit as st

from explorer import analysis, export
from explorer.bundle import SENTENCE_SIMILARITY
from explorer.figures import attention as figs
from explorer.figures.similarity import token_similarity_figure
from explorer.similarity import cosine_similarity, sentence_embedding, token_similarity
from pages.common import WINDOW, chart, current_bundle, current_text, prepare, sidebar, sync_url, url_value

sidebar()
st.title("Compare")
st.caption("The sentence from the sidebar (A) next to a second one (B), through the same heads.")

DEFAULT_B = "There is a map in the kitchen. Kate lost the maps because he wanted to help her."
bundle = current_bundle()
config = bundle.config
st.session_state.setdefault("compare_text", url_value("compare", DEFAULT_B))
text_b = st.text_area("Second sentence (B)", key="compare_text", height=80)
sync_url("compare", text_b, DEFAULT_B)

layer_options = list(range(1, config.num_layers + 1))
head_options = list(range(1, config.num_heads + 1))
st.session_state.setdefault("compare_layer", layer_options[0])
st.session_state.setdefault("compare_heads", head_options[:2])
c1, c2 = st.columns([1, 3])
layer = c1.selectbox("Layer", layer_options, key="compare_layer", format_func=lambda v: f"L{v}")
heads = c2.pills("Heads", head_options, selection_mode="multi", key="compare_heads", format_func=lambda v: f"H{v}")

left, right = st.columns(2)
with left:
    st.subheader("A")
    a = prepare(current_text(), bundle)
with right:
    st.subheader("B")
    b = prepare(text_b, bundle)
if a is None or b is None:
    st.stop()
if not heads:
    st.info("Choose at least one head.")
    st.stop()

runs = [(a, a.run(), "a", left), (b, b.run(), "b", right)]
for sentence, out, name, column in runs:
    with column:
        if len(sentence) > WINDOW:
            st.caption(f"Showing the first {WINDOW} of {len(sentence)} tokens.")
        view = slice(0, min(len(sentence), WINDOW))
        chosen = sorted(heads)
        names = [f"{name.upper()} · layer {layer} · head {head}" for head in chosen]
        stack = out.attention_weights[layer - 1, [head - 1 for head in chosen]]  # [n, T, T]
        chart(
            figs.heads_figure(
                stack[:, view, view], sentence.labels[view], names, columns=1, title=f"Sentence {name.upper()}"
            ),
            f"compare_{name}",
            csv=lambda st_=stack, s=sentence, n=names: export.rows_csv(
                ["head", "query_position", "query", "key_position", "key", "weight"],
                [
                    (n[i], q, s.labels[q], k, s.labels[k], float(st_[i, q, k]))
                    for i in range(len(n))
                    for q in range(len(s))
                    for k in range(len(s))
                ],
            ),
        )
        entropy = analysis.attention_entropy(out.attention_weights[layer - 1]).mean(-1)
        st.caption("Mean entropy per head (bits): " + ", ".join(f"H{h + 1} {e:.2f}" for h, e in enumerate(entropy)))

st.subheader("Sentence similarity")
embedding_a, embedding_b = (sentence_embedding(out.final_hidden) for _, out, _, _ in runs)
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
