"""The feed-forward activations in plain numpy, keyed by ``ModelConfig.activation``, with their formula and
what they do in words (for ``explorer.interpret.trace``'s independent recomputation of a layer).

Configs from before the field existed mean exact GELU, the only activation the encoder had then.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from explorer.model.config import ModelConfig

_erf = np.vectorize(math.erf, otypes=[np.float64])


@dataclass(frozen=True)
class Activation:
    function: Callable[[np.ndarray], np.ndarray]
    formula: str  # LaTeX, of z
    name: str  # as a person reads it
    effect: str  # what it does, in words


# The feed-forward activation by ``ModelConfig.activation`` (absent in configs that only knew exact GELU).
ACTIVATIONS = {
    "gelu": Activation(
        lambda z: 0.5 * z * (1.0 + _erf(z / math.sqrt(2.0))),
        r"\mathrm{GELU}(z) = z\,\Phi(z)",
        "GELU",
        "(Φ: the standard normal distribution's CDF) passes large positive numbers almost unchanged and "
        "squashes negative ones towards 0",
    ),
    "gelu_tanh": Activation(
        lambda z: 0.5 * z * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (z + 0.044715 * z**3))),
        r"\tfrac{z}{2}\left(1 + \tanh\left(\sqrt{2/\pi}\,(z + 0.044715\,z^3)\right)\right)",
        "GELU (tanh approximation)",
        "passes large positive numbers almost unchanged and squashes negative ones towards 0",
    ),
    "relu": Activation(
        lambda z: np.maximum(z, 0.0),
        r"\mathrm{ReLU}(z) = \max(0, z)",
        "ReLU",
        "keeps positive numbers and sets negative ones to exactly 0",
    ),
}


def activation_for(config: ModelConfig) -> Activation:
    """The feed-forward activation ``config`` names (exact GELU for configs without the field)."""
    name = getattr(config, "activation", "gelu")
    if name not in ACTIVATIONS:
        raise ValueError(f"No numpy version of the activation {name!r}; known: {sorted(ACTIVATIONS)}.")
    return ACTIVATIONS[name]
