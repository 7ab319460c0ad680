"""Sentence similarity, what all-MiniLM-L6-v2 was trained for: pooled, normalised hidden states.

sentence-transformers embeds a sentence with this model as the mean of its last hidden states over the real
tokens ([CLS] and [SEP] included, padding excluded), then scales that mean to unit length, so the cosine
similarity of two sentences is the dot product of their embeddings. The same hidden states compared token
by token show which words of one sentence the model reads as close to which words of the other.

Shapes: B batch, T / Ta / Tb tokens, D model width. Two texts' similarity, from text to score, is
``explorer.pipeline.text_similarity`` (it runs them through the model first).
"""

from __future__ import annotations

import numpy as np

# torch.nn.functional.normalize's default: keeps an all-zero vector at zero instead of dividing by 0.
NORM_EPS = 1e-12


def mean_pool(hidden: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Mean over the token axis, counting only real tokens.

    Args:
      hidden: ``[T, D]`` or ``[B, T, D]`` hidden states.
      mask: ``[T]`` or ``[B, T]``, True at real tokens; None when every token is real.
    Returns ``[D]`` or ``[B, D]``.
    """
    hidden = np.asarray(hidden, np.float32)
    if mask is None:
        mask = np.ones(hidden.shape[:-1], bool)
    mask = np.asarray(mask, bool)
    if mask.shape != hidden.shape[:-1]:
        raise ValueError(
            f"The mask has shape {mask.shape}, but the hidden states {hidden.shape} need {hidden.shape[:-1]}."
        )
    weights = mask[..., None].astype(np.float32)  # [..., T, 1]
    counts = np.maximum(weights.sum(axis=-2), 1e-9)  # [..., 1]; sentence-transformers' clamp for empty rows
    return (hidden * weights).sum(axis=-2) / counts  # [..., D]


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Scales each vector on the last axis to unit L2 length: ``[..., D]`` -> ``[..., D]``."""
    vectors = np.asarray(vectors, np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)  # [..., 1]
    return vectors / np.maximum(norms, NORM_EPS)


def sentence_embedding(final_hidden: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """The sentence embedding of ``[T, D]`` (or ``[B, T, D]``) last hidden states: ``[D]`` (or ``[B, D]``), unit length."""
    return normalise(mean_pool(final_hidden, mask))


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of the angle between two ``[D]`` vectors, in [-1, 1]."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"Cosine similarity needs two vectors of one length, got shapes {a.shape} and {b.shape}.")
    return float(np.clip(normalise(a) @ normalise(b), -1.0, 1.0))


def token_similarity(hidden_a: np.ndarray, hidden_b: np.ndarray) -> np.ndarray:
    """Cosine similarity of every token of one text with every token of another.

    Args:
      hidden_a: ``[Ta, D]`` hidden states of text a (any layer; the last is what sentence embeddings read).
      hidden_b: ``[Tb, D]`` hidden states of text b, from the same layer.
    Returns ``[Ta, Tb]``, entries in [-1, 1].
    """
    hidden_a, hidden_b = np.asarray(hidden_a, np.float32), np.asarray(hidden_b, np.float32)
    if hidden_a.ndim != 2 or hidden_b.ndim != 2 or hidden_a.shape[1] != hidden_b.shape[1]:
        raise ValueError(
            f"Token similarity needs two [T, D] arrays of one width D, got {hidden_a.shape} and {hidden_b.shape}."
        )
    return np.clip(normalise(hidden_a) @ normalise(hidden_b).T, -1.0, 1.0)  # [Ta, Tb]
