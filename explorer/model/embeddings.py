"""What enters layer 1: token embeddings, plus a position encoding, plus (BERT) a token type, optionally
layer-normalised.

Shapes as in ``explorer.model.encoder``: B batch, T tokens, D model width, V vocabulary size.

The parameters belong to the encoder itself (``encoder/token_embedding``, ``encoder/positional_embedding``,
``encoder/token_type_embedding``, ``encoder/embedding_norm``): the names every checkpoint and the
pretrained weights' mapping use, from before this was a module of its own. ``Embeddings.__call__`` is
therefore ``hk.transparent``: what it creates is named in the scope it is called from.
"""

from __future__ import annotations

from typing import NamedTuple

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from explorer.model.config import ModelConfig
from explorer.model.layer import layer_norm
from explorer.model.positional import sinusoidal_encoding


class EmbeddingsOutput(NamedTuple):
    token_embeddings: jax.Array  # [B, T, D] embedding rows, scaled by sqrt(D) when config.scale_embeddings
    positional_encodings: jax.Array  # [T, D] what is added for position (zeros for "none")
    token_type_embeddings: jax.Array  # [B, T, D] the segment-0 row added to every token (zeros without types)
    embedding_sum: jax.Array  # [B, T, D] token + position + type
    output: jax.Array  # [B, T, D] layer 1's input: the sum, layer-normalised when config.embedding_norm
    table: jax.Array  # [V, D] the token embedding table (a tied output head reads it backwards)


def positional_encodings(config: ModelConfig, length: int) -> jax.Array:
    """``[T, D]``: the paper's sinusoids (a constant), a learned table's first ``T`` rows (the parameter
    ``positional_embedding`` of the module it is called in), or zeros."""
    if config.positional == "sinusoidal":
        return jnp.asarray(sinusoidal_encoding(length, config.d_model))  # [T, D]
    if config.positional == "learned":
        table = hk.get_parameter(
            "positional_embedding",
            [config.max_len, config.d_model],
            init=hk.initializers.TruncatedNormal(stddev=0.02),
        )  # [max_len, D]
        return table[:length]  # [T, D]
    return jnp.zeros((length, config.d_model), jnp.float32)  # [T, D]


class Embeddings(hk.Module):
    """Token embedding (x sqrt(D) unless BERT-style), positions, token types, and the embedding layer norm."""

    def __init__(self, config: ModelConfig, name: str | None = "embeddings"):
        super().__init__(name=name)
        self.config = config

    @hk.transparent
    def __call__(self, token_ids: jax.Array) -> EmbeddingsOutput:  # [B, T] int32 model ids
        cfg = self.config
        # Embedding rows start at std 1/sqrt(D) and are scaled by sqrt(D) (section 3.4), so tokens
        # and sinusoids (values in [-1, 1]) enter the residual stream at the same scale. BERT adds its
        # rows unscaled (its embedding layer norm sets the scale instead).
        embed = hk.Embed(
            cfg.vocab_size,
            cfg.d_model,
            w_init=hk.initializers.TruncatedNormal(stddev=cfg.d_model**-0.5),
            name="token_embedding",
        )
        tokens = embed(token_ids)  # [B, T, D]
        if cfg.scale_embeddings:
            tokens = tokens * np.sqrt(cfg.d_model)  # [B, T, D]
        positions = positional_encodings(cfg, token_ids.shape[1])  # [T, D]
        total = tokens + positions[None]  # [B, T, D]
        types = jnp.zeros_like(tokens)  # [B, T, D]
        if cfg.token_types:
            # Every token is in segment 0: inference encodes one text at a time, never a sentence pair.
            type_table = hk.Embed(
                cfg.token_types,
                cfg.d_model,
                w_init=hk.initializers.TruncatedNormal(stddev=0.02),
                name="token_type_embedding",
            )
            types = type_table(jnp.zeros_like(token_ids))  # [B, T, D]
            total = total + types  # [B, T, D]
        output = total
        if cfg.embedding_norm:
            output = layer_norm("embedding_norm", cfg.layer_norm_eps)(total)  # [B, T, D]
        return EmbeddingsOutput(tokens, positions, types, total, output, embed.embeddings)
