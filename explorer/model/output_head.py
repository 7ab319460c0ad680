"""The output head: final hidden states to vocabulary logits, and the same outside ``apply``.

Shapes as in ``explorer.model.encoder``: B batch, T tokens, D model width, V vocabulary size.

Either tied to the token embedding table (logits = hidden · tableᵀ + bias, the bias a parameter of the
encoder, ``output_bias``) or a ``Linear`` of its own (``encoder/output_head``), or absent (a sentence
encoder such as MiniLM): ``ModelConfig.tie_embeddings`` and ``output_head``. Like ``Embeddings``, the
head names its parameters in the scope it is called from (``hk.transparent``): the names checkpoints use.
"""

from __future__ import annotations

import haiku as hk
import jax
import jax.numpy as jnp

from explorer.model.config import ModelConfig

OUTPUT_HEAD = "encoder/output_head"  # the Linear that maps the final hidden state to logits
TIED_BIAS = ("encoder", "output_bias")  # with tied embeddings, the head's only parameter of its own
TOKEN_TABLE = ("encoder/token_embedding", "embeddings")  # the table a tied head reads backwards


class OutputHead(hk.Module):
    """Final hidden states ``[B, T, D]`` to logits ``[B, T, V]`` (``[B, T, 0]`` without a head)."""

    def __init__(self, config: ModelConfig, name: str | None = "head"):
        super().__init__(name=name)
        self.config = config

    @hk.transparent
    def __call__(self, hidden: jax.Array, table: jax.Array) -> jax.Array:  # [B, T, D], [V, D]
        cfg = self.config
        if not cfg.output_head:
            # No head, no predictions: an empty last axis keeps slicing and batching code working while
            # nothing can be mistaken for a prediction.
            return jnp.zeros(hidden.shape[:2] + (0,), hidden.dtype)  # [B, T, 0]
        if cfg.tie_embeddings:
            # The output head reads the embedding table backwards (Press & Wolf, 2017): a rare token's
            # row then learns from every prediction of it, not only from its uses as an input.
            bias = hk.get_parameter(TIED_BIAS[1], [cfg.vocab_size], init=jnp.zeros)  # [V]
            return hidden @ table.T + bias  # [B, T, V]
        return hk.Linear(cfg.vocab_size, name=OUTPUT_HEAD.rsplit("/", 1)[1])(hidden)  # [B, T, V]


def output_logits(params: hk.Params, hidden: jax.Array) -> jax.Array:
    """The output head on some final hidden states, ``[..., D]`` -> ``[..., V]``, outside ``apply``.

    Training calls it on the scored positions only, and the logit lens on every residual snapshot.
    """
    if OUTPUT_HEAD in params:
        head = params[OUTPUT_HEAD]
        return hidden @ head["w"] + head["b"]  # [..., V]
    table = params[TOKEN_TABLE[0]][TOKEN_TABLE[1]]  # [V, D], tied (ModelConfig.tie_embeddings)
    return hidden @ table.T + params[TIED_BIAS[0]][TIED_BIAS[1]]  # [..., V]
