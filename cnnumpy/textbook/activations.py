"""Activation functions and their backward passes (seed 002, "Couche d'activation").

An element-wise activation maps Y = f(X), so its backward pass is the Hadamard product
``dE/dX = dE/dY * f'(X)``. Each ``*_forward`` keeps only what ``f'`` needs: a mask for
ReLU and LeakyReLU, the output for sigmoid, tanh and softmax (their derivatives are
written with the output: sigmoid' = s (1 - s), tanh' = 1 - t^2), the mask and the output
for ELU (ELU' = ELU + alpha on the negative side), the input for arctan (seed 004, 1.3;
arctan' = 1 / (1 + x^2)).

Softmax (seed 004, eq. 4) is not element-wise. Along its axis, with m = max_k z_k
(seed 000: subtracting the maximum changes nothing and keeps ``exp`` from overflowing)::

    s_j = exp(z_j - m) / sum_k exp(z_k - m)

Its Jacobian is ds_j/dz_i = s_j (delta_ij - s_i), so the Jacobian-vector product is
``dz = s * (g - sum(g * s))`` with ``g = dE/ds``.
"""

from __future__ import annotations

import numpy as np


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)), written so that ``exp`` never overflows.

    With e = exp(-|x|): 1 / (1 + e) for x >= 0, and the equal e / (1 + e) for x < 0.
    """
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """exp(x - max) / sum(exp(x - max)) along ``axis`` (stable for any magnitude)."""
    shifted = x - x.max(axis=axis, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """log softmax(x) = (x - m) - log sum exp(x - m), the stable log-sum-exp trick."""
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


# ReLU: f(x) = max(0, x), f'(x) = 1 if x > 0 else 0
def relu_forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Returns ``(out, mask)`` with ``mask = x > 0``."""
    mask = x > 0
    return x * mask, mask


def relu_backward(dout: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return dout * mask


# LeakyReLU: f(x) = x if x > 0 else alpha x
def leaky_relu_forward(x: np.ndarray, alpha: float = 0.01) -> tuple[np.ndarray, tuple]:
    """Returns ``(out, (mask, alpha))`` with ``mask = x > 0``."""
    mask = x > 0
    return np.where(mask, x, x.dtype.type(alpha) * x), (mask, float(alpha))


def leaky_relu_backward(dout: np.ndarray, cache: tuple) -> np.ndarray:
    mask, alpha = cache
    return np.where(mask, dout, dout.dtype.type(alpha) * dout)


# sigmoid: s' = s (1 - s), seed 000's phi' = phi (1 - phi)
def sigmoid_forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    out = sigmoid(x)
    return out, out


def sigmoid_backward(dout: np.ndarray, out: np.ndarray) -> np.ndarray:
    return dout * out * (1 - out)


# tanh: t' = 1 - t^2, seed 002's tanh_prime
def tanh_forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    out = np.tanh(x)
    return out, out


def tanh_backward(dout: np.ndarray, out: np.ndarray) -> np.ndarray:
    return dout * (1 - out * out)


def elu_forward(x: np.ndarray, alpha: float = 1.0) -> tuple[np.ndarray, tuple]:
    """ELU (Clevert et al. 2016): ELU(x) = x if x > 0 else alpha (e^x - 1).

    Seed 003 names it with tanh and ReLU among the activations h ("tanh, ReLU, elu").

    ``np.expm1(x)`` is e^x - 1 without the cancellation of ``np.exp(x) - 1`` near 0;
    it is taken of ``min(x, 0)`` so that a large positive x never overflows ``exp``.

    Args:
        x: any shape; float32 or float64, kept.
        alpha: ELU(x) tends to -alpha as x -> -inf (PyTorch's default: 1).

    Returns:
        ``(out, (mask, out, alpha))`` with ``mask = x > 0``, out of the shape of x.
    """
    mask = x > 0
    negative_side = x.dtype.type(alpha) * np.expm1(np.minimum(x, 0))
    out = np.where(mask, x, negative_side)
    return out, (mask, out, float(alpha))


def elu_backward(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """dE/dX = dE/dY * ELU'(x), ELU'(x) = 1 if x > 0 else alpha e^x = ELU(x) + alpha.

    The derivative is read off the output, as for sigmoid and tanh; at x = 0 it is
    taken as alpha (the left side), like PyTorch.
    """
    mask, out, alpha = cache
    return np.where(mask, dout, dout * (out + out.dtype.type(alpha)))


# arctan (seed 004, 1.3): f(x) = arctan(x) in (-pi/2, pi/2), f'(x) = 1 / (1 + x^2)
def arctan_forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Returns ``(arctan(x), x)``: the derivative needs the input."""
    return np.arctan(x), x


def arctan_backward(dout: np.ndarray, x: np.ndarray) -> np.ndarray:
    """dE/dX = dE/dY / (1 + x^2).

    For |x| beyond ~1e19 (float32) x^2 overflows to inf and the quotient is the exact
    limit 0, so the overflow is not worth a warning.
    """
    with np.errstate(over="ignore"):
        return dout / (1 + x * x)


def softmax_forward(x: np.ndarray, axis: int = -1) -> tuple[np.ndarray, tuple]:
    """Returns ``(s, (s, axis))``."""
    out = softmax(x, axis=axis)
    return out, (out, axis)


def softmax_backward(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """The Jacobian-vector product along the axis: dE/dZ = s * (g - sum(g * s))."""
    s, axis = cache
    weighted_sum = np.sum(dout * s, axis=axis, keepdims=True)
    return s * (dout - weighted_sum)
