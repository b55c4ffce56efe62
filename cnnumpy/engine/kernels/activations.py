"""Activation functions and their backward passes (seed 002, "Couche d'activation").

An element-wise activation maps Y = f(X), so its backward pass is the Hadamard product
``dE/dX = dE/dY * f'(X)``. Each ``*_forward`` keeps only what ``f'`` needs: a boolean
mask for ReLU and LeakyReLU, the output for sigmoid, tanh and softmax (their derivatives
are written with the output: sigmoid' = s (1 - s), tanh' = 1 - t^2), both for ELU
(ELU' = 1 if x > 0 else ELU + alpha).

Softmax (seed 004, eq. 4) is not element-wise. Along its axis, with m = max_k z_k
(seed 000: subtracting the maximum changes nothing and keeps ``exp`` from overflowing)::

    s_j = exp(z_j - m) / sum_k exp(z_k - m)

Its Jacobian is ds_j/dz_i = s_j (delta_ij - s_i), so the Jacobian-vector product is
``dz = s * (g - sum(g * s))`` with ``g = dE/ds``.

Every function accepts arrays of any shape and keeps their float dtype.
"""

from __future__ import annotations

import numpy as np

from cnnumpy.engine.kernels.parallel import by_rows, zeros
from cnnumpy.textbook.activations import sigmoid


def _floating(x) -> np.ndarray:
    """``x`` as a float array (integers and booleans become float64)."""
    x = np.asarray(x)
    return x if np.issubdtype(x.dtype, np.floating) else x.astype(np.float64)


# -- ReLU: f(x) = max(0, x), f'(x) = 1 if x > 0 else 0 ---------------------------------
#
# Why these are fast: every element-wise pass runs on both cores (``by_rows`` hands
# each worker thread a part of the arrays; a ufunc alone uses one core). ``x * mask``
# and ``dout * mask`` are branch-free vector loops: ``np.where`` (and ``copyto`` with
# ``where=``) branch on every element, and with the random signs of activations the
# processor mispredicts half of them (10 to 20 times slower on a million floats).
# ``np.maximum(x, zeros)`` beats ``np.maximum(x, 0)`` 4x (see ``parallel.zeros``).


def relu_forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Returns ``(out, mask)`` with ``mask = x > 0``, all the backward pass needs."""
    x = np.asarray(x)
    out, mask = np.empty_like(x), np.empty(x.shape, dtype=bool)

    def part(x, out, mask):
        np.greater(x, 0, out=mask)
        np.maximum(x, zeros(x.shape, x.dtype), out=out)

    by_rows(part, x, out, mask)
    return out, mask


def relu_backward(dout: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """dE/dX = dE/dY * 1[x > 0] (the derivative at 0 is taken as 0, like PyTorch)."""
    dx = np.empty_like(dout)
    by_rows(lambda g, m, dx: np.multiply(g, m, out=dx), dout, mask, dx)
    return dx


# -- LeakyReLU: f(x) = x if x > 0 else alpha x -----------------------------------------


def _leaky(pos: np.ndarray, neg: np.ndarray, alpha: float) -> np.ndarray:
    """``pos + alpha * neg`` in place of ``pos``, where ``pos`` and ``neg`` split a
    value exactly (one of the two is 0 at each position): branch-free, and exact
    because one term of each sum is zero."""
    neg *= pos.dtype.type(alpha)
    pos += neg
    return pos


def leaky_relu_forward(x: np.ndarray, alpha: float = 0.01) -> tuple[np.ndarray, tuple]:
    """Returns ``(out, (mask, alpha))`` with ``mask = x > 0``.

    ``out = max(x, alpha * x)`` when ``0 < alpha <= 1`` (two array passes), else
    ``max(x, 0) + alpha * min(x, 0)`` (also for ``alpha = 0``, where ``0 * inf``
    would make ``max(x, alpha * x)`` NaN).
    """
    alpha = float(alpha)
    x = np.asarray(x)
    out, mask = np.empty_like(x), np.empty(x.shape, dtype=bool)

    def part(x, out, mask):
        np.greater(x, 0, out=mask)
        if 0.0 < alpha <= 1.0:
            np.multiply(x, x.dtype.type(alpha), out=out)
            np.maximum(out, x, out=out)
            return
        z = zeros(x.shape, x.dtype)
        np.maximum(x, z, out=out)
        _leaky(out, np.minimum(x, z), alpha)

    by_rows(part, x, out, mask)
    return out, (mask, alpha)


def leaky_relu_backward(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """dE/dX = dE/dY * (1 if x > 0 else alpha).

    ``dout * mask`` and ``dout - dout * mask`` split ``dout`` exactly.
    """
    mask, alpha = cache
    dx = np.empty_like(dout)

    def part(g, m, dx):
        np.multiply(g, m, out=dx)
        _leaky(dx, g - dx, alpha)

    by_rows(part, dout, mask, dx)
    return dx


# -- sigmoid: s = 1 / (1 + exp(-x)), s' = s (1 - s) ------------------------------------


def sigmoid_forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Returns ``(out, out)``: the derivative is written with the output."""
    x = _floating(x)
    out = np.empty_like(x)
    by_rows(lambda x, out: np.copyto(out, sigmoid(x)), x, out)
    return out, out


def sigmoid_backward(dout: np.ndarray, out: np.ndarray) -> np.ndarray:
    """dE/dX = dE/dY * s (1 - s) (seed 000: phi' = phi (1 - phi))."""
    dx = np.empty(np.shape(dout), dtype=np.result_type(dout, out, np.float16))

    def part(g, s, dx):
        np.subtract(1, s, out=dx)
        dx *= s
        dx *= g

    by_rows(part, dout, out, dx)
    return dx


# -- tanh: t = tanh(x), t' = 1 - t^2 ---------------------------------------------------


def tanh_forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Returns ``(out, out)``: the derivative is written with the output."""
    x = _floating(x)
    out = np.empty_like(x)
    by_rows(lambda x, out: np.tanh(x, out=out), x, out)
    return out, out


def tanh_backward(dout: np.ndarray, out: np.ndarray) -> np.ndarray:
    """dE/dX = dE/dY * (1 - tanh(x)^2) (seed 002, ``tanh_prime``), in place in one
    array per part."""
    dx = np.empty(np.shape(dout), dtype=np.result_type(dout, out, np.float16))

    def part(g, t, dx):
        np.multiply(t, t, out=dx)
        np.subtract(1, dx, out=dx)
        dx *= g

    by_rows(part, dout, out, dx)
    return dx


# -- ELU: f(x) = x if x > 0 else alpha (e^x - 1), f'(x) = 1 if x > 0 else f(x) + alpha -


def elu_forward(x: np.ndarray, alpha: float = 1.0) -> tuple[np.ndarray, tuple]:
    """Returns ``(out, (mask, out, alpha))``, as the book's.

    ``out = max(x, 0) + alpha expm1(min(x, 0))``: one of the two terms is 0 at each
    position, so the sum is exact and equals the book's ``np.where`` without its
    branch per element. Measured (best of 30, 2-core Xeon, N(0, 1) inputs): float32
    forward 5.5 -> 1.4 ms on a million floats, 0.29 -> 0.05 ms on 65,536; backward
    4.9 -> 1.8 ms and 0.27 -> 0.06 ms; float64 about 4x forward, 1.4-1.6x backward.
    (arctan has no kernel: NumPy's ``arctan`` is vectorised and bound by memory, and
    splitting it over the cores measured 0.7-0.9x forward, 0.7-1.3x backward.)
    """
    alpha = float(alpha)
    x = np.asarray(x)
    out, mask = np.empty_like(x), np.empty(x.shape, dtype=bool)

    def part(x, out, mask):
        np.greater(x, 0, out=mask)
        z = zeros(x.shape, x.dtype)
        negative_side = np.minimum(x, z)
        np.expm1(negative_side, out=negative_side)
        negative_side *= x.dtype.type(alpha)
        np.maximum(x, z, out=out)
        out += negative_side

    by_rows(part, x, out, mask)
    return out, (mask, out, alpha)


def elu_backward(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """dE/dX = dE/dY * (1 if x > 0 else ELU(x) + alpha).

    ``dout * mask`` and ``dout - dout * mask`` split ``dout`` exactly; the second
    part, zero where x > 0, is multiplied by ``out + alpha``, finite for finite x
    (an input of +inf would give NaN here, ``dout`` in the book).
    """
    mask, out, alpha = cache
    dx = np.empty_like(dout)

    def part(g, m, y, dx):
        np.multiply(g, m, out=dx)
        rest = g - dx
        rest *= y + y.dtype.type(alpha)
        dx += rest

    by_rows(part, dout, mask, out, dx)
    return dx


# -- in place, no cache: fused inference ----------------------------------------------
#
# ``cnnumpy.engine.fusion`` runs ReLU or LeakyReLU on each chunk of a convolution's
# output while the chunk is in cache, and tanh when an average pool follows it. Same
# arithmetic as the ``*_forward`` above, so the same values, except float32 tanh
# (see :func:`tanh_inplace`). (Tanh alone is not fused:
# it is bound by arithmetic, not memory, and the convolution's chunks also hold the
# wide grid's junk columns; fused with the pool it saves a pass over the activations.)


def relu_inplace(a: np.ndarray) -> None:
    """``a = max(a, 0)`` in place."""
    np.maximum(a, zeros(a.shape, a.dtype), out=a)


def tanh_inplace(a: np.ndarray) -> None:
    """``a = tanh(a)`` in place; in float32 as ``1 - 2 / (exp(2a) + 1)``.

    Why: NumPy's float32 ``tanh`` is not vectorised on this project's machine (2.6 ns
    per float on one core) while its ``exp`` takes 1.3 ns, so the formula, five
    passes, takes about 1.8 ns. Its error is absolute, not relative: at most 1.8e-7
    against the exact tanh over [-20, 20] and magnitudes down to 1e-30 (NumPy's
    float32 tanh: 6e-8), i.e. float32 rounding of values near 1; tiny outputs near 0
    lose their relative precision, which no later layer can see next to the
    rounding of its own sums. ``exp`` overflows to inf for ``a > 44``, giving exactly
    1. Only inference uses it (training keeps ``np.tanh``, whose gradients are
    checked against PyTorch); float64 keeps ``np.tanh``."""
    if a.dtype != np.float32:
        np.tanh(a, out=a)
        return
    np.multiply(a, 2, out=a)
    with np.errstate(over="ignore"):
        np.exp(a, out=a)
    a += 1
    np.divide(-2, a, out=a)
    a += 1


def leaky_relu_inplace(a: np.ndarray, alpha: float) -> None:
    """``a = a if a > 0 else alpha a`` in place, as :func:`leaky_relu_forward`."""
    if 0.0 < alpha <= 1.0:
        np.maximum(a * a.dtype.type(alpha), a, out=a)
        return
    z = zeros(a.shape, a.dtype)
    neg = np.minimum(a, z)
    np.maximum(a, z, out=a)
    _leaky(a, neg, alpha)
