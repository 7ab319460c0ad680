"""What enters layer 1: token embeddings, plus a position encoding, plus (BERT) a token type, optionally
layer-normalised, and (ELECTRA) projected from the embedding width to the model width.

Shapes as in ``explorer.model.encoder``: B batch, T tokens, D model width, E embedding width (D unless
``ModelConfig.embedding_size``), V vocabulary size.

The parameters belong to the encoder itself (``encoder/token_embedding``, ``encoder/positional_embedding``,
``encoder/token_type_embedding``, ``encoder/embedding_norm``, ``encoder/embeddings_project``): the names every checkpoint and the
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
    token_embeddings: jax.Array  # [B, T, E] embedding rows, scaled by sqrt(E) when config.scale_embeddings
    positional_encodings: jax.Array  # [T, E] what is added for position (zeros for "none")
    token_type_embeddings: jax.Array  # [B, T, E] the segment-0 row added to every token (zeros without types)
    embedding_sum: jax.Array  # [B, T, E] token + position + type
    normalised: jax.Array  # [B, T, E] the sum, layer-normalised when config.embedding_norm (else the sum)
    output: jax.Array  # [B, T, D] layer 1's input: normalised, projected to D when E != D
    table: jax.Array  # [V, E] the token embedding table (a tied output head reads it backwards)


def positional_encodings(config: ModelConfig, length: int) -> jax.Array:
    """``[T, E]``: the paper's sinusoids (a constant), rows ``position_offset … position_offset + T - 1`` of a
    learned table (the parameter ``positional_embedding`` of the module it is called in), or zeros."""
    width = config.embedding_width
    if config.positional == "sinusoidal":
        return jnp.asarray(sinusoidal_encoding(length, width))  # [T, E]
    if config.positional == "learned":
        table = hk.get_parameter(
            "positional_embedding",
            [config.position_rows, width],
            init=hk.initializers.TruncatedNormal(stddev=0.02),
        )  # [offset + max_len, E]
        return table[config.position_offset : config.position_offset + length]  # [T, E]
    return jnp.zeros((length, width), jnp.float32)  # [T, E]


class Embeddings(hk.Module):
    """Token embedding (x sqrt(E) unless BERT-style), positions, token types, the embedding layer norm, and
    the projection to the model width when the embeddings are narrower (ELECTRA)."""

    def __init__(self, config: ModelConfig, name: str | None = "embeddings"):
        super().__init__(name=name)
        self.config = config

    @hk.transparent
    def __call__(self, token_ids: jax.Array) -> EmbeddingsOutput:  # [B, T] int32 model ids
        cfg = self.config
        width = cfg.embedding_width  # E
        # Embedding rows start at std 1/sqrt(E) and are scaled by sqrt(E) (section 3.4), so tokens
        # and sinusoids (values in [-1, 1]) enter the residual stream at the same scale. BERT adds its
        # rows unscaled (its embedding layer norm sets the scale instead).
        embed = hk.Embed(
            cfg.vocab_size,
            width,
            w_init=hk.initializers.TruncatedNormal(stddev=width**-0.5),
            name="token_embedding",
        )
        tokens = embed(token_ids)  # [B, T, E]
        if cfg.scale_embeddings:
            tokens = tokens * np.sqrt(width)  # [B, T, E]
        positions = positional_encodings(cfg, token_ids.shape[1])  # [T, E]
        total = tokens + positions[None]  # [B, T, E]
        types = jnp.zeros_like(tokens)  # [B, T, E]
        if cfg.token_types:
            # Every token is in segment 0: inference encodes one text at a time, never a sentence pair.
            type_table = hk.Embed(
                cfg.token_types,
                width,
                w_init=hk.initializers.TruncatedNormal(stddev=0.02),
                name="token_type_embedding",
            )
            types = type_table(jnp.zeros_like(token_ids))  # [B, T, E]
            total = total + types  # [B, T, E]
        normalised = total
        if cfg.embedding_norm:
            normalised = layer_norm("embedding_norm", cfg.layer_norm_eps)(total)  # [B, T, E]
        output = normalised
        if width != cfg.d_model:
            # ELECTRA keeps its embedding table narrow (it is shared with a small generator) and maps the
            # normalised sum up to the model width once, before layer 1.
            output = hk.Linear(cfg.d_model, name="embeddings_project")(normalised)  # [B, T, D]
        return EmbeddingsOutput(tokens, positions, types, total, normalised, output, embed.embeddings)
