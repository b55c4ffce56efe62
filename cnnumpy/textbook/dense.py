"""Fully connected layer, forward and backward (seed 002, "Fully Connected Layer").

Forward, for a batch of N row vectors::

    Y = X W + B                      y_nj = b_j + sum_i x_ni w_ij

Backward, given dE/dY (the three formulas of the notes, batched)::

    dE/dX = dE/dY W^T
    dE/dW = X^T dE/dY                (the matrix product sums over the batch)
    dE/dB = sum_n dE/dY[n]           (the notes have one example; we sum over the batch)
"""

from __future__ import annotations

import numpy as np


def dense_forward(
    x: np.ndarray, W: np.ndarray, b: np.ndarray | None
) -> tuple[np.ndarray, tuple]:
    """Y = X W + B.

    Shape:
        x ``(N, in_features)``, W ``(in_features, units)``, b ``(units,)`` or None
        -> out ``(N, units)``; the cache keeps ``x`` and ``W``.
    """
    out = x @ W
    if b is not None:
        out = out + b
    return out, (x, W, b is not None)


def dense_backward(
    dout: np.ndarray, cache: tuple, need_dx: bool = True
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """``(dE/dX or None, dE/dW, dE/dB or None)`` of Y = X W + B."""
    x, W, has_bias = cache
    dW = x.T @ dout
    db = dout.sum(axis=0) if has_bias else None
    dx = dout @ W.T if need_dx else None
    return dx, dW, db
