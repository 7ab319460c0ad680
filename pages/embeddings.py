"""Embeddings & positions page: what enters layer 1 (token rows + positional encoding) and how it looks."""

import numpy as np
import streamlit as st

from explorer import analysis, export
from explorer.figures.embeddings import positional_curves, projection_figure, similarity_heatmap, vector_heatmap
from explorer.positional import sinusoidal_encoding, wavelengths
from pages.common import chart, current_sentence, model_token_labels, sidebar, window_control

sidebar()
st.title("Embeddings & positions")
st.caption(
    "Layer 1 receives, for every token, its embedding row (scaled by √D) plus a positional encoding. "
    "Attention alone cannot tell positions apart; the added encoding is what makes word order visible."
)

sentence = current_sentence()
if sentence is None:
    st.stop()
config = sentence.bundle.config
out = sentence.run()
labels = sentence.labels
window = window_control(len(sentence), "embeddings_window")
shown = labels[window]
dims = [str(d) for d in range(config.d_model)]


def matrix_downloads(matrix: np.ndarray, name: str):
    return dict(
        csv=lambda: export.matrix_csv(matrix, labels, dims, corner="token \\ dim"),
        json=lambda: export.to_json({"tokens": labels, name: matrix}),
    )


tab_names = ["Token embeddings", "Positional encoding", "Sum into layer 1", "Position similarity", "Projection (PCA)"]
st.session_state.setdefault("embeddings_view", tab_names[0])
view = st.segmented_control("View", tab_names, key="embeddings_view", required=True)

if view == "Token embeddings":
    st.markdown(
        "One row per token: the model's embedding of that token, times √D. Identical tokens have identical rows; "
        "[UNK] tokens all share one row."
    )
    chart(
        vector_heatmap(out.token_embeddings[window], shown, "Token embeddings [T, D]", start=window.start),
        "embeddings_tokens",
        **matrix_downloads(out.token_embeddings, "token_embeddings"),
    )
elif view == "Positional encoding":
    if config.positional == "none":
        st.info("This model uses no positional encoding: it sees the sentence as a bag of tokens.")
    else:
        if config.positional == "sinusoidal":
            st.markdown(
                "Positional encoding: **sinusoidal (fixed)**. Each pair of dimensions is a sine/cosine clock with its "
                "own period; low dimensions tick fast, high ones slowly."
            )
        else:
            st.markdown(
                "Positional encoding: **learned**. A table with one trained row per position, added to the token "
                "embedding; nothing forces its dimensions into clocks, so each curve is whatever training made it."
            )
        chart(
            vector_heatmap(out.positional_encodings[window], shown, "Positional encodings [T, D]", start=window.start),
            "embeddings_positions",
            **matrix_downloads(out.positional_encodings, "positional_encodings"),
        )
        # Distinct dimensions, in order: with a small d_model the fixed picks would repeat (d_model 12 gave
        # 0, 1, 10, 11, 10).
        default_dims = sorted({d for d in (0, 1, 10, 11, config.d_model - 2) if 0 <= d < config.d_model})
        st.session_state.setdefault("embeddings_dims", default_dims)
        chosen = st.multiselect("Dimensions to plot", list(range(config.d_model)), key="embeddings_dims")
        if chosen:
            periods = wavelengths(config.d_model) if config.positional == "sinusoidal" else None
            chart(
                positional_curves(out.positional_encodings, chosen, labels, periods),
                "embeddings_curves",
                csv=lambda: export.matrix_csv(
                    out.positional_encodings[:, chosen], labels, [str(d) for d in chosen], "token \\ dim"
                ),
            )
        else:
            st.info("Choose at least one dimension to plot its curve.")
elif view == "Sum into layer 1":
    st.markdown("Token embedding + positional encoding: the residual stream that layer 1 reads.")
    chart(
        vector_heatmap(out.embedding_sum[window], shown, "Token + position [T, D]", start=window.start),
        "embeddings_sum",
        **matrix_downloads(out.embedding_sum, "embedding_sum"),
    )
elif view == "Position similarity":
    if config.positional == "none":
        st.info("This model uses no positional encoding, so every position looks the same.")
    else:
        st.session_state.setdefault("embeddings_cosine", False)
        cosine = st.toggle("Cosine similarity (divide by the norms)", key="embeddings_cosine")
        encodings = out.positional_encodings[window]
        similarity = analysis.position_similarity(encodings, cosine=cosine)
        st.markdown(
            "PE·PEᵀ: each cell compares two positions. For sinusoids it depends only on their distance and falls "
            "off with it, so nearby positions look alike and the model can attend by relative position."
        )
        chart(
            similarity_heatmap(similarity, shown, start=window.start),
            "embeddings_similarity",
            csv=lambda: export.matrix_csv(similarity, shown, shown, "position"),
        )
        if config.positional == "sinusoidal":
            with st.expander("The same for 128 positions, independent of the sentence"):
                pe = sinusoidal_encoding(128, config.d_model)
                sim = analysis.position_similarity(pe, cosine=cosine)
                positions = [str(i) for i in range(128)]
                chart(
                    similarity_heatmap(sim, positions, "PE·PEᵀ over 128 positions"),
                    "embeddings_similarity128",
                    csv=lambda: export.matrix_csv(sim, positions, positions, "position"),
                )
else:
    st.session_state.setdefault("embeddings_projection_dims", "2D")
    st.session_state.setdefault("embeddings_projection_what", "This sentence in the vocabulary")
    c1, c2 = st.columns(2)
    dims_choice = c1.segmented_control("Dimensions", ["2D", "3D"], key="embeddings_projection_dims", required=True)
    what = c2.segmented_control(
        "Points",
        ["This sentence in the vocabulary", "This sentence only"],
        key="embeddings_projection_what",
        required=True,
    )
    n_dims = 3 if dims_choice == "3D" else 2
    if what == "This sentence only":
        if len(sentence) < 2:
            st.info("A projection needs at least two tokens.")
        else:
            projection = analysis.pca(out.token_embeddings, components=n_dims)
            chart(
                projection_figure(projection, labels, "PCA of this sentence's token embeddings", dims=n_dims),
                "embeddings_pca_sentence",
                csv=lambda: export.matrix_csv(
                    projection.coords, labels, [f"PC{i + 1}" for i in range(n_dims)], "token"
                ),
            )
    else:
        scale = np.sqrt(config.d_model) if config.scale_embeddings else 1.0  # as the encoder scales them
        table = np.asarray(sentence.bundle.params["encoder/token_embedding"]["embeddings"]) * scale
        vocab_labels = model_token_labels(sentence.bundle)
        projection = analysis.pca(table, components=n_dims)
        here = analysis.project_onto(out.token_embeddings, projection)
        st.markdown(
            f"All {table.shape[0]} rows of the embedding table (grey) projected on their top principal axes, with "
            "this sentence's tokens on top (red). Tokens used alike in training end up close together."
        )
        chart(
            projection_figure(
                projection,
                vocab_labels,
                "PCA of the whole vocabulary",
                highlight=here,
                highlight_labels=labels,
                dims=n_dims,
            ),
            "embeddings_pca_vocab",
            csv=lambda: export.matrix_csv(
                projection.coords, vocab_labels, [f"PC{i + 1}" for i in range(n_dims)], "token"
            ),
        )
