"""Multi-head self-attention that returns its scores and weights, and the masks it reads.

Shapes as in ``explorer.model.encoder``: B batch, T tokens, Q queries (T, or the positions a training
loss reads), D model width, H heads, K key size.

``hk.MultiHeadAttention`` does not expose its attention weights, so attention is written here with
products over all heads at once.
"""

from __future__ import annotations

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

# Masked logits get this instead of -inf: -inf - -inf is NaN when a whole row is masked.
_MASKED_SCORE = -1e30


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


def attention_mask(mask: jax.Array, causal: bool | jax.Array = False) -> jax.Array:
    """Which keys each query may attend to: ``[B, T]`` real tokens -> ``[B, 1, 1, T]``, or with ``causal``
    ``[B, 1, T, T]`` (query i sees keys 0..i). ``causal`` may be a traced boolean scalar, so that toggling
    it does not compile a second program."""
    attend = mask[:, None, None, :]  # [B, 1, 1, T] keys that exist
    if causal is not False:
        length = mask.shape[1]
        lower = jnp.tril(jnp.ones((length, length), bool))  # [T, T]
        attend = attend & (lower | ~jnp.asarray(causal, bool))[None, None]  # [B, 1, T, T]
    return attend


def take_positions(x: jax.Array, positions: jax.Array) -> jax.Array:
    """Rows of ``x`` at ``positions``: ``[B, T, ...]``, ``[B, P]`` -> ``[B, P, ...]``."""
    index = positions.reshape(positions.shape + (1,) * (x.ndim - 2))  # [B, P, 1...]
    return jnp.take_along_axis(x, index, axis=1)


def linear_params(name: str, fan_in: int, fan_out: int) -> tuple[jax.Array, jax.Array]:
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
    shapes and initialisation), but the products are laid out here, for speed on a CPU. In training
    (``fuse_key_value``) key and value come from one ``[D, 2HK]`` product (so their weight gradient is one
    product too, where XLA ran two narrow ``[D, HK]`` ones slowly). Outside training they are two products:
    joining the weights copies ``2 x D x HK`` floats on every call, which a training batch amortises but a
    single sentence does not (BERT-base at 32 tokens, alternating processes on 2 cores: the forward's CPU
    time fell by a third). Heads move to the front once (``[B, H, T, K]``), so every
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
        fuse_key_value: bool = False,  # one product for key and value (training: see the class docstring)
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Returns the output ``[B, Q, D]``, scores ``[B, H, Q, T]`` and weights ``[B, H, Q, T]``."""
        batch, length, d_model = x.shape
        heads, key_size = self.num_heads, self.key_size
        width = heads * key_size
        (wq, bq), (wk, bk), (wv, bv) = (linear_params(n, d_model, width) for n in ("query", "key", "value"))

        def split_heads(y: jax.Array, count: int) -> jax.Array:  # [B, N, count*H*K] -> [count, B, H, N, K]
            return y.reshape(batch, y.shape[1], count, heads, key_size).transpose(2, 0, 3, 1, 4)

        if fuse_key_value:
            key, value = split_heads(x @ jnp.concatenate([wk, wv], axis=1) + jnp.concatenate([bk, bv]), 2)
        else:
            key, value = split_heads(x @ wk + bk, 1)[0], split_heads(x @ wv + bv, 1)[0]  # [B, H, T, K] each
        x_query = x if queries is None else take_positions(x, queries)  # [B, Q, D]
        query = split_heads((x_query @ wq + bq) * np.float32(1 / np.sqrt(key_size)), 1)[0]  # [B, H, Q, K]
        scores = query @ key.swapaxes(-1, -2)  # [B, H, Q, T]
        weights = masked_softmax(scores, mask)  # [B, H, Q, T]
        context = (weights @ value) * head_mask[None, :, None, None]  # [B, H, Q, K]
        context = context.transpose(0, 2, 1, 3).reshape(batch, -1, width)  # [B, Q, H*K]
        wo, bo = linear_params("output", width, d_model)
        return context @ wo + bo, scores, weights  # [B, Q, D]
