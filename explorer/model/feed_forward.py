"""The position-wise feed-forward network: ``D -> F``, an activation, ``F -> D``, the same at every token.

Shapes as in ``explorer.model.encoder``: B batch, T tokens, D model width, F feed-forward width.
"""

from __future__ import annotations

from collections.abc import Callable

import haiku as hk
import jax
import numpy as np

from explorer.model.config import ModelConfig


def gelu(x: jax.Array) -> jax.Array:
    """Exact GELU, x * Phi(x), written with erf.

    ``jax.nn.gelu(approximate=False)`` computes the same function through erfc, which XLA's CPU backend
    evaluates ~6x slower than erf; at our sizes that alone was a third of the forward pass.
    """
    return 0.5 * x * (1.0 + jax.lax.erf(x * np.float32(1 / np.sqrt(2))))


def gelu_tanh(x: jax.Array) -> jax.Array:
    """GELU's tanh approximation, ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``: what GPT-2 and some
    BERT-family checkpoints were trained with (Hugging Face's ``gelu_new``, ``gelu_pytorch_tanh``)."""
    return jax.nn.gelu(x, approximate=True)


def relu(x: jax.Array) -> jax.Array:
    return jax.nn.relu(x)


# ModelConfig.ACTIVATIONS by name: the feed-forward's ``activation`` and a prediction head's ``head_activation``.
ACTIVATION_FUNCTIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "gelu": gelu,
    "gelu_tanh": gelu_tanh,
    "relu": relu,
}


class FeedForward(hk.Module):
    """Position-wise two-layer MLP (``expand``, ``contract``) with the activation the config asks for
    (``ModelConfig.activation``: exact GELU as in BERT, its tanh approximation, or ReLU)."""

    def __init__(self, config: ModelConfig, name: str | None = None):
        super().__init__(name=name)
        self.ffn_size = config.ffn_size
        self.activation = ACTIVATION_FUNCTIONS[config.activation]

    def __call__(self, x: jax.Array) -> jax.Array:  # [B, T, D] -> [B, T, D]
        hidden = self.activation(hk.Linear(self.ffn_size, name="expand")(x))  # [B, T, F]
        return hk.Linear(x.shape[-1], name="contract")(hidden)  # [B, T, D]
