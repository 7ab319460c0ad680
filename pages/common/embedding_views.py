"""The Embeddings & positions page's views: token rows, the positional encoding, their sum, position
similarity and a PCA projection. Every choice they offer is kept in the link."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import streamlit as st

from explorer import export
from explorer.figures.embeddings import positional_curves, projection_figure, similarity_heatmap, vector_heatmap
from explorer.interpret import analysis
from explorer.model import describe
from explorer.model.positional import default_curve_dimensions, sinusoidal_encoding, wavelengths
from pages.common.jobs import wait_for
from pages.common.resources import vocabulary_projection_job
from pages.common.text import SentenceView, model_token_labels
from pages.common.url_state import BOOL, INTS, TEXT, kept, one_of, some_of
from pages.common.widgets import chart


@dataclass(frozen=True)
class EmbeddingView(SentenceView):
    window: slice  # the positions shown (all of them up to WINDOW tokens)

    def matrix(self, matrix: np.ndarray, title: str, key: str, name: str) -> None:
        """A ``[T, D]`` (or ``[T, E]``) heatmap of the window, with the whole matrix as CSV and JSON."""
        labels, window = self.labels, self.window
        dims = [str(d) for d in range(matrix.shape[1])]
        chart(
            vector_heatmap(matrix[window], labels[window], title, start=window.start),
            key,
            csv=lambda: export.matrix_csv(matrix, labels, dims, corner="token \\ dim"),
            json=lambda: export.to_json({"tokens": labels, name: matrix}),
        )


def token_embeddings(v: EmbeddingView) -> None:
    st.markdown(describe.token_embedding_sentence(v.config, v.sentence.bundle.vocab))
    width = describe.width_symbol(v.config)
    v.matrix(v.out.token_embeddings, f"Token embeddings [T, {width}]", "embeddings_tokens", "token_embeddings")


def positional_encoding(v: EmbeddingView) -> None:
    config, out, labels = v.config, v.out, v.labels
    if config.positional == "none":
        st.info(describe.positional_sentence(config))
        return
    st.markdown(describe.positional_sentence(config))
    width = describe.width_symbol(config)
    v.matrix(
        out.positional_encodings, f"Positional encodings [T, {width}]", "embeddings_positions", "positional_encodings"
    )
    dims = list(range(config.embedding_width))
    kept("embeddings_dims", default_curve_dimensions(config.embedding_width), "dims", INTS, fix=some_of(dims))
    chosen = st.multiselect("Dimensions to plot", dims, key="embeddings_dims")
    if not chosen:
        st.info("Choose at least one dimension to plot its curve.")
        return
    periods = wavelengths(config.embedding_width) if config.positional == "sinusoidal" else None
    chart(
        positional_curves(out.positional_encodings, chosen, labels, periods),
        "embeddings_curves",
        csv=lambda: export.matrix_csv(
            out.positional_encodings[:, chosen], labels, [str(d) for d in chosen], "token \\ dim"
        ),
    )


def embedding_sum(v: EmbeddingView) -> None:
    st.markdown(describe.embedding_sum_sentence(v.config))
    v.matrix(v.out.embedding_sum, describe.embedding_sum_title(v.config), "embeddings_sum", "embedding_sum")


def position_similarity(v: EmbeddingView) -> None:
    config, window = v.config, v.window
    if config.positional == "none":
        st.info(describe.position_similarity_sentence(config))
        return
    kept("embeddings_cosine", False, "cosine", BOOL)
    cosine = st.toggle("Cosine similarity (divide by the norms)", key="embeddings_cosine")
    shown = v.labels[window]
    similarity = analysis.position_similarity(v.out.positional_encodings[window], cosine=cosine)
    st.markdown(describe.position_similarity_sentence(config))
    chart(
        similarity_heatmap(similarity, shown, start=window.start),
        "embeddings_similarity",
        csv=lambda: export.matrix_csv(similarity, shown, shown, "position"),
    )
    if config.positional == "sinusoidal":
        with st.expander("The same for 128 positions, independent of the sentence"):
            sim = analysis.position_similarity(sinusoidal_encoding(128, config.embedding_width), cosine=cosine)
            positions = [str(i) for i in range(128)]
            chart(
                similarity_heatmap(sim, positions, "PE·PEᵀ over 128 positions"),
                "embeddings_similarity128",
                csv=lambda: export.matrix_csv(sim, positions, positions, "position"),
            )


SENTENCE_IN_VOCAB, SENTENCE_ONLY = "This sentence in the vocabulary", "This sentence only"


def projection(v: EmbeddingView) -> None:
    config, out, labels, bundle = v.config, v.out, v.labels, v.sentence.bundle
    c1, c2 = st.columns(2)
    kept("embeddings_projection_dims", "2D", "pca", TEXT, fix=one_of(["2D", "3D"]))
    dims_choice = c1.segmented_control("Dimensions", ["2D", "3D"], key="embeddings_projection_dims", required=True)
    points = [SENTENCE_IN_VOCAB, SENTENCE_ONLY]
    kept("embeddings_projection_what", SENTENCE_IN_VOCAB, "points", TEXT, fix=one_of(points))
    what = c2.segmented_control("Points", points, key="embeddings_projection_what", required=True)
    n_dims = 3 if dims_choice == "3D" else 2
    axes = [f"PC{i + 1}" for i in range(n_dims)]
    if what == SENTENCE_ONLY:
        if len(labels) < 2:
            st.info("A projection needs at least two tokens.")
            return
        pca = analysis.pca(out.token_embeddings, components=n_dims)
        chart(
            projection_figure(pca, labels, "PCA of this sentence's token embeddings", dims=n_dims),
            "embeddings_pca_sentence",
            csv=lambda: export.matrix_csv(pca.coords, labels, axes, "token"),
        )
        return
    st.markdown(
        f"All {config.vocab_size:,} rows of the embedding table (grey) projected on their top principal axes, with "
        "this sentence's tokens on top (red). Tokens used alike in training end up close together."
    )
    pca = wait_for(vocabulary_projection_job(bundle, n_dims), "Projecting the vocabulary", patience=0.5)
    if pca is None:
        return
    vocab_labels = model_token_labels(bundle)
    here = analysis.project_onto(out.token_embeddings, pca)
    chart(
        projection_figure(
            pca, vocab_labels, "PCA of the whole vocabulary", highlight=here, highlight_labels=labels, dims=n_dims
        ),
        "embeddings_pca_vocab",
        csv=lambda: export.matrix_csv(pca.coords, vocab_labels, axes, "token"),
    )


VIEWS: dict[str, Callable[[EmbeddingView], None]] = {
    "Token embeddings": token_embeddings,
    "Positional encoding": positional_encoding,
    "Sum into layer 1": embedding_sum,
    "Position similarity": position_similarity,
    "Projection (PCA)": projection,
}
