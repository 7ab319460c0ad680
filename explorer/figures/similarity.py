"""Sentence-similarity figures: how close two sentences' tokens are in the model's final hidden states."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from explorer.figures import SIGNED_SCALE, check_labels, finish, heatmap_height
from explorer.interpret.analysis import unique_labels


def token_similarity_figure(similarity: np.ndarray, labels_a: list[str], labels_b: list[str]) -> go.Figure:
    """A ``[Ta, Tb]`` cosine-similarity matrix between sentence A's tokens (rows) and B's (columns)."""
    similarity = np.asarray(similarity, np.float32)
    if similarity.ndim != 2:
        raise ValueError(f"Expected a [Ta, Tb] similarity matrix, got shape {similarity.shape}.")
    check_labels(similarity.shape[0], labels_a, "The rows (sentence A)")
    check_labels(similarity.shape[1], labels_b, "The columns (sentence B)")
    fig = go.Figure(
        go.Heatmap(
            z=similarity,
            x=unique_labels(labels_b),
            y=unique_labels(labels_a),
            zmin=-1,
            zmax=1,
            colorscale=SIGNED_SCALE,
            colorbar={"title": {"text": "cosine"}, "thickness": 12},
            hovertemplate="A %{y} ↔ B %{x}: %{z:.2f}<extra></extra>",
        )
    )
    fig.update_xaxes(type="category", tickangle=-60, title="sentence B", tickfont={"size": 10})
    fig.update_yaxes(type="category", autorange="reversed", title="sentence A", tickfont={"size": 10})
    return finish(fig, "Token-by-token cosine similarity (final hidden states)", heatmap_height(len(labels_a)))
