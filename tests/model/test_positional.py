"""The sinusoidal encoding matches the paper's formula, computed independently here."""

import math

import numpy as np
import pytest

from explorer.model.positional import default_curve_dimensions, sinusoidal_encoding, wavelengths


@pytest.mark.parametrize("length,d_model", [(1, 2), (7, 4), (50, 16), (512, 64), (33, 10)])
def test_matches_formula(length, d_model):
    encoding = sinusoidal_encoding(length, d_model)
    assert encoding.shape == (length, d_model)
    assert encoding.dtype == np.float32
    expected = np.zeros((length, d_model))
    for pos in range(length):
        for i in range(d_model // 2):
            angle = pos / 10000 ** (2 * i / d_model)
            expected[pos, 2 * i] = math.sin(angle)
            expected[pos, 2 * i + 1] = math.cos(angle)
    np.testing.assert_allclose(encoding, expected, atol=1e-6)


def test_first_position_and_bounds():
    encoding = sinusoidal_encoding(100, 32)
    np.testing.assert_array_equal(encoding[0, 0::2], 0.0)
    np.testing.assert_array_equal(encoding[0, 1::2], 1.0)
    assert np.abs(encoding).max() <= 1.0


def test_relative_offset_is_a_rotation():
    # PE[p + k] is a fixed linear function of PE[p] for each dimension pair: the property the paper cites.
    d_model, offset = 8, 3
    encoding = sinusoidal_encoding(40, d_model).astype(np.float64)
    for i, wavelength in enumerate(wavelengths(d_model)):
        theta = 2 * np.pi * offset / wavelength
        rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
        pairs = encoding[:, 2 * i : 2 * i + 2]
        np.testing.assert_allclose(pairs[:-offset] @ rotation, pairs[offset:], atol=1e-5)


def test_odd_width_rejected():
    with pytest.raises(ValueError, match="even"):
        sinusoidal_encoding(4, 5)


@pytest.mark.parametrize("d_model", [2, 4, 12, 13, 64, 384])
def test_default_curve_dimensions_are_distinct_and_exist(d_model):
    dims = default_curve_dimensions(d_model)
    assert dims == sorted(set(dims)) and all(0 <= d < d_model for d in dims)
    assert {0, 1} <= set(dims)  # the fastest clock pair is always shown
    if d_model > 11:
        assert {10, 11, d_model - 2} <= set(dims)
