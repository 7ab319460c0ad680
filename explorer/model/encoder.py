"""The Transformer encoder, written out so that it can return every intermediate a view needs.

Glossary of shapes:
  B: batch size
  T: sequence length (a padded bucket length inside jit)
  D: model width (d_model)
  H: number of heads
  K: key size per head (D / H)
  F: feed-forward width
  L: number of layers
  N: number of layer norms (2 per layer, plus one on the embeddings for BERT, plus a final one for pre-LN)
  V: vocabulary size (0 for a model without an output head)

``hk.MultiHeadAttention`` does not expose its attention weights, so attention is written here with
einsums over all heads at once. ``hk.transform`` is applied in exactly one place: ``build_model``.
"""

from __future__ import annotations

from typing import NamedTuple

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from explorer.model.config import ModelConfig
from explorer.model.positional import sinusoidal_encoding

# Masked logits get this instead of -inf: -inf - -inf is NaN when a whole row is masked.
_MASKED_SCORE = -1e30


class EncoderOutput(NamedTuple):
    """Everything the forward pass computes that a visualisation may want."""

    # [B, T, V] token predictions (masked-token or next-token). A model without an output head
    # (config.output_head False) has no predictions: [B, T, 0], an empty last axis, so that slicing and
    # batching code keeps working while nothing can be mistaken for a prediction.
    logits: jax.Array
    final_hidden: jax.Array  # [B, T, D] the representation the output head (or a sentence pooling) reads
    token_embeddings: jax.Array  # [B, T, D] embedding rows, scaled by sqrt(D) when config.scale_embeddings
    positional_encodings: jax.Array  # [T, D] what is added for position (zeros for "none")
    token_type_embeddings: jax.Array  # [B, T, D] the segment-0 row added to every token (zeros without types)
    embedding_sum: jax.Array  # [B, T, D] token + position + type; layer 1's input unless config.embedding_norm
    attention_scores: jax.Array  # [L, B, H, T, T] q.k / sqrt(K) before masking and softmax
    attention_weights: jax.Array  # [L, B, H, T, T] softmax weights; masked keys are exactly 0
    attention_outputs: jax.Array  # [L, B, T, D] attention sub-layer output (before the residual add)
    ffn_outputs: jax.Array  # [L, B, T, D] feed-forward sub-layer output (before the residual add)
    hidden_states: jax.Array  # [2L+1, B, T, D] residual stream: layer 1's input, then after every sub-layer
    layer_norm_inputs: jax.Array  # [N, B, T, D] what each layer norm normalised
    layer_norm_outputs: jax.Array  # [N, B, T, D] what each layer norm produced


def _layer_norms(config: ModelConfig) -> list[tuple[str, str]]:
    """The ``N`` layer norms in the order of ``EncoderOutput.layer_norm_*``: ``(label, Haiku module name)``."""
    norms = [("embedding LN", "encoder/embedding_norm")] if config.embedding_norm else []
    for layer in range(config.num_layers):
        norms += [
            (f"layer {layer + 1} · attention LN", f"encoder/layer_{layer}/attention_norm"),
            (f"layer {layer + 1} · feed-forward LN", f"encoder/layer_{layer}/ffn_norm"),
        ]
    if config.layer_norm == "pre":
        norms.append(("final LN", "encoder/final_norm"))
    return norms


def layer_norm_names(config: ModelConfig) -> list[str]:
    """Names of the ``N`` layer norms, in the order of ``EncoderOutput.layer_norm_*``."""
    return [label for label, _ in _layer_norms(config)]


def layer_norm_param_names(config: ModelConfig) -> list[str]:
    """Haiku module names of the layer norms, aligned with ``layer_norm_names``."""
    return [module for _, module in _layer_norms(config)]


def hidden_state_names(config: ModelConfig) -> list[str]:
    """Names of the ``2L+1`` residual-stream snapshots in ``EncoderOutput.hidden_states``."""
    first = "embedding + position" + (" + type" if config.token_types else "")
    names = [f"{first} · after LN" if config.embedding_norm else first]
    for layer in range(config.num_layers):
        names += [f"layer {layer + 1} · after attention", f"layer {layer + 1} · after feed-forward"]
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


def take_positions(x: jax.Array, positions: jax.Array) -> jax.Array:
    """Rows of ``x`` at ``positions``: ``[B, T, ...]``, ``[B, P]`` -> ``[B, P, ...]``."""
    index = positions.reshape(positions.shape + (1,) * (x.ndim - 2))  # [B, P, 1...]
    return jnp.take_along_axis(x, index, axis=1)


def _linear_params(name: str, fan_in: int, fan_out: int) -> tuple[jax.Array, jax.Array]:
    """``hk.Linear``'s parameters ``w [fan_in, fan_out]`` and ``b [fan_out]``, under the same name.

    Called from a module's ``__call__`` (a method's name would add a ``~method`` level to the names).
    """
    with hk.experimental.name_scope(name):
        w_init = hk.initializers.TruncatedNormal(stddev=1.0 / np.sqrt(fan_in))  # hk.Linear's default
        w = hk.get_parameter("w", [fan_in, fan_out], init=w_init)
        b = hk.get_parameter("b", [fan_out], init=jnp.zeros)
    return w, b


class SelfAttention(hk.Module):
    """Multi-head self-attention that returns its scores and weights as well as its output.

    The parameters are those of four ``hk.Linear`` (``query``, ``key``, ``value``, ``output``: same names,
    shapes and initialisation), but the products are laid out here, for training speed on a CPU: key and
    value come from one ``[D, 2HK]`` product (so their weight gradient is one product too, where XLA ran
    two narrow ``[D, HK]`` ones slowly), and heads move to the front once (``[B, H, T, K]``), so every
    attention product is a plain batched matmul rather than an einsum re-laid out around each product.
    Measured together, an MLM training step (batch 32 x 64, default model, 2 cores) ran ~10% faster. The
    query is scaled by ``1/sqrt(K)`` before ``q @ k^T``: the same scores, scaled as ``[B, H, Q, K]``
    rather than ``[B, H, Q, T]``.
    ``queries`` restricts the queries to some positions per row (keys and values still span the whole row):
    training asks for the last layer's output only where the loss reads it.
    """

    def __init__(self, num_heads: int, key_size: int, name: str | None = None):
        super().__init__(name=name)
        self.num_heads = num_heads
        self.key_size = key_size

    def __call__(
        self,
        x: jax.Array,  # [B, T, D]
        mask: jax.Array,  # [B, 1, 1 | Q, T]: True where a query may attend to a key
        head_mask: jax.Array,  # [H] 1.0 keeps a head, 0.0 silences it
        queries: jax.Array | None = None,  # [B, Q] positions whose output is wanted; None: all (Q = T)
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Returns the output ``[B, Q, D]``, scores ``[B, H, Q, T]`` and weights ``[B, H, Q, T]``."""
        batch, length, d_model = x.shape
        heads, key_size = self.num_heads, self.key_size
        width = heads * key_size
        (wq, bq), (wk, bk), (wv, bv) = (_linear_params(n, d_model, width) for n in ("query", "key", "value"))

        def split_heads(y: jax.Array, count: int) -> jax.Array:  # [B, N, count*H*K] -> [count, B, H, N, K]
            return y.reshape(batch, y.shape[1], count, heads, key_size).transpose(2, 0, 3, 1, 4)

        key, value = split_heads(x @ jnp.concatenate([wk, wv], axis=1) + jnp.concatenate([bk, bv]), 2)
        x_query = x if queries is None else take_positions(x, queries)  # [B, Q, D]
        query = split_heads((x_query @ wq + bq) * np.float32(1 / np.sqrt(key_size)), 1)[0]  # [B, H, Q, K]
        scores = query @ key.swapaxes(-1, -2)  # [B, H, Q, T]
        weights = masked_softmax(scores, mask)  # [B, H, Q, T]
        context = (weights @ value) * head_mask[None, :, None, None]  # [B, H, Q, K]
        context = context.transpose(0, 2, 1, 3).reshape(batch, -1, width)  # [B, Q, H*K]
        wo, bo = _linear_params("output", width, d_model)
        return context @ wo + bo, scores, weights  # [B, Q, D]


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


def _layer_norm(name: str, eps: float) -> hk.LayerNorm:
    return hk.LayerNorm(axis=-1, create_scale=True, create_offset=True, eps=eps, name=name)


class Encoder(hk.Module):
    """Token embedding + positional encoding (+ token type, layer norm: BERT), then ``num_layers`` blocks."""

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
        predict_at: jax.Array | None = None,  # [B, P] positions; see below
    ) -> EncoderOutput | jax.Array:
        """Runs the encoder and returns every intermediate (``EncoderOutput``).

        ``causal`` may be a Python bool or a traced boolean scalar: the inference engine passes an array
        so that toggling the decoder-style mask does not compile a second program.

        ``predict_at`` is for training: it returns only the final hidden states at those positions,
        ``[B, P, D]``, and computes the last layer only there. After the last layer's attention has mixed
        the positions, everything is position-wise, so the rows the loss never reads need no queries,
        feed-forward or layer norm; for masked-token prediction (P = 15% of T) that skips most of the
        last layer, and the loss and gradients are unchanged.
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
        # and sinusoids (values in [-1, 1]) enter the residual stream at the same scale. BERT adds its
        # rows unscaled (its embedding layer norm sets the scale instead).
        embed = hk.Embed(
            cfg.vocab_size,
            cfg.d_model,
            w_init=hk.initializers.TruncatedNormal(stddev=cfg.d_model**-0.5),
            name="token_embedding",
        )
        token_embeddings = embed(token_ids)  # [B, T, D]
        if cfg.scale_embeddings:
            token_embeddings = token_embeddings * np.sqrt(cfg.d_model)  # [B, T, D]
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
        if cfg.token_types:
            # Every token is in segment 0: inference encodes one text at a time, never a sentence pair.
            types = hk.Embed(
                cfg.token_types,
                cfg.d_model,
                w_init=hk.initializers.TruncatedNormal(stddev=0.02),
                name="token_type_embedding",
            )
            token_type_embeddings = types(jnp.zeros_like(token_ids))  # [B, T, D]
            embedding_sum = embedding_sum + token_type_embeddings  # [B, T, D]
        else:
            token_type_embeddings = jnp.zeros_like(token_embeddings)  # [B, T, D]

        attend = mask[:, None, None, :]  # [B, 1, 1, T] keys that exist
        if causal is not False:
            lower = jnp.tril(jnp.ones((length, length), bool))  # [T, T]
            attend = attend & (lower | ~jnp.asarray(causal, bool))[None, None]  # [B, 1, T, T]

        norm_in, norm_out, all_scores, all_weights, attn_outs, ffn_outs = [], [], [], [], [], []

        def normalise(norm: hk.LayerNorm, h: jax.Array) -> jax.Array:
            norm_in.append(h)
            norm_out.append(norm(h))
            return norm_out[-1]

        x = embedding_sum  # [B, T, D]
        if cfg.embedding_norm:
            x = normalise(_layer_norm("embedding_norm", cfg.layer_norm_eps), x)  # [B, T, D]
        hidden_states = [x]
        x = drop(x)  # [B, T, D]

        for layer in range(cfg.num_layers):
            with hk.experimental.name_scope(f"layer_{layer}"):
                attention = SelfAttention(cfg.num_heads, cfg.key_size, name="attention")
                attention_norm = _layer_norm("attention_norm", cfg.layer_norm_eps)
                ffn = FeedForward(cfg.ffn_size, name="ffn")
                ffn_norm = _layer_norm("ffn_norm", cfg.layer_norm_eps)
            queries = predict_at if layer == cfg.num_layers - 1 else None  # [B, Q] or None (all T)
            layer_attend = attend  # [B, 1, 1 | T, T]
            if queries is not None and attend.shape[2] > 1:  # a causal mask has a row per query
                layer_attend = take_positions(attend[:, 0], queries)[:, None]  # [B, 1, Q, T]
            at_queries = (lambda h: h) if queries is None else (lambda h, q=queries: take_positions(h, q))

            # post-LN (the paper): LN(x + f(x)); pre-LN: x + f(LN(x)). Shapes: x [B, T, D] -> [B, Q, D].
            attn_in = x if cfg.layer_norm == "post" else normalise(attention_norm, x)
            attn_out, scores, weights = attention(attn_in, layer_attend, head_mask[layer], queries)
            x = at_queries(x) + drop(attn_out)
            if cfg.layer_norm == "post":
                x = normalise(attention_norm, x)
            hidden_states.append(x)
            ffn_out = ffn(x if cfg.layer_norm == "post" else normalise(ffn_norm, x))
            x = x + drop(ffn_out)
            if cfg.layer_norm == "post":
                x = normalise(ffn_norm, x)
            hidden_states.append(x)
            all_scores.append(scores)
            all_weights.append(weights)
            attn_outs.append(attn_out)
            ffn_outs.append(ffn_out)

        if cfg.layer_norm == "pre":
            # Pre-LN leaves the residual stream un-normalised; a final LN puts it on the output's scale.
            final_norm = _layer_norm("final_norm", cfg.layer_norm_eps)
            norm_in.append(x)
            x = final_norm(x)
            norm_out.append(x)
        if predict_at is not None:
            return x  # [B, P, D]
        if not cfg.output_head:
            logits = jnp.zeros(x.shape[:2] + (0,), x.dtype)  # [B, T, 0]: no head, no predictions
        elif cfg.tie_embeddings:
            # The output head reads the embedding table backwards (Press & Wolf, 2017): a rare token's
            # row then learns from every prediction of it, not only from its uses as an input.
            bias = hk.get_parameter("output_bias", [cfg.vocab_size], init=jnp.zeros)  # [V]
            logits = x @ embed.embeddings.T + bias  # [B, T, V]
        else:
            logits = hk.Linear(cfg.vocab_size, name="output_head")(x)  # [B, T, V]

        return EncoderOutput(
            logits=logits,
            final_hidden=x,
            token_embeddings=token_embeddings,
            positional_encodings=positions,
            token_type_embeddings=token_type_embeddings,
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

    ``apply(params, rng, token_ids, mask, head_mask=None, causal=False, is_training=False, predict_at=None)``;
    pass ``rng=None`` when not training (dropout is then off). Returns an ``EncoderOutput``, or with
    ``predict_at`` (``[B, P]`` positions) the final hidden states there, ``[B, P, D]`` (see ``Encoder``).
    """

    def forward(token_ids, mask, head_mask=None, causal=False, is_training=False, predict_at=None):
        encoder = Encoder(config)
        return encoder(token_ids, mask, head_mask, causal=causal, is_training=is_training, predict_at=predict_at)

    return hk.transform(forward)


def init_params(config: ModelConfig, seed: int = 0) -> hk.Params:
    """Fresh parameters for ``config``; shapes do not depend on the example length."""
    model = build_model(config)
    ids = jnp.zeros((1, 2), jnp.int32)
    return model.init(jax.random.PRNGKey(seed), ids, jnp.ones((1, 2), bool))


OUTPUT_HEAD = "encoder/output_head"  # the Linear that maps the final hidden state to logits
TIED_BIAS = ("encoder", "output_bias")  # with tied embeddings, the head's only parameter of its own


def output_logits(params: hk.Params, hidden: jax.Array) -> jax.Array:
    """The output head on some final hidden states, ``[..., D]`` -> ``[..., V]``, outside ``apply``.

    Training calls it on the scored positions only, and the logit lens on every residual snapshot.
    """
    if OUTPUT_HEAD in params:
        head = params[OUTPUT_HEAD]
        return hidden @ head["w"] + head["b"]  # [..., V]
    table = params["encoder/token_embedding"]["embeddings"]  # [V, D], tied (ModelConfig.tie_embeddings)
    return hidden @ table.T + params[TIED_BIAS[0]][TIED_BIAS[1]]  # [..., V]


def count_parameters(params: hk.Params) -> dict[str, int]:
    """Parameter count per Haiku module, e.g. ``{"encoder/layer_0/attention/query": 4160, ...}``.

    Parameters that sit on the encoder itself (a learned positional table, a tied head's bias) are counted
    one by one, ``encoder/positional_embedding``, so each can be grouped with what it belongs to.
    """
    counts = {}
    for module, leaves in params.items():
        if module == "encoder":
            counts.update({f"{module}/{name}": int(np.prod(p.shape)) for name, p in leaves.items()})
        else:
            counts[module] = sum(int(np.prod(p.shape)) for p in leaves.values())
    return counts
