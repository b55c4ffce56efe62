"""Naive loop twins of ``cnnumpy.functional.pool``: the notes' "technique 1" (seed 000).

One explicit Python loop per axis, one window at a time, exactly as the equations read.
They are slow (every step runs in the interpreter) and exist only as the reference the
tests compare the vectorised kernels with. Same signatures and shapes as the fast
functions; the cache of a naive forward is just what its naive backward needs.

Unlike the notes' loop, which sends the gradient to every input equal to the maximum,
max pooling here sends it to the first maximum of the window in row-major order only
(PyTorch's rule), so that a window with ties passes its gradient on once.
"""

from __future__ import annotations

import numpy as np

from cnnumpy.functional.pool import IntPair, _pair


def _pad(x: np.ndarray, PH: int, PW: int, fill: float) -> np.ndarray:
    N, C, H, W = x.shape
    x_pad = np.full((N, C, H + 2 * PH, W + 2 * PW), fill, dtype=x.dtype)
    x_pad[:, :, PH : PH + H, PW : PW + W] = x
    return x_pad


def _first_argmax(window: np.ndarray) -> tuple[int, int]:
    """Row and column of the first maximum of a 2-D window, scanning row by row."""
    best_i, best_j = 0, 0
    for i in range(window.shape[0]):
        for j in range(window.shape[1]):
            if window[i, j] > window[best_i, best_j]:
                best_i, best_j = i, j
    return best_i, best_j


def maxpool2d_forward_naive(
    x: np.ndarray, pool: IntPair, stride: IntPair, padding: IntPair = 0
) -> tuple[np.ndarray, tuple]:
    """Loop twin of ``maxpool2d_forward``: x ``(N, C, H, W)`` -> ``(N, C, Ho, Wo)``."""
    (KH, KW), (SH, SW), (PH, PW) = _pair(pool), _pair(stride), _pair(padding)
    x_pad = _pad(x, PH, PW, -np.inf)
    N, C, H_pad, W_pad = x_pad.shape
    H_out, W_out = (H_pad - KH) // SH + 1, (W_pad - KW) // SW + 1
    out = np.zeros((N, C, H_out, W_out), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for h in range(H_out):
                for w in range(W_out):
                    window = x_pad[n, c, h * SH : h * SH + KH, w * SW : w * SW + KW]
                    out[n, c, h, w] = np.max(window)
    return out, (x, (KH, KW), (SH, SW), (PH, PW))


def maxpool2d_backward_naive(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """Loop twin of ``maxpool2d_backward``: a window's gradient to its first maximum."""
    x, (KH, KW), (SH, SW), (PH, PW) = cache
    x_pad = _pad(x, PH, PW, -np.inf)
    dx_pad = np.zeros_like(x_pad)
    N, C, H_out, W_out = dout.shape
    for n in range(N):
        for c in range(C):
            for h in range(H_out):
                for w in range(W_out):
                    window = x_pad[n, c, h * SH : h * SH + KH, w * SW : w * SW + KW]
                    i, j = _first_argmax(window)
                    dx_pad[n, c, h * SH + i, w * SW + j] += dout[n, c, h, w]
    H, W = x.shape[2:]
    return dx_pad[:, :, PH : PH + H, PW : PW + W]


def avgpool2d_forward_naive(
    x: np.ndarray, pool: IntPair, stride: IntPair, padding: IntPair = 0
) -> tuple[np.ndarray, tuple]:
    """Loop twin of ``avgpool2d_forward`` (zero padding counts in the mean)."""
    (KH, KW), (SH, SW), (PH, PW) = _pair(pool), _pair(stride), _pair(padding)
    x_pad = _pad(x, PH, PW, 0.0)
    N, C, H_pad, W_pad = x_pad.shape
    H_out, W_out = (H_pad - KH) // SH + 1, (W_pad - KW) // SW + 1
    out = np.zeros((N, C, H_out, W_out), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for h in range(H_out):
                for w in range(W_out):
                    total = 0.0
                    for i in range(KH):
                        for j in range(KW):
                            total += x_pad[n, c, h * SH + i, w * SW + j]
                    out[n, c, h, w] = total / (KH * KW)
    return out, (x.shape, x.dtype, (KH, KW), (SH, SW), (PH, PW))


def avgpool2d_backward_naive(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """Loop twin of ``avgpool2d_backward``: each input gets ``dout / (KH*KW)``."""
    (N, C, H, W), dtype, (KH, KW), (SH, SW), (PH, PW) = cache
    dx_pad = np.zeros((N, C, H + 2 * PH, W + 2 * PW), dtype=dtype)
    H_out, W_out = dout.shape[2:]
    for n in range(N):
        for c in range(C):
            for h in range(H_out):
                for w in range(W_out):
                    for i in range(KH):
                        for j in range(KW):
                            share = dout[n, c, h, w] / (KH * KW)
                            dx_pad[n, c, h * SH + i, w * SW + j] += share
    return dx_pad[:, :, PH : PH + H, PW : PW + W]


def global_avgpool2d_forward_naive(x: np.ndarray) -> tuple[np.ndarray, tuple]:
    """Loop twin of ``global_avgpool2d_forward``. x ``(N, C, H, W)`` -> ``(N, C)``."""
    N, C, H, W = x.shape
    out = np.zeros((N, C), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            total = 0.0
            for h in range(H):
                for w in range(W):
                    total += x[n, c, h, w]
            out[n, c] = total / (H * W)
    return out, (x.shape, x.dtype)


def global_avgpool2d_backward_naive(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """Loop twin of ``global_avgpool2d_backward``: ``(N, C)`` -> ``(N, C, H, W)``."""
    (N, C, H, W), dtype = cache
    dx = np.zeros((N, C, H, W), dtype=dtype)
    for n in range(N):
        for c in range(C):
            for h in range(H):
                for w in range(W):
                    dx[n, c, h, w] = dout[n, c] / (H * W)
    return dx


def maxpool1d_forward_naive(
    x: np.ndarray, pool: int, stride: int, padding: int = 0
) -> tuple[np.ndarray, tuple]:
    """Loop twin of ``maxpool1d_forward``. x ``(N, C, L)`` -> ``(N, C, L_out)``."""
    N, C, L = x.shape
    x_pad = np.full((N, C, L + 2 * padding), -np.inf, dtype=x.dtype)
    x_pad[:, :, padding : padding + L] = x
    L_out = (L + 2 * padding - pool) // stride + 1
    out = np.zeros((N, C, L_out), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for t in range(L_out):
                out[n, c, t] = np.max(x_pad[n, c, t * stride : t * stride + pool])
    return out, (x_pad, pool, stride, padding, L)


def maxpool1d_backward_naive(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """Loop twin of ``maxpool1d_backward``: the gradient to the first maximum."""
    x_pad, pool, stride, padding, L = cache
    dx_pad = np.zeros_like(x_pad)
    N, C, L_out = dout.shape
    for n in range(N):
        for c in range(C):
            for t in range(L_out):
                best = 0
                for k in range(pool):
                    if x_pad[n, c, t * stride + k] > x_pad[n, c, t * stride + best]:
                        best = k
                dx_pad[n, c, t * stride + best] += dout[n, c, t]
    return dx_pad[:, :, padding : padding + L]


def avgpool1d_forward_naive(
    x: np.ndarray, pool: int, stride: int, padding: int = 0
) -> tuple[np.ndarray, tuple]:
    """Loop twin of ``avgpool1d_forward`` (zero padding counts in the mean)."""
    N, C, L = x.shape
    x_pad = np.zeros((N, C, L + 2 * padding), dtype=x.dtype)
    x_pad[:, :, padding : padding + L] = x
    L_out = (L + 2 * padding - pool) // stride + 1
    out = np.zeros((N, C, L_out), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for t in range(L_out):
                total = 0.0
                for k in range(pool):
                    total += x_pad[n, c, t * stride + k]
                out[n, c, t] = total / pool
    return out, (x.shape, x.dtype, pool, stride, padding)


def avgpool1d_backward_naive(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """Loop twin of ``avgpool1d_backward``: each input of a window gets ``dout / K``."""
    (N, C, L), dtype, pool, stride, padding = cache
    dx_pad = np.zeros((N, C, L + 2 * padding), dtype=dtype)
    L_out = dout.shape[2]
    for n in range(N):
        for c in range(C):
            for t in range(L_out):
                for k in range(pool):
                    dx_pad[n, c, t * stride + k] += dout[n, c, t] / pool
    return dx_pad[:, :, padding : padding + L]
