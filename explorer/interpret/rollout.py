"""Attention rollout (Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers").

One layer's attention says where a position reads from the layer below, but after two layers a token's
representation already mixes others, so raw attention of a deep layer says little about the input
tokens. Rollout follows the mixing down to the input: each layer's attention is averaged over heads, the
residual connection is counted as half the flow (0.5·A + 0.5·I, rows renormalised), and the layers are
multiplied from the first up. Row i of the result says how much of position i's top-layer
representation traces back to each input token, under the assumption that information moves only along
attention and the residual path (feed-forward layers and the values' magnitudes are ignored).

Glossary of shapes (as in ``explorer.model.encoder``): L layers, H heads, T tokens.
"""

from __future__ import annotations

import numpy as np

from explorer.interpret.analysis import check_attention

# The paper's share of the residual connection: a token keeps half of itself at every layer.
RESIDUAL_SHARE = 0.5


def attention_rollout(weights: np.ndarray, residual_share: float = RESIDUAL_SHARE) -> np.ndarray:
    """Rollout of one sentence's attention.

    Args:
      weights: ``[L, H, T, T]`` attention weights (queries x keys) of every layer.
      residual_share: the weight of the identity in ``(1 - r)·A + r·I``.

    Returns:
      ``[T, T]``: row i is the share of the top layer's position i that flows from each input token; rows
      sum to 1.
    """
    check_attention(weights, ndim=4)
    if not 0.0 <= residual_share <= 1.0:
        raise ValueError(f"residual_share is a share of the flow, in [0, 1]; got {residual_share}.")
    weights = np.asarray(weights, np.float64)
    length = weights.shape[-1]
    identity = np.eye(length)  # [T, T]
    rollout = identity
    for layer in weights.mean(axis=1):  # [T, T] per layer, first layer first
        mixed = (1.0 - residual_share) * layer + residual_share * identity  # [T, T]
        mixed /= mixed.sum(axis=-1, keepdims=True)  # [T, T] rows sum to 1 again
        rollout = mixed @ rollout  # [T, T] this layer reads the flows of the layers below
    return rollout
