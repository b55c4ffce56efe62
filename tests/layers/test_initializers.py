"""Initialisers: fans from cnnumpy layouts, the variance each law promises, seeding."""

import numpy as np
import pytest

import cnnumpy
from cnnumpy import initializers
from cnnumpy.layers import Conv2D, Dense


def test_fans_follow_cnnumpy_layouts():
    assert initializers.compute_fans((784, 100)) == (784, 100)  # Dense (in, out)
    assert initializers.compute_fans((16, 6, 5, 5)) == (
        150,
        400,
    )  # Conv2D (F, C, KH, KW)
    assert initializers.compute_fans((8, 3, 7)) == (21, 56)  # Conv1D (F, C, K)
    with pytest.raises(ValueError, match="expected a weight of rank >= 2"):
        initializers.compute_fans((10,))


@pytest.mark.parametrize(
    "name, variance",
    [
        ("he_normal", lambda fi, fo: 2 / fi),
        ("he_uniform", lambda fi, fo: 2 / fi),
        ("glorot_normal", lambda fi, fo: 2 / (fi + fo)),
        ("glorot_uniform", lambda fi, fo: 2 / (fi + fo)),
        ("lecun_normal", lambda fi, fo: 1 / fi),
        ("lecun_uniform", lambda fi, fo: 1 / fi),
    ],
)
@pytest.mark.parametrize("shape", [(400, 300), (64, 32, 3, 3)])
def test_variance_of_each_law(name, variance, shape):
    w = initializers.get(name)(shape, np.random.default_rng(0), np.float64)
    fan_in, fan_out = initializers.compute_fans(shape)
    assert w.shape == shape and w.dtype == np.float64
    assert abs(w.mean()) < 0.05 * np.sqrt(variance(fan_in, fan_out))
    np.testing.assert_allclose(w.var(), variance(fan_in, fan_out), rtol=0.05)
    if name.endswith("uniform"):
        assert np.abs(w).max() <= np.sqrt(3 * variance(fan_in, fan_out))


def test_defaults_and_seeding():
    cnnumpy.seed(42)
    a = Conv2D(8, 3)
    a.build((3, 10, 10))
    d1 = Dense(5)
    d1.build((20,))
    cnnumpy.seed(42)
    b = Conv2D(8, 3)
    b.build((3, 10, 10))
    d2 = Dense(5)
    d2.build((20,))
    np.testing.assert_array_equal(a.params["W"], b.params["W"])
    np.testing.assert_array_equal(d1.params["W"], d2.params["W"])
    assert a.params["W"].dtype == np.float32 and not a.params["b"].any()
    # He normal by default: Var(W) = 2 / fan_in
    cnnumpy.seed(0)
    big = Dense(500)
    big.build((1000,))
    np.testing.assert_allclose(big.params["W"].var(), 2 / 1000, rtol=0.03)


def test_unknown_initializer():
    with pytest.raises(ValueError, match="unknown initializer 'he'"):
        initializers.get("he")
