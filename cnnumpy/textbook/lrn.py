"""Local response normalisation across channels (Krizhevsky et al. 2012, section 3.3).

    s[c] = k + alpha / n * sum_{c' = c - n//2}^{c + (n-1)//2} a[c']^2
    y[c] = a[c] * s[c] ** -beta

Channels outside [0, C) count as zero. ``alpha`` is divided by the window size ``n`` as
in PyTorch's ``LocalResponseNorm``; AlexNet's paper (k=2, n=5, alpha=1e-4, beta=0.75)
does not divide, so its alpha is ``n`` times ours.

Backward, with g = dL/dy:
    dL/da[j] = g[j] s[j]^-beta
        - 2 beta alpha / n * a[j] * sum_{c : j in window(c)} g[c] a[c] s[c]^(-beta-1)
"""

from __future__ import annotations

import numpy as np


def channel_window_sum(v: np.ndarray, before: int, after: int) -> np.ndarray:
    """out[:, c] = sum of v[:, c - before : c + after + 1] along axis 1 (zeros outside).

    One cumulative sum along the channel axis, then a difference of two shifted slices.
    """
    N, C = v.shape[:2]
    pad = [(0, 0)] * v.ndim
    pad[1] = (before + 1, after)
    csum = np.cumsum(np.pad(v, pad), axis=1)
    return csum[:, before + after + 1 :] - csum[:, :C]


def lrn_forward(a: np.ndarray, size: int, alpha: float, beta: float, k: float):
    """Shapes: a (N, C, ...) -> y (N, C, ...)."""
    s = k + alpha / size * channel_window_sum(a * a, size // 2, (size - 1) // 2)
    s_pow = s**-beta
    y = a * s_pow
    cache = (a, s, s_pow, size, alpha, beta)
    return y, cache


def lrn_backward(dout: np.ndarray, cache) -> np.ndarray:
    a, s, s_pow, size, alpha, beta = cache
    # the channels c whose window holds j are c in [j - (size-1)//2, j + size//2]
    inner = dout * a * s_pow / s
    spread = channel_window_sum(inner, (size - 1) // 2, size // 2)
    return dout * s_pow - 2.0 * beta * alpha / size * a * spread
