"""Pure numpy maths behind the explorer's views: projections, attention summaries, statistics.

Pages call these and hand the results to ``explorer.figures``; nothing here draws or knows about
Streamlit, so every function is tested directly.

Glossary of shapes (as in ``explorer.model.encoder``):
  T: tokens, D: model width, H: heads, L: layers, N: layer norms, S: residual-stream snapshots (2L+1),
  V: vocabulary size, K: key size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from explorer.model.config import ModelConfig

# Attention below this weight is invisible in a line drawing; dropping it keeps the head view light.
HEAD_VIEW_MIN_WEIGHT = 0.02
# A line drawing with more lines than this stops being readable (and slows the browser).
HEAD_VIEW_MAX_LINES = 1500


# ----------------------------------------------------------------------------------------------------
# Labels and windows


def unique_labels(labels: list[str], start: int = 0) -> list[str]:
    """Prefixes each token label with its position: ``["0 The", "1 ␣cat", ...]``.

    Plotly merges equal category names on an axis, so a sentence with "the" twice would lose a row;
    the position prefix keeps every row and also tells the reader where a token sits.
    """
    return [f"{i} {label}" for i, label in enumerate(labels, start)]


def token_window(length: int, start: int, size: int) -> slice:
    """The positions ``[start, start + size)`` clipped to ``[0, length)``, for paging long inputs."""
    if size < 1:
        raise ValueError(f"A window needs at least one position, got size={size}.")
    start = int(min(max(start, 0), max(length - size, 0)))
    return slice(start, min(start + size, length))


def content_span(special: np.ndarray) -> slice:
    """The positions from the first to the last token that is not ``special`` (``[CLS] … [SEP]`` becomes
    ``1 … T-2``): the attention views' rows and columns without the tokens a tokenizer adds at the ends.
    Special tokens inside the span stay. All special (or none at all): every position."""
    special = np.asarray(special, bool)
    content = np.flatnonzero(~special)
    if not len(content):
        return slice(0, len(special))
    return slice(int(content[0]), int(content[-1]) + 1)


def block_mean(matrix: np.ndarray, max_size: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Averages a ``[T, T]`` matrix over contiguous blocks so that it is at most ``max_size`` square.

    Returns the pooled matrix and the ``(first, last)`` position range of every block. Used by the
    overview grid so a 512-token sentence is summarised rather than sending 2M cells to the browser.
    """
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"block_mean expects a square [T, T] matrix, got shape {matrix.shape}.")
    length = matrix.shape[0]
    blocks = max(1, min(max_size, length))
    edges = np.linspace(0, length, blocks + 1).round().astype(int)
    ranges = [(int(a), int(b) - 1) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    pooled = np.array([[matrix[a : b + 1, c : d + 1].mean() for c, d in ranges] for a, b in ranges])
    return pooled, ranges


# ----------------------------------------------------------------------------------------------------
# Projections and positional similarity


class Projection(NamedTuple):
    coords: np.ndarray  # [N, k] coordinates on the top-k principal axes
    explained: np.ndarray  # [k] fraction of the variance each axis explains
    axes: np.ndarray  # [k, D] the principal directions
    mean: np.ndarray  # [D] the centre the points were shifted by


def project_onto(points: np.ndarray, projection: Projection) -> Projection:
    """Places new ``[M, D]`` points in an existing projection's coordinates (same centre and axes)."""
    points = np.asarray(points, np.float64)
    if points.ndim != 2 or points.shape[1] != projection.axes.shape[1]:
        raise ValueError(
            f"Points of shape {points.shape} do not live in this projection's {projection.axes.shape[1]} dims."
        )
    coords = (points - projection.mean) @ projection.axes.T
    return Projection(coords, projection.explained, projection.axes, projection.mean)


def pca(points: np.ndarray, components: int = 2) -> Projection:
    """Principal-component projection by SVD of the centred points.

    Args:
      points: ``[N, D]``.
      components: 2 or 3 for a picture; fewer points or dimensions than that give zero columns, so the
        caller always gets ``[N, components]``.
    """
    points = np.asarray(points, np.float64)
    if points.ndim != 2:
        raise ValueError(f"pca expects points of shape [N, D], got {points.shape}.")
    if components < 1:
        raise ValueError(f"components must be at least 1, got {components}.")
    count, dims = points.shape
    coords = np.zeros((count, components))
    explained = np.zeros(components)
    axes = np.zeros((components, dims))
    if count == 0:
        return Projection(coords, explained, axes, np.zeros(dims))
    mean = points.mean(axis=0)
    centred = points - mean
    if not np.all(np.isfinite(centred)):  # weights near overflow (a run about to blow up): nothing to show
        return Projection(coords, explained, axes, np.nan_to_num(mean))
    try:
        if count > 4 * dims:
            # Many more points than dimensions (a 30k-row vocabulary): the axes are the eigenvectors of the
            # [D, D] scatter matrix, several times faster than the SVD of the [N, D] points, same axes.
            eigenvalues, vectors = np.linalg.eigh(centred.T @ centred)  # ascending
            order = np.argsort(eigenvalues)[::-1]
            singular = np.sqrt(np.maximum(eigenvalues[order], 0.0))  # [D]
            vt = vectors[:, order].T  # [D, D]
        else:
            _, singular, vt = np.linalg.svd(centred, full_matrices=False)  # vt: [min(N, D), D]
    except np.linalg.LinAlgError:
        return Projection(coords, explained, axes, mean)
    k = min(components, vt.shape[0])
    # Sign convention: the largest-magnitude loading of each axis is positive, so reruns do not flip.
    signs = np.sign(vt[np.arange(k), np.abs(vt[:k]).argmax(axis=1)])
    signs[signs == 0] = 1.0
    axes[:k] = vt[:k] * signs[:, None]
    coords[:, :k] = centred @ axes[:k].T
    total = float((singular**2).sum())
    if total > 0:
        explained[:k] = singular[:k] ** 2 / total
    return Projection(coords, explained, axes, mean)


def vocabulary_projection(params: dict, config: ModelConfig, components: int = 2) -> Projection:
    """Every row of the model's token-embedding table, scaled as the encoder scales it (by sqrt(E), the embedding
    width, when ``config.scale_embeddings``), on its top ``components`` principal axes: the vocabulary's cloud, in which
    a sentence's token embeddings can be placed with ``project_onto``."""
    table = np.asarray(params["encoder/token_embedding"]["embeddings"], np.float64)  # [V, E]
    scale = np.sqrt(config.embedding_width) if config.scale_embeddings else 1.0
    return pca(table * scale, components)


def position_similarity(encodings: np.ndarray, cosine: bool = False) -> np.ndarray:
    """``PE · PEᵀ`` for ``[T, D]`` encodings: how alike two positions look to the first layer.

    For sinusoids the dot product depends only on the offset between positions, and falls off as the
    offset grows: the reason nearby positions look alike. ``cosine=True`` divides by the norms.
    """
    encodings = np.asarray(encodings, np.float64)
    if encodings.ndim != 2:
        raise ValueError(f"position_similarity expects [T, D] encodings, got {encodings.shape}.")
    similarity = encodings @ encodings.T  # [T, T]
    if cosine:
        norms = np.linalg.norm(encodings, axis=1)
        similarity = similarity / np.maximum(np.outer(norms, norms), 1e-12)
    return similarity


# ----------------------------------------------------------------------------------------------------
# Attention summaries


def check_attention(weights: np.ndarray, labels: list[str] | None = None, ndim: int | None = None) -> None:
    """Raises a ``ValueError`` that says what is wrong when weights and tokens do not fit together."""
    weights = np.asarray(weights)
    if ndim is not None and weights.ndim != ndim:
        raise ValueError(f"Expected attention with {ndim} axes, got shape {weights.shape}.")
    if weights.ndim < 2 or weights.shape[-1] != weights.shape[-2]:
        raise ValueError(f"Attention must end in a square [T, T] (queries x keys), got shape {weights.shape}.")
    if labels is not None and len(labels) != weights.shape[-1]:
        raise ValueError(
            f"There are {len(labels)} token labels but the attention covers {weights.shape[-1]} tokens; "
            f"pass the labels of the same sentence the attention was computed for."
        )


def mean_over_heads(weights: np.ndarray) -> np.ndarray:
    """``[L, H, T, T] -> [L, T, T]``: what a layer attends to on average (rows still sum to 1)."""
    check_attention(weights, ndim=4)
    return np.asarray(weights).mean(axis=1)


def attention_entropy(weights: np.ndarray) -> np.ndarray:
    """Entropy in bits of every query's attention distribution: ``[..., T, T] -> [..., T]``.

    0 bits means the query looks at one key; log2(T) means it spreads evenly over all T keys.
    """
    check_attention(weights)
    p = np.asarray(weights, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, -p * np.log2(p), 0.0)
    return terms.sum(axis=-1)


def head_entropy(weights: np.ndarray) -> np.ndarray:
    """Mean attention entropy (bits) of each head over its queries: ``[L, H, T, T] -> [L, H]``."""
    check_attention(weights, ndim=4)
    return attention_entropy(weights).mean(axis=-1)


def apply_threshold(weights: np.ndarray, threshold: float) -> np.ndarray:
    """Weights below ``threshold`` become NaN (drawn as empty cells), the rest are unchanged."""
    weights = np.asarray(weights, np.float64)
    return np.where(weights >= threshold, weights, np.nan)


# Colouring attention relative to uniform: log2(weight x keys) is 0 for a key that gets exactly its even
# share, +3 for eight times that; beyond +-6 (64x) the colour saturates.
RELATIVE_LIMIT = 6.0


def relative_to_uniform(
    weights: np.ndarray,
    causal: bool = False,
    start: int = 0,
    total: int | None = None,
    limit: float | None = RELATIVE_LIMIT,
) -> np.ndarray:
    """Each weight relative to uniform attention, ``log2(weight x keys)``, clipped to +-``limit`` (None: not
    clipped; a zero weight is then -inf).

    A query spreading evenly over ``keys`` keys gives each ``1 / keys``: 0 here, whatever the length, so a
    broad head over 512 tokens reads as grey rather than as the bottom of a 0-1 scale, and the keys a head
    singles out stand out at any length.

    Args:
      weights: ``[..., Q, K]``, rows ``start .. start + Q - 1`` of a ``total``-key attention (a window of a
        long sentence; ``total`` defaults to ``K``).
      causal: each query could see only the keys up to itself (``start + row + 1`` of them); the keys it
        could not see become NaN (drawn empty). Keys are numbered from ``start`` too (a square window).
    """
    weights = np.asarray(weights, np.float64)
    if weights.ndim < 2:
        raise ValueError(f"Attention ends in [queries, keys]; got shape {weights.shape}.")
    queries, keys = weights.shape[-2:]
    total = keys if total is None else int(total)
    if total < keys or start < 0:
        raise ValueError(f"A window of {keys} keys from position {start} does not fit {total} keys.")
    rows = np.arange(start, start + queries)[:, None]  # [Q, 1] each query's position
    counts = np.minimum(rows + 1, total) if causal else np.full((queries, 1), total)  # [Q, 1] keys it could see
    with np.errstate(divide="ignore"):
        relative = np.log2(weights * counts)
    if limit is not None:
        relative = np.clip(relative, -limit, limit)
    if causal:
        relative = np.where(np.arange(start, start + keys)[None, :] > rows, np.nan, relative)  # [Q, K]
    return relative


@dataclass(frozen=True)
class HeadViewLines:
    """Token-to-token lines of one head: query position, key position and weight of every line kept."""

    head: str
    queries: np.ndarray  # [M] int
    keys: np.ndarray  # [M] int
    weights: np.ndarray  # [M] float
    dropped: int  # lines above the threshold that were dropped to stay under the line budget


def head_view_lines(
    weights: np.ndarray,
    head: str,
    threshold: float = HEAD_VIEW_MIN_WEIGHT,
    query: int | None = None,
    max_lines: int = HEAD_VIEW_MAX_LINES,
) -> HeadViewLines:
    """The lines a head view draws for one ``[T, T]`` head: every weight >= threshold, strongest first.

    Args:
      query: keep only this query's lines (the head view's "focus on one token").
      max_lines: keep at most this many of the strongest lines; ``dropped`` counts the rest.
    """
    check_attention(weights, ndim=2)
    weights = np.asarray(weights, np.float64)
    rows, cols = np.nonzero(weights >= max(threshold, 1e-12))
    if query is not None:
        keep = rows == query
        rows, cols = rows[keep], cols[keep]
    values = weights[rows, cols]
    order = np.argsort(-values, kind="stable")
    dropped = max(0, len(order) - max_lines)
    order = order[:max_lines]
    return HeadViewLines(head, rows[order], cols[order], values[order], dropped)


def head_label(layer: int, head: int) -> str:
    """``"L1 H2"``: 1-based, as people count layers and heads."""
    return f"L{layer + 1} H{head + 1}"


def parse_head_label(label: str) -> tuple[int, int]:
    """Inverse of ``head_label``: ``"L1 H2" -> (0, 1)``."""
    try:
        layer_part, head_part = label.split()
        if layer_part[0] != "L" or head_part[0] != "H":
            raise ValueError
        return int(layer_part[1:]) - 1, int(head_part[1:]) - 1
    except (ValueError, IndexError) as error:
        raise ValueError(f"{label!r} is not a head label like 'L1 H2'.") from error


def head_mask_from_labels(labels: list[str], num_layers: int, num_heads: int) -> np.ndarray:
    """A ``[L, H]`` head mask with 0.0 at every head named in ``labels`` (the ablated ones)."""
    mask = np.ones((num_layers, num_heads), np.float32)
    for label in labels:
        layer, head = parse_head_label(label)
        if not (0 <= layer < num_layers and 0 <= head < num_heads):
            raise ValueError(f"{label} does not exist in a model with {num_layers} layers x {num_heads} heads.")
        mask[layer, head] = 0.0
    return mask


# ----------------------------------------------------------------------------------------------------
# Predictions and ablation


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    logits = np.asarray(logits, np.float64)
    shifted = logits - logits.max(axis=axis, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=axis, keepdims=True)


def top_predictions(logits: np.ndarray, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most likely ids and their probabilities for one position's ``[V]`` logits."""
    probs = softmax(logits)
    k = min(k, probs.shape[-1])
    ids = np.argsort(-probs, kind="stable")[:k]
    return ids, probs[ids]


class AblationEffect(NamedTuple):
    hidden_change: np.ndarray  # [T] |h_ablated - h| / |h| of the final representation per token
    prediction_kl: np.ndarray  # [T] KL(p || p_ablated) in bits of the output distribution per token
    top_changed: np.ndarray  # [T] bool: the most likely output token changed


def ablation_effect(
    base_hidden: np.ndarray,  # [T, D]
    ablated_hidden: np.ndarray,  # [T, D]
    base_logits: np.ndarray,  # [T, V]
    ablated_logits: np.ndarray,  # [T, V]
) -> AblationEffect:
    """How much switching heads off changed each token's output."""
    if base_hidden.shape != ablated_hidden.shape or base_logits.shape != ablated_logits.shape:
        raise ValueError("Base and ablated outputs must come from the same sentence (same shapes).")
    diff = np.linalg.norm(np.asarray(ablated_hidden, np.float64) - base_hidden, axis=-1)
    scale = np.maximum(np.linalg.norm(np.asarray(base_hidden, np.float64), axis=-1), 1e-12)
    if base_logits.shape[-1] == 0:  # a model without a prediction head: only the hidden states change
        zeros = np.zeros(diff.shape)
        return AblationEffect(diff / scale, zeros, zeros.astype(bool))
    p, q = softmax(base_logits), softmax(ablated_logits)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = np.where(p > 0, p * (np.log2(p) - np.log2(np.maximum(q, 1e-300))), 0.0).sum(axis=-1)
    changed = p.argmax(axis=-1) != q.argmax(axis=-1)
    return AblationEffect(diff / scale, np.maximum(kl, 0.0), changed)


# ----------------------------------------------------------------------------------------------------
# Layer norm and residual stream


class NormStats(NamedTuple):
    mean_in: np.ndarray  # [N, T] per-token mean over D of each layer norm's input
    std_in: np.ndarray  # [N, T]
    mean_out: np.ndarray  # [N, T]
    std_out: np.ndarray  # [N, T]


def layer_norm_stats(inputs: np.ndarray, outputs: np.ndarray) -> NormStats:
    """Per-token mean and standard deviation (over the model width) before and after every layer norm."""
    inputs, outputs = np.asarray(inputs, np.float64), np.asarray(outputs, np.float64)
    if inputs.shape != outputs.shape or inputs.ndim != 3:
        raise ValueError(f"Expected matching [N, T, D] arrays, got {inputs.shape} and {outputs.shape}.")
    return NormStats(inputs.mean(-1), inputs.std(-1), outputs.mean(-1), outputs.std(-1))


def residual_norms(hidden_states: np.ndarray) -> np.ndarray:
    """L2 norm of every token's residual-stream vector at every snapshot: ``[S, T, D] -> [S, T]``."""
    hidden_states = np.asarray(hidden_states, np.float64)
    if hidden_states.ndim != 3:
        raise ValueError(f"Expected hidden states of shape [S, T, D], got {hidden_states.shape}.")
    return np.linalg.norm(hidden_states, axis=-1)


def layer_norm_parameters(params: dict, module: str) -> tuple[np.ndarray, np.ndarray]:
    """The learned ``(scale [D], offset [D])`` of the Haiku layer norm called ``module``."""
    if module not in params:
        raise ValueError(f"The parameters have no layer norm called {module!r}.")
    leaves = params[module]
    return np.asarray(leaves["scale"]), np.asarray(leaves["offset"])
