"""Naive loop twins of :mod:`cnnumpy.functional.conv`: the reference the tests trust.

Written as the notes' "technique 1" (seed 000): explicit Python loops over the batch
``n``, the filters ``f`` and the output positions ``i, j``, one window at a time,
straight from

    out[n, f, i, j] = b[f] + sum_{c, u, v} w[f, c, u, v] * xp[n, c, i*SH + u, j*SW + v]

They share nothing with the fast path except :func:`resolve_padding` (padding
arithmetic, not the kernel under test): padding is done with ``np.pad`` and its backward
by an explicit map from each padded cell to the input cell it copies. Same signatures
and results as the fast kernels, thousands of times slower: tests only.
"""

from __future__ import annotations

import numpy as np

from cnnumpy.functional.conv import resolve_padding, resolve_padding_1d

_NP_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "edge"}


def _source_index(p: int, before: int, size: int, mode: str) -> int | None:
    """Input index copied into padded index ``p`` (None for a zero cell)."""
    k = p - before
    if 0 <= k < size:
        return k
    if mode == "zeros":
        return None
    if mode == "replicate":
        return 0 if k < 0 else size - 1
    return -k if k < 0 else 2 * (size - 1) - k  # reflect, edge not repeated


def _setup(x, w, stride, padding, padding_mode):
    SH, SW = (stride, stride) if np.isscalar(stride) else tuple(stride)
    KH, KW = w.shape[2:]
    pads = resolve_padding(padding, (KH, KW), (SH, SW), x.shape[2:])
    xp = np.pad(x, ((0, 0), (0, 0)) + pads, mode=_NP_MODE[padding_mode])
    H_out = (xp.shape[2] - KH) // SH + 1
    W_out = (xp.shape[3] - KW) // SW + 1
    return xp, pads, (SH, SW), (H_out, W_out)


def conv2d_forward_naive(x, w, b, stride=1, padding=0, padding_mode="zeros"):
    """Loop version of :func:`cnnumpy.functional.conv.conv2d_forward`."""
    N, F = x.shape[0], w.shape[0]
    KH, KW = w.shape[2:]
    xp, _pads, (SH, SW), (H_out, W_out) = _setup(x, w, stride, padding, padding_mode)
    out = np.zeros((N, F, H_out, W_out), dtype=x.dtype)
    for n in range(N):
        for f in range(F):
            for i in range(H_out):
                for j in range(W_out):
                    window = xp[n, :, i * SH : i * SH + KH, j * SW : j * SW + KW]
                    out[n, f, i, j] = np.sum(window * w[f])
                    if b is not None:
                        out[n, f, i, j] += b[f]
    cache = (x, w, b is not None, stride, padding, padding_mode)
    return out, cache


def _unpad_naive(dxp, x_shape, pads, mode):
    """Send the gradient of every padded cell to the input cell it copies."""
    dx = np.zeros(x_shape, dtype=dxp.dtype)
    (top, _), (left, _) = pads
    H, W = x_shape[2:]
    for p in range(dxp.shape[2]):
        r = _source_index(p, top, H, mode)
        for q in range(dxp.shape[3]):
            s = _source_index(q, left, W, mode)
            if r is not None and s is not None:
                dx[:, :, r, s] += dxp[:, :, p, q]
    return dx


def conv2d_backward_naive(dout, cache, need_dx=True):
    """Loop version of :func:`cnnumpy.functional.conv.conv2d_backward`."""
    x, w, has_bias, stride, padding, padding_mode = cache
    N, F = x.shape[0], w.shape[0]
    KH, KW = w.shape[2:]
    xp, pads, (SH, SW), (H_out, W_out) = _setup(x, w, stride, padding, padding_mode)
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    db = np.zeros(F, dtype=dout.dtype) if has_bias else None
    for n in range(N):
        for f in range(F):
            for i in range(H_out):
                for j in range(W_out):
                    g = dout[n, f, i, j]
                    rows = slice(i * SH, i * SH + KH)
                    cols = slice(j * SW, j * SW + KW)
                    dw[f] += g * xp[n, :, rows, cols]
                    dxp[n, :, rows, cols] += g * w[f]
                    if has_bias:
                        db[f] += g
    dx = _unpad_naive(dxp, x.shape, pads, padding_mode) if need_dx else None
    return dx, dw, db


def conv1d_forward_naive(x, w, b, stride=1, padding=0, padding_mode="zeros"):
    """Loop version of :func:`cnnumpy.functional.conv.conv1d_forward` (height 1)."""
    pads = resolve_padding_1d(padding, w.shape[2], stride, x.shape[2])
    out, cache = conv2d_forward_naive(
        x[:, :, None, :], w[:, :, None, :], b, (1, stride), pads, padding_mode
    )
    return out[:, :, 0, :], cache


def conv1d_backward_naive(dout, cache, need_dx=True):
    """Loop version of :func:`cnnumpy.functional.conv.conv1d_backward`."""
    dx, dw, db = conv2d_backward_naive(dout[:, :, None, :], cache, need_dx)
    return (None if dx is None else dx[:, :, 0, :]), dw[:, :, 0, :], db
