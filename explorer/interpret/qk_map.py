"""One head's queries and keys in one picture (as in AttentionViz, Yeh et al. 2023).

A head's weights come from dot products of queries and keys, so where its queries and keys lie
relative to each other says what it matches: a previous-token head puts each query next to the key
one position back; a head that matches tokens by kind forms clusters of queries and keys together.
The model returns scores and weights but not the vectors, so they are recomputed here from the layer's
input and the head's parameters, exactly as ``explorer.model.attention.SelfAttention`` computes them.

Two transformations leave every attention weight unchanged and make the joint picture readable (both
from AttentionViz): keys are shifted so their mean is the queries' mean (adding a vector c to every key
adds q·c to a whole row of scores, which softmax ignores), and queries and keys are scaled by a and 1/a
so their mean lengths match (q·k is unchanged).

Glossary of shapes (as in ``explorer.model.encoder``): T tokens, D model width, K key size, S snapshots (2L+1),
N layer norms.
"""

from __future__ import annotations

from typing import NamedTuple

import haiku as hk
import numpy as np

from explorer.interpret.analysis import Projection, check_attention, pca
from explorer.model.config import ModelConfig
from explorer.model.encoder import layer_norm_param_names


class QueryKeyMap(NamedTuple):
    queries: np.ndarray  # [T, 2] query positions in the plane
    keys: np.ndarray  # [T, 2] key positions in the plane
    strongest: np.ndarray  # [T] int: the key each query gives the most weight
    weights: np.ndarray  # [T] that weight
    explained: np.ndarray  # [2] share of the (aligned) vectors' variance each axis shows


def attention_input(
    config: ModelConfig, hidden_states: np.ndarray, layer_norm_outputs: np.ndarray, layer: int
) -> np.ndarray:
    """What layer ``layer``'s attention reads, ``[T, D]``.

    Post-LN: the residual stream entering the layer, ``hidden_states[2·layer]`` (the embedding sum, or the
    previous layer's output after its feed-forward layer norm). Pre-LN: that stream through the layer's
    attention layer norm (found by name in ``layer_norm_param_names``).

    Args:
      hidden_states: ``[S, T, D]``; layer_norm_outputs: ``[N, T, D]`` (an ``Inspection``'s fields).
    """
    if not 0 <= layer < config.num_layers:
        raise ValueError(f"The model has {config.num_layers} layers; layer {layer} does not exist.")
    if config.layer_norm == "pre":
        index = layer_norm_param_names(config).index(f"encoder/layer_{layer}/attention_norm")
        return np.asarray(layer_norm_outputs[index])  # [T, D]
    return np.asarray(hidden_states[2 * layer])  # [T, D]


def queries_and_keys(
    params: hk.Params, config: ModelConfig, x: np.ndarray, layer: int, head: int
) -> tuple[np.ndarray, np.ndarray]:
    """One head's query and key vectors for the attention input ``x`` ``[T, D]``.

    Returns:
      ``(queries [T, K], keys [T, K])``, unscaled: the model's scores are ``queries @ keys.T / sqrt(K)``.
    """
    if not 0 <= head < config.num_heads:
        raise ValueError(f"The model has {config.num_heads} heads per layer; head {head} does not exist.")
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or x.shape[1] != config.d_model:
        raise ValueError(f"The attention input must be [T, {config.d_model}], got {x.shape}.")
    columns = slice(head * config.key_size, (head + 1) * config.key_size)  # the head's K of the H·K outputs
    prefix = f"encoder/layer_{layer}/attention"
    vectors = []
    for name in ("query", "key"):
        if f"{prefix}/{name}" not in params:
            raise ValueError(f"The parameters have no {prefix}/{name}; they do not belong to this model.")
        linear = params[f"{prefix}/{name}"]
        w = np.asarray(linear["w"], np.float64)[:, columns]  # [D, K]
        b = np.asarray(linear["b"], np.float64)[columns]  # [K]
        vectors.append(x @ w + b)  # [T, K]
    return vectors[0], vectors[1]


def align(queries: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keys moved onto the queries' mean, then both scaled to the same mean length (weights unchanged)."""
    queries, keys = np.asarray(queries, np.float64), np.asarray(keys, np.float64)
    keys = keys - keys.mean(axis=0) + queries.mean(axis=0)  # [T, K]
    query_length = np.linalg.norm(queries, axis=1).mean()
    key_length = np.linalg.norm(keys, axis=1).mean()
    if query_length > 0 and key_length > 0:
        ratio = np.sqrt(key_length / query_length)
        queries, keys = queries * ratio, keys / ratio
    return queries, keys


def query_key_map(queries: np.ndarray, keys: np.ndarray, weights: np.ndarray) -> QueryKeyMap:
    """Queries and keys of one head projected together on the two principal axes of both.

    Args:
      queries, keys: ``[T, K]`` (``queries_and_keys``).
      weights: ``[T, T]`` the head's attention (for each query's strongest key).
    """
    queries, keys = np.asarray(queries, np.float64), np.asarray(keys, np.float64)
    check_attention(weights, ndim=2)
    if queries.shape != keys.shape or queries.ndim != 2 or queries.shape[0] != np.shape(weights)[0]:
        raise ValueError(
            f"Queries {queries.shape}, keys {keys.shape} and attention {np.shape(weights)} must describe the "
            f"same T tokens: [T, K], [T, K] and [T, T]."
        )
    length = queries.shape[0]
    aligned_queries, aligned_keys = align(queries, keys)
    projection: Projection = pca(np.concatenate([aligned_queries, aligned_keys]), components=2)  # [2T, 2]
    weights = np.asarray(weights, np.float64)
    strongest = weights.argmax(axis=1)  # [T]
    return QueryKeyMap(
        queries=projection.coords[:length],
        keys=projection.coords[length:],
        strongest=strongest,
        weights=weights[np.arange(length), strongest],
        explained=projection.explained,
    )
