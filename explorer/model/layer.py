"""One encoder layer: self-attention and a feed-forward net, each wrapped in a residual and a layer norm.

Shapes as in ``explorer.model.encoder``: B batch, T tokens, Q queries (T, or the positions a training loss
reads), D model width, H heads.

Where the layer norm sits is ``ModelConfig.layer_norm``: post-LN (the paper) normalises the residual sum,
``LN(x + f(x))``; pre-LN normalises the sub-layer's input, ``x + f(LN(x))``, and leaves the stream itself
un-normalised (the encoder adds a final layer norm).
"""

from __future__ import annotations

from typing import NamedTuple

import haiku as hk
import jax

from explorer.model.attention import SelfAttention, take_positions
from explorer.model.config import ModelConfig
from explorer.model.feed_forward import FeedForward


def layer_norm(name: str, eps: float) -> hk.LayerNorm:
    """A layer norm over the model width with a learned scale and offset (every norm of the encoder)."""
    return hk.LayerNorm(axis=-1, create_scale=True, create_offset=True, eps=eps, name=name)


def dropout(x: jax.Array, rate: float) -> jax.Array:
    """``hk.dropout`` at ``rate``; nothing at all (not even a random key) at 0, as when not training."""
    return hk.dropout(hk.next_rng_key(), rate, x) if rate > 0 else x


class LayerOutput(NamedTuple):
    """What one layer computes, for ``EncoderOutput``."""

    output: jax.Array  # [B, Q, D] the residual stream after the layer
    after_attention: jax.Array  # [B, Q, D] the residual stream after the attention sub-layer
    attention_scores: jax.Array  # [B, H, Q, T] q.k / sqrt(K) before masking and softmax
    attention_weights: jax.Array  # [B, H, Q, T]
    attention_output: jax.Array  # [B, Q, D] attention sub-layer output (before the residual add)
    ffn_output: jax.Array  # [B, Q, D] feed-forward sub-layer output (before the residual add)
    norm_inputs: tuple[jax.Array, jax.Array]  # [B, Q | T, D] what the attention and feed-forward LN normalised
    norm_outputs: tuple[jax.Array, jax.Array]  # [B, Q | T, D] what they produced


class EncoderLayer(hk.Module):
    """Self-attention (``attention``, ``attention_norm``), then a feed-forward net (``ffn``, ``ffn_norm``)."""

    def __init__(self, config: ModelConfig, name: str | None = None):
        super().__init__(name=name)
        self.config = config

    def __call__(
        self,
        x: jax.Array,  # [B, T, D] the residual stream
        attend: jax.Array,  # [B, 1, 1 | T, T] which keys each query may see (``attention.attention_mask``)
        head_mask: jax.Array,  # [H] 1.0 keeps a head, 0.0 silences it
        queries: jax.Array | None = None,  # [B, Q] the only positions whose output is wanted; None: all
        dropout_rate: float = 0.0,
        is_training: bool = False,
    ) -> LayerOutput:
        """Runs the layer. With ``queries`` only those positions are computed past the keys and values:
        after attention everything is position-wise, so the rows nobody reads need no queries, feed-forward
        or layer norm (training asks this of the last layer: the loss reads few positions)."""
        cfg = self.config
        attention = SelfAttention(cfg.num_heads, cfg.key_size, name="attention")
        attention_norm = layer_norm("attention_norm", cfg.layer_norm_eps)
        ffn = FeedForward(cfg, name="ffn")
        ffn_norm = layer_norm("ffn_norm", cfg.layer_norm_eps)
        pre = cfg.layer_norm == "pre"
        residual = x  # [B, T, D]
        if queries is not None:
            residual = take_positions(x, queries)  # [B, Q, D]
            if attend.shape[2] > 1:  # a causal mask has a row per query
                attend = take_positions(attend[:, 0], queries)[:, None]  # [B, 1, Q, T]
        norms: list[tuple[jax.Array, jax.Array]] = []

        def normalise(norm: hk.LayerNorm, h: jax.Array) -> jax.Array:
            norms.append((h, norm(h)))
            return norms[-1][1]

        attention_out, scores, weights = attention(
            normalise(attention_norm, x) if pre else x, attend, head_mask, queries, fuse_key_value=is_training
        )  # [B, Q, D], [B, H, Q, T], [B, H, Q, T]
        x = residual + dropout(attention_out, dropout_rate)  # [B, Q, D]
        if not pre:
            x = normalise(attention_norm, x)
        after_attention = x
        ffn_out = ffn(normalise(ffn_norm, x) if pre else x)  # [B, Q, D]
        x = x + dropout(ffn_out, dropout_rate)  # [B, Q, D]
        if not pre:
            x = normalise(ffn_norm, x)
        (attention_in, attention_normed), (ffn_in, ffn_normed) = norms
        return LayerOutput(
            output=x,
            after_attention=after_attention,
            attention_scores=scores,
            attention_weights=weights,
            attention_output=attention_out,
            ffn_output=ffn_out,
            norm_inputs=(attention_in, ffn_in),
            norm_outputs=(attention_normed, ffn_normed),
        )
