"""The Transformer encoder, written out so that it can return every intermediate a view needs.

Glossary of shapes:
  B: batch size
  T: sequence length (a padded bucket length inside jit)
  D: model width (d_model)
  H: number of heads
  K: key size per head (D / H)
  F: feed-forward width
  L: number of layers
  N: number of layer norms (2 per layer, plus a final one for pre-LN)
  V: vocabulary size

``hk.MultiHeadAttention`` does not expose its attention weights, so attention is written here with
einsums over all heads at once. ``hk.transform`` is applied in exactly one place: ``build_model``.
"""

from __future__ import annotations

from typing import NamedTuple

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from explorer.config import ModelConfig
from explorer.positional import sinusoidal_encoding

# Masked logits get this instead of -inf: -inf - -inf is NaN when a whole row is masked.
_MASKED_SCORE = -1e30


class EncoderOutput(NamedTuple):
    """Everything the forward pass computes that a visualisation may want."""

    logits: jax.Array  # [B, T, V] token predictions (masked-token or next-token)
    final_hidden: jax.Array  # [B, T, D] the representation the output head reads
    token_embeddings: jax.Array  # [B, T, D] embedding rows, scaled by sqrt(D)
    positional_encodings: jax.Array  # [T, D] what is added for position (zeros for "none")
    embedding_sum: jax.Array  # [B, T, D] token + position: the input of layer 1
    attention_scores: jax.Array  # [L, B, H, T, T] q.k / sqrt(K) before masking and softmax
    attention_weights: jax.Array  # [L, B, H, T, T] softmax weights; masked keys are exactly 0
    attention_outputs: jax.Array  # [L, B, T, D] attention sub-layer output (before the residual add)
    ffn_outputs: jax.Array  # [L, B, T, D] feed-forward sub-layer output (before the residual add)
    hidden_states: jax.Array  # [2L+1, B, T, D] residual stream: input, then after every sub-layer
    layer_norm_inputs: jax.Array  # [N, B, T, D] what each layer norm normalised
    layer_norm_outputs: jax.Array  # [N, B, T, D] what each layer norm produced


def layer_norm_names(config: ModelConfig) -> list[str]:
    """Names of the ``N`` layer norms, in the order of ``EncoderOutput.layer_norm_*``."""
    names = []
    for layer in range(config.num_layers):
        names += [f"layer {layer + 1} · attention LN", f"layer {layer + 1} · feed-forward LN"]
    if config.layer_norm == "pre":
        names.append("final LN")
    return names


def hidden_state_names(config: ModelConfig) -> list[str]:
    """Names of the ``2L+1`` residual-stream snapshots in ``EncoderOutput.hidden_states``."""
    names = ["embedding + position"]
    for layer in range(config.num_layers):
        names += [f"layer {layer + 1} · after attention", f"layer {layer + 1} · after feed-forward"]
    return names


def layer_norm_param_names(config: ModelConfig) -> list[str]:
    """Haiku module names of the layer norms, aligned with ``layer_norm_names``."""
    names = []
    for layer in range(config.num_layers):
        names += [f"encoder/layer_{layer}/attention_norm", f"encoder/layer_{layer}/ffn_norm"]
    if config.layer_norm == "pre":
        names.append("encoder/final_norm")
    return names


def _masked_softmax_forward(scores: jax.Array, mask: jax.Array) -> jax.Array:
    masked = jnp.where(mask, scores, _MASKED_SCORE)  # [..., T, T]
    peak = masked.max(axis=-1, keepdims=True)  # [..., T, 1]
    exp = jnp.where(mask, jnp.exp(masked - peak), 0.0)  # [..., T, T]
    return exp / jnp.maximum(exp.sum(axis=-1, keepdims=True), 1e-30)  # [..., T, T]


@jax.custom_vjp
def masked_softmax(scores: jax.Array, mask: jax.Array) -> jax.Array:
    """Softmax over the last axis in which masked entries get exactly zero weight.

    Written out rather than ``jax.nn.softmax`` + ``where``: XLA's CPU backend fused that pair badly when
    the weights are also an output (13 ms against 3.5 ms for one 512-token layer, measured in isolation).
    A row whose every key is masked gets all zeros instead of NaN.

    The gradient is the softmax's own, ``w * (g - sum(g * w))``, written by hand: autodiff of the
    ``where``/``max``/``maximum`` chain above built a backward pass that materialised a ``[B, H, T, T]``
    broadcast of the mask constant and a slow fused reduction: 5.5 ms of the ~42 ms of kernels in an MLM
    training step (batch 32 x 64 tokens, default model, XLA profile on 2 cores), against 2.0 ms for this
    backward. Masked entries have weight 0, so their gradient is 0, as before.
    """
    return _masked_softmax_forward(scores, mask)


def _masked_softmax_fwd(scores: jax.Array, mask: jax.Array):
    weights = _masked_softmax_forward(scores, mask)  # [..., T, T]
    return weights, weights


def _masked_softmax_bwd(weights: jax.Array, grad: jax.Array):
    dot = jnp.sum(grad * weights, axis=-1, keepdims=True)  # [..., T, 1]
    return weights * (grad - dot), None  # [..., T, T]; the boolean mask has no gradient


masked_softmax.defvjp(_masked_softmax_fwd, _masked_softmax_bwd)


class SelfAttention(hk.Module):
    """Multi-head self-attention that returns its scores and weights as well as its output."""

    def __init__(self, num_heads: int, key_size: int, name: str | None = None):
        super().__init__(name=name)
        self.num_heads = num_heads
        self.key_size = key_size

    def __call__(
        self,
        x: jax.Array,  # [B, T, D]
        mask: jax.Array,  # [B, 1, T, T] or broadcastable: True where a query may attend to a key
        head_mask: jax.Array,  # [H] 1.0 keeps a head, 0.0 silences it
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        batch, length, d_model = x.shape
        heads, key_size = self.num_heads, self.key_size

        def project(name: str) -> jax.Array:
            y = hk.Linear(heads * key_size, name=name)(x)  # [B, T, H*K]
            return y.reshape(batch, length, heads, key_size)  # [B, T, H, K]

        query, key, value = project("query"), project("key"), project("value")
        scores = jnp.einsum("bthk,bshk->bhts", query, key) / np.sqrt(key_size)  # [B, H, T, T]
        weights = masked_softmax(scores, mask)  # [B, H, T, T]
        context = jnp.einsum("bhts,bshk->bthk", weights, value)  # [B, T, H, K]
        context = context * head_mask[None, None, :, None]  # [B, T, H, K]
        output = hk.Linear(d_model, name="output")(context.reshape(batch, length, heads * key_size))  # [B, T, D]
        return output, scores, weights


def gelu(x: jax.Array) -> jax.Array:
    """Exact GELU, x * Phi(x), written with erf.

    ``jax.nn.gelu(approximate=False)`` computes the same function through erfc, which XLA's CPU backend
    evaluates ~6x slower than erf; at our sizes that alone was a third of the forward pass.
    """
    return 0.5 * x * (1.0 + jax.lax.erf(x * np.float32(1 / np.sqrt(2))))


class FeedForward(hk.Module):
    """Position-wise two-layer MLP with GELU (exact erf form, as in BERT)."""

    def __init__(self, ffn_size: int, name: str | None = None):
        super().__init__(name=name)
        self.ffn_size = ffn_size

    def __call__(self, x: jax.Array) -> jax.Array:  # [B, T, D] -> [B, T, D]
        hidden = gelu(hk.Linear(self.ffn_size, name="expand")(x))  # [B, T, F]
        return hk.Linear(x.shape[-1], name="contract")(hidden)  # [B, T, D]


def _layer_norm(name: str) -> hk.LayerNorm:
    return hk.LayerNorm(axis=-1, create_scale=True, create_offset=True, name=name)


class Encoder(hk.Module):
    """Token embedding + positional encoding, then ``num_layers`` attention/FFN blocks."""

    def __init__(self, config: ModelConfig, name: str = "encoder"):
        super().__init__(name=name)
        self.config = config

    def __call__(
        self,
        token_ids: jax.Array,  # [B, T] int32 model ids
        mask: jax.Array,  # [B, T] bool, True at real tokens
        head_mask: jax.Array | None = None,  # [L, H]
        causal: bool | jax.Array = False,
        is_training: bool = False,
    ) -> EncoderOutput:
        """Runs the encoder.

        ``causal`` may be a Python bool or a traced boolean scalar: the inference engine passes an array
        so that toggling the decoder-style mask does not compile a second program.
        """
        cfg = self.config
        batch, length = token_ids.shape
        if length > cfg.max_len:
            raise ValueError(f"Sequence length {length} exceeds max_len {cfg.max_len}; use a shorter input.")
        if head_mask is None:
            head_mask = jnp.ones((cfg.num_layers, cfg.num_heads), jnp.float32)  # [L, H]
        dropout = cfg.dropout if is_training else 0.0

        def drop(x: jax.Array) -> jax.Array:
            return hk.dropout(hk.next_rng_key(), dropout, x) if dropout > 0 else x

        # Embedding rows start at std 1/sqrt(D) and are scaled by sqrt(D) (section 3.4), so tokens
        # and sinusoids (values in [-1, 1]) enter the residual stream at the same scale.
        embed = hk.Embed(
            cfg.vocab_size,
            cfg.d_model,
            w_init=hk.initializers.TruncatedNormal(stddev=cfg.d_model**-0.5),
            name="token_embedding",
        )
        token_embeddings = embed(token_ids) * np.sqrt(cfg.d_model)  # [B, T, D]
        if cfg.positional == "sinusoidal":
            positions = jnp.asarray(sinusoidal_encoding(length, cfg.d_model))  # [T, D]
        elif cfg.positional == "learned":
            table = hk.get_parameter(
                "positional_embedding",
                [cfg.max_len, cfg.d_model],
                init=hk.initializers.TruncatedNormal(stddev=0.02),
            )  # [max_len, D]
            positions = table[:length]  # [T, D]
        else:
            positions = jnp.zeros((length, cfg.d_model), jnp.float32)  # [T, D]
        embedding_sum = token_embeddings + positions[None]  # [B, T, D]

        attend = mask[:, None, None, :]  # [B, 1, 1, T] keys that exist
        if causal is not False:
            lower = jnp.tril(jnp.ones((length, length), bool))  # [T, T]
            attend = attend & (lower | ~jnp.asarray(causal, bool))[None, None]  # [B, 1, T, T]

        x = drop(embedding_sum)  # [B, T, D]
        hidden_states = [embedding_sum]
        norm_in, norm_out, all_scores, all_weights, attn_outs, ffn_outs = [], [], [], [], [], []
        for layer in range(cfg.num_layers):
            with hk.experimental.name_scope(f"layer_{layer}"):
                attention = SelfAttention(cfg.num_heads, cfg.key_size, name="attention")
                attention_norm = _layer_norm("attention_norm")
                ffn = FeedForward(cfg.ffn_size, name="ffn")
                ffn_norm = _layer_norm("ffn_norm")

            def sublayer(x, fn, norm):
                # post-LN (the paper): LN(x + f(x)); pre-LN: x + f(LN(x)).
                if cfg.layer_norm == "post":
                    y = fn(x)
                    residual = x + drop(y[0] if isinstance(y, tuple) else y)
                    normed = norm(residual)
                    norm_in.append(residual)
                    norm_out.append(normed)
                    return normed, y
                normed = norm(x)
                norm_in.append(x)
                norm_out.append(normed)
                y = fn(normed)
                return x + drop(y[0] if isinstance(y, tuple) else y), y

            x, (attn_out, scores, weights) = sublayer(
                x, lambda h, attention=attention, layer=layer: attention(h, attend, head_mask[layer]), attention_norm
            )  # [B, T, D]
            hidden_states.append(x)
            x, ffn_out = sublayer(x, ffn, ffn_norm)  # [B, T, D]
            hidden_states.append(x)
            all_scores.append(scores)
            all_weights.append(weights)
            attn_outs.append(attn_out)
            ffn_outs.append(ffn_out)

        if cfg.layer_norm == "pre":
            # Pre-LN leaves the residual stream un-normalised; a final LN puts it on the output's scale.
            final_norm = _layer_norm("final_norm")
            norm_in.append(x)
            x = final_norm(x)
            norm_out.append(x)
        logits = hk.Linear(cfg.vocab_size, name="output_head")(x)  # [B, T, V]

        return EncoderOutput(
            logits=logits,
            final_hidden=x,
            token_embeddings=token_embeddings,
            positional_encodings=positions,
            embedding_sum=embedding_sum,
            attention_scores=jnp.stack(all_scores),  # [L, B, H, T, T]
            attention_weights=jnp.stack(all_weights),  # [L, B, H, T, T]
            attention_outputs=jnp.stack(attn_outs),  # [L, B, T, D]
            ffn_outputs=jnp.stack(ffn_outs),  # [L, B, T, D]
            hidden_states=jnp.stack(hidden_states),  # [2L+1, B, T, D]
            layer_norm_inputs=jnp.stack(norm_in),  # [N, B, T, D]
            layer_norm_outputs=jnp.stack(norm_out),  # [N, B, T, D]
        )


def build_model(config: ModelConfig) -> hk.Transformed:
    """The one place ``hk.transform`` is applied.

    ``apply(params, rng, token_ids, mask, head_mask=None, causal=False, is_training=False)``; pass
    ``rng=None`` when not training (dropout is then off).
    """

    def forward(token_ids, mask, head_mask=None, causal=False, is_training=False):
        return Encoder(config)(token_ids, mask, head_mask, causal=causal, is_training=is_training)

    return hk.transform(forward)


def init_params(config: ModelConfig, seed: int = 0) -> hk.Params:
    """Fresh parameters for ``config``; shapes do not depend on the example length."""
    model = build_model(config)
    ids = jnp.zeros((1, 2), jnp.int32)
    return model.init(jax.random.PRNGKey(seed), ids, jnp.ones((1, 2), bool))


def count_parameters(params: hk.Params) -> dict[str, int]:
    """Parameter count per Haiku module, e.g. ``{"encoder/layer_0/attention/query": 4160, ...}``."""
    return {module: sum(int(np.prod(p.shape)) for p in leaves.values()) for module, leaves in params.items()}
