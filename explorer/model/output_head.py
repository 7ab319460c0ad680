"""The output head: final hidden states to vocabulary logits, and the same outside ``apply``.

Shapes as in ``explorer.model.encoder``: B batch, T tokens, D model width, E embedding width, V vocabulary
size.

Either tied to the token embedding table (logits = hidden · tableᵀ + bias, the bias a parameter of the
encoder, ``output_bias``) or a ``Linear`` of its own (``encoder/output_head``), or absent (a sentence
encoder such as MiniLM): ``ModelConfig.tie_embeddings`` and ``output_head``. A pretrained masked-LM head
first transforms the hidden states (``ModelConfig.head_transform``: ``encoder/head_transform``, a dense layer
to the embedding width, ``head_activation``, then the layer norm ``encoder/head_norm``), as BERT's
``cls.predictions.transform`` does. Like ``Embeddings``, the head names its parameters in the scope it is
called from (``hk.transparent``): the names checkpoints use.
"""

from __future__ import annotations

import haiku as hk
import jax
import jax.numpy as jnp

from explorer.model.config import ModelConfig
from explorer.model.feed_forward import ACTIVATION_FUNCTIONS
from explorer.model.layer import layer_norm

OUTPUT_HEAD = "encoder/output_head"  # the Linear that maps the final hidden state to logits
TIED_BIAS = ("encoder", "output_bias")  # with tied embeddings, the head's only parameter of its own
TOKEN_TABLE = ("encoder/token_embedding", "embeddings")  # the table a tied head reads backwards
HEAD_TRANSFORM = "encoder/head_transform"  # a masked-LM head's dense layer (ModelConfig.head_transform)
HEAD_NORM = "encoder/head_norm"  # and its layer norm


class OutputHead(hk.Module):
    """Final hidden states ``[B, T, D]`` to logits ``[B, T, V]`` (``[B, T, 0]`` without a head)."""

    def __init__(self, config: ModelConfig, name: str | None = "head"):
        super().__init__(name=name)
        self.config = config

    @hk.transparent
    def __call__(self, hidden: jax.Array, table: jax.Array) -> jax.Array:  # [B, T, D], [V, E]
        cfg = self.config
        if not cfg.output_head:
            # No head, no predictions: an empty last axis keeps slicing and batching code working while
            # nothing can be mistaken for a prediction.
            return jnp.zeros(hidden.shape[:2] + (0,), hidden.dtype)  # [B, T, 0]
        if cfg.head_transform:
            dense = hk.Linear(cfg.embedding_width, name=HEAD_TRANSFORM.rsplit("/", 1)[1])
            hidden = ACTIVATION_FUNCTIONS[cfg.head_activation](dense(hidden))  # [B, T, E]
            hidden = layer_norm(HEAD_NORM.rsplit("/", 1)[1], cfg.layer_norm_eps)(hidden)  # [B, T, E]
        if cfg.tie_embeddings:
            # The output head reads the embedding table backwards (Press & Wolf, 2017): a rare token's
            # row then learns from every prediction of it, not only from its uses as an input.
            bias = hk.get_parameter(TIED_BIAS[1], [cfg.vocab_size], init=jnp.zeros)  # [V]
            return hidden @ table.T + bias  # [B, T, V]
        return hk.Linear(cfg.vocab_size, name=OUTPUT_HEAD.rsplit("/", 1)[1])(hidden)  # [B, T, V]


def _layer_norm(x: jax.Array, scale: jax.Array, offset: jax.Array, eps: float) -> jax.Array:
    """``hk.LayerNorm`` over the last axis, written as Haiku computes it."""
    mean = jnp.mean(x, axis=-1, keepdims=True)
    variance = jnp.var(x, axis=-1, keepdims=True)
    inverse = jax.lax.rsqrt(variance + jnp.asarray(eps, variance.dtype)) * scale
    return inverse * (x - mean) + offset


def output_logits(params: hk.Params, hidden: jax.Array, config: ModelConfig | None = None) -> jax.Array:
    """The output head on some final hidden states, ``[..., D]`` -> ``[..., V]``, outside ``apply``.

    Training calls it on the scored positions only, and the logit lens on every residual snapshot. A head
    with a transform (``HEAD_TRANSFORM`` in the parameters) needs the ``config`` for its activation and
    layer-norm epsilon; without one it is refused rather than computed wrongly.
    """
    if HEAD_TRANSFORM in params:
        if config is None:
            raise ValueError("This output head transforms the hidden states first: pass the model's config.")
        dense = params[HEAD_TRANSFORM]
        hidden = ACTIVATION_FUNCTIONS[config.head_activation](hidden @ dense["w"] + dense["b"])  # [..., E]
        norm = params[HEAD_NORM]
        hidden = _layer_norm(hidden, norm["scale"], norm["offset"], config.layer_norm_eps)  # [..., E]
    if OUTPUT_HEAD in params:
        head = params[OUTPUT_HEAD]
        return hidden @ head["w"] + head["b"]  # [..., V]
    table = params[TOKEN_TABLE[0]][TOKEN_TABLE[1]]  # [V, E], tied (ModelConfig.tie_embeddings)
    return hidden @ table.T + params[TIED_BIAS[0]][TIED_BIAS[1]]  # [..., V]
