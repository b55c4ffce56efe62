"""Centred finite-difference gradient checks, in float64.

For an upstream gradient G = dL/dY, L = sum(G * f(X)) is a scalar whose derivative with
respect to any input or parameter is exactly what ``backward(G)`` must return. Each
entry is estimated by (L(x + h) - L(x - h)) / 2h (cs231n
``eval_numerical_gradient_array``).
"""

from __future__ import annotations

import numpy as np


def numerical_gradient(
    f, x: np.ndarray, dout: np.ndarray, h: float = 1e-6
) -> np.ndarray:
    """d sum(dout * f()) / dx by centred differences; ``f`` reads ``x`` in place."""
    assert x.dtype == np.float64, "finite differences need float64"
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
    while not it.finished:
        i = it.multi_index
        old = x[i]
        x[i] = old + h
        plus = np.sum(f() * dout)
        x[i] = old - h
        minus = np.sum(f() * dout)
        x[i] = old
        grad[i] = (plus - minus) / (2 * h)
        it.iternext()
    return grad


def check_layer_gradients(
    layer,
    x: np.ndarray,
    *,
    training: bool = True,
    rtol: float = 1e-5,
    atol: float = 1e-7,
    seed: int = 0,
    h: float = 1e-6,
) -> None:
    """Assert dx and every parameter gradient of ``layer`` match finite differences.

    The layer and ``x`` are cast to float64. The layer must be deterministic across
    calls in ``training`` mode (Dropout: fix its mask).
    """
    rng = np.random.default_rng(seed)
    x = np.array(x, dtype=np.float64)
    if not layer.built:
        layer.build(x.shape[1:])
    layer.astype(np.float64)
    y = layer.forward(x, training=training)
    dout = rng.standard_normal(y.shape)
    layer.forward(x, training=training)
    dx = layer.backward(dout)
    analytic = {name: g.copy() for name, g in layer.grads.items()}

    def run():
        return layer.forward(x, training=training)

    num_dx = numerical_gradient(run, x, dout, h)
    np.testing.assert_allclose(dx, num_dx, rtol=rtol, atol=atol, err_msg="dx")
    assert set(analytic) == set(layer.params), "grads and params must share their keys"
    for name, p in layer.params.items():
        num = numerical_gradient(run, p, dout, h)
        assert analytic[name].shape == p.shape, f"grad {name} has the wrong shape"
        np.testing.assert_allclose(
            analytic[name], num, rtol=rtol, atol=atol, err_msg=name
        )
