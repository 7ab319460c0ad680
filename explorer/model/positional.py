"""Positional encodings: the sinusoids of "Attention is all you need", section 3.5.

PE[pos, 2i] = sin(pos / 10000^(2i/d)), PE[pos, 2i+1] = cos(pos / 10000^(2i/d)). Each pair of dimensions
is a clock at its own frequency, so a fixed offset between two positions is a fixed rotation: the
reason nearby positions have similar encodings and the model can attend by relative position.
"""

from __future__ import annotations

import numpy as np

# The paper's base wavelength: frequencies form a geometric series from 2*pi to 10000*2*pi.
BASE = 10_000.0


def sinusoidal_encoding(length: int, d_model: int) -> np.ndarray:
    """Returns the sinusoidal encoding, float32 ``[T, D]`` with ``T = length`` and ``D = d_model``.

    Computed in numpy so it becomes a compile-time constant inside jitted code.
    """
    if d_model % 2:
        raise ValueError(f"Sinusoidal encoding needs an even d_model, got {d_model}.")
    if length < 0:
        raise ValueError(f"length must be non-negative, got {length}.")
    positions = np.arange(length, dtype=np.float64)[:, None]  # [T, 1]
    two_i = np.arange(0, d_model, 2, dtype=np.float64)[None, :]  # [1, D/2]
    angles = positions / np.power(BASE, two_i / d_model)  # [T, D/2]
    encoding = np.empty((length, d_model), dtype=np.float64)  # [T, D]
    encoding[:, 0::2] = np.sin(angles)
    encoding[:, 1::2] = np.cos(angles)
    return encoding.astype(np.float32)


def wavelengths(d_model: int) -> np.ndarray:
    """The wavelength (in positions) of each dimension pair, ``[D/2]``: what the curves on the page show."""
    two_i = np.arange(0, d_model, 2, dtype=np.float64)
    return 2 * np.pi * np.power(BASE, two_i / d_model)


def default_curve_dimensions(d_model: int) -> list[int]:
    """Dimensions worth plotting first: the fastest clock pair (0, 1), a slower pair (10, 11) and one of
    the slowest, distinct and in order (a small ``d_model`` would otherwise repeat one: 12 gave 0, 1, 10,
    11, 10)."""
    return sorted({d for d in (0, 1, 10, 11, d_model - 2) if 0 <= d < d_model})
