"""Inverted dropout (Srivastava et al. 2014): scaled in training, identity in inference.

In training each value is kept with probability ``1 - rate`` and multiplied by
``1 / (1 - rate)``, so that the expected output equals the input and inference needs
no scaling. The backward pass lets the gradient through the same kept values, with
the same scale::

    mask = (u >= rate) / (1 - rate),  u ~ U[0, 1)
    y = x * mask                      dx = dout * mask
"""

from __future__ import annotations

import numpy as np


def dropout_mask(
    shape: tuple[int, ...], rate: float, rng: np.random.Generator, dtype
) -> np.ndarray:
    """The scaled keep-mask: ``1 / (1 - rate)`` where kept, 0 where dropped.

    ``u`` is drawn in float32 for a float32 model (half the random bits to make).
    """
    dtype = np.dtype(dtype)
    draw_dtype = np.float32 if dtype == np.float32 else np.float64
    keep = rng.random(shape, dtype=draw_dtype) >= rate
    return keep.astype(dtype) / dtype.type(1.0 - rate)


def dropout_forward(
    x: np.ndarray, rate: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Training: ``(x * mask, mask)`` with a fresh mask from ``rng``."""
    mask = dropout_mask(x.shape, rate, rng, x.dtype)
    return x * mask, mask


def dropout_backward(dout: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``dx = dout * mask``: the gradient flows through the kept values only."""
    return dout * mask
