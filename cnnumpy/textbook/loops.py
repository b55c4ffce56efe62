"""The notes' "technique 1" (seed 000, III.1, "maximum de boucles"): every layer as
explicit Python loops, one multiply-add or one comparison per statement.

This is the equation read aloud, and the slowest way there is: each step runs in the
interpreter. Two uses: the technique lab times it against the vectorised forms, and the
tests trust it as the reference every other version is compared with. Same arguments
and shapes as :mod:`cnnumpy.textbook.dense`, :mod:`.conv` and :mod:`.pool`; a forward's
cache is just what its backward needs.

Unlike the notes' pooling loop, which sends the gradient to every input equal to the
maximum, max pooling here sends it to the FIRST maximum of the window in row-major order
(PyTorch's rule), so that a window with ties passes its gradient on once.
"""

from __future__ import annotations

import numpy as np

from cnnumpy.textbook.arguments import int_tuple
from cnnumpy.textbook.padding import (
    output_size_2d,
    pad2d,
    pad2d_backward,
    resolve_padding,
    resolve_padding_1d,
)


# -- dense: y[n, j] = b[j] + sum_i x[n, i] W[i, j] ------------------------------------
def dense_forward_loops(x, W, b):
    N, I = x.shape  # noqa: E741 (the notes name the inputs I)
    J = W.shape[1]
    y = np.zeros((N, J), dtype=x.dtype)
    for n in range(N):
        for j in range(J):
            y[n, j] = 0 if b is None else b[j]
            for i in range(I):
                y[n, j] += x[n, i] * W[i, j]
    return y, (x, W, b is not None)


def dense_backward_loops(dout, cache):
    x, W, has_bias = cache
    N, I = x.shape  # noqa: E741
    J = W.shape[1]
    dx, dW, db = np.zeros_like(x), np.zeros_like(W), np.zeros(J, dtype=dout.dtype)
    for n in range(N):
        for j in range(J):
            db[j] += dout[n, j]
            for i in range(I):
                dx[n, i] += dout[n, j] * W[i, j]
                dW[i, j] += x[n, i] * dout[n, j]
    return dx, dW, (db if has_bias else None)


# -- convolution: out[n, f, i, j] = b[f] + sum_{c,u,v} w[f,c,u,v] xp[n,c,i*SH+u,j*SW+v]
def conv2d_forward_loops(x, w, b, stride=1, padding=0, padding_mode="zeros"):
    SH, SW = int_tuple(stride, 2, "stride", "conv2d_forward_loops")
    N, (F, C, KH, KW) = x.shape[0], w.shape
    pads = resolve_padding(padding, (KH, KW), (SH, SW), x.shape[2:])
    xp = pad2d(x, pads, padding_mode)
    H_out, W_out = output_size_2d(xp.shape[2:], (KH, KW), (SH, SW))
    out = np.zeros((N, F, H_out, W_out), dtype=x.dtype)
    for n in range(N):
        for f in range(F):
            for i in range(H_out):
                for j in range(W_out):
                    out[n, f, i, j] = 0 if b is None else b[f]
                    for c in range(C):
                        for u in range(KH):
                            for v in range(KW):
                                out[n, f, i, j] += (
                                    w[f, c, u, v] * xp[n, c, i * SH + u, j * SW + v]
                                )
    return out, (xp, w, b is not None, (SH, SW), pads, padding_mode)


def conv2d_backward_loops(dout, cache, need_dx=True):
    xp, w, has_bias, (SH, SW), pads, padding_mode = cache
    N, F, H_out, W_out = dout.shape
    _, C, KH, KW = w.shape
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    db = np.zeros(F, dtype=dout.dtype)
    for n in range(N):
        for f in range(F):
            for i in range(H_out):
                for j in range(W_out):
                    g = dout[n, f, i, j]
                    db[f] += g
                    for c in range(C):
                        for u in range(KH):
                            for v in range(KW):
                                p, q = i * SH + u, j * SW + v
                                dw[f, c, u, v] += xp[n, c, p, q] * g
                                dxp[n, c, p, q] += w[f, c, u, v] * g
    dx = pad2d_backward(dxp, pads, padding_mode).copy() if need_dx else None
    return dx, dw, (db if has_bias else None)


def conv1d_forward_loops(x, w, b, stride=1, padding=0, padding_mode="zeros"):
    """The 2-D loops on ``(N, C, 1, L)``: ``(N, C, L)`` -> ``(N, F, L_out)``."""
    pads = resolve_padding_1d(padding, w.shape[2], stride, x.shape[2])
    out, cache = conv2d_forward_loops(
        x[:, :, None, :], w[:, :, None, :], b, (1, stride), pads, padding_mode
    )
    return out[:, :, 0, :], cache


def conv1d_backward_loops(dout, cache, need_dx=True):
    dx, dw, db = conv2d_backward_loops(dout[:, :, None, :], cache, need_dx)
    return (None if dx is None else dx[:, :, 0, :]), dw[:, :, 0, :], db


# -- pooling ------------------------------------------------------------------------
def _padded(x, PH, PW, fill):
    N, C, H, W = x.shape
    xp = np.full((N, C, H + 2 * PH, W + 2 * PW), fill, dtype=x.dtype)
    xp[:, :, PH : PH + H, PW : PW + W] = x
    return xp


def _pool_geometry(x, pool, stride, padding):
    KH, KW = int_tuple(pool, 2, "pool", "pool2d_loops")
    SH, SW = int_tuple(stride, 2, "stride", "pool2d_loops")
    PH, PW = int_tuple(padding, 2, "padding", "pool2d_loops")
    H_out, W_out = output_size_2d(x.shape[2:], (KH, KW), (SH, SW), (PH, PW))
    return (KH, KW), (SH, SW), (PH, PW), (H_out, W_out)


def maxpool2d_forward_loops(x, pool, stride, padding=0):
    """``out[n, c, h, w]`` = the largest ``x_pad[n, c, h*SH + i, w*SW + j]``, and
    where it was (the mask, as the first maximum's ``(i, j)``)."""
    (KH, KW), (SH, SW), (PH, PW), (H_out, W_out) = _pool_geometry(
        x, pool, stride, padding
    )
    xp = _padded(x, PH, PW, -np.inf)
    N, C = x.shape[:2]
    out = np.zeros((N, C, H_out, W_out), dtype=x.dtype)
    winner = np.zeros((N, C, H_out, W_out, 2), dtype=np.intp)
    for n in range(N):
        for c in range(C):
            for h in range(H_out):
                for w in range(W_out):
                    best, at = -np.inf, (0, 0)
                    for i in range(KH):
                        for j in range(KW):
                            value = xp[n, c, h * SH + i, w * SW + j]
                            if value > best:  # strictly: the first maximum wins
                                best, at = value, (i, j)
                    out[n, c, h, w], winner[n, c, h, w] = best, at
    return out, (x.shape, winner, (SH, SW), (PH, PW))


def maxpool2d_backward_loops(dout, cache):
    """Each window's gradient goes to its maximum only."""
    (N, C, H, W), winner, (SH, SW), (PH, PW) = cache
    dxp = np.zeros((N, C, H + 2 * PH, W + 2 * PW), dtype=dout.dtype)
    H_out, W_out = dout.shape[2:]
    for n in range(N):
        for c in range(C):
            for h in range(H_out):
                for w in range(W_out):
                    i, j = winner[n, c, h, w]
                    dxp[n, c, h * SH + i, w * SW + j] += dout[n, c, h, w]
    return dxp[:, :, PH : PH + H, PW : PW + W].copy()


def avgpool2d_forward_loops(x, pool, stride, padding=0):
    """The mean of each window; zero padding counts in the mean."""
    (KH, KW), (SH, SW), (PH, PW), (H_out, W_out) = _pool_geometry(
        x, pool, stride, padding
    )
    xp = _padded(x, PH, PW, 0.0)
    N, C = x.shape[:2]
    out = np.zeros((N, C, H_out, W_out), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for h in range(H_out):
                for w in range(W_out):
                    total = 0.0
                    for i in range(KH):
                        for j in range(KW):
                            total += xp[n, c, h * SH + i, w * SW + j]
                    out[n, c, h, w] = total / (KH * KW)
    return out, (x.shape, (KH, KW), (SH, SW), (PH, PW))


def avgpool2d_backward_loops(dout, cache):
    """Every input of a window gets ``dout / (KH*KW)``."""
    (N, C, H, W), (KH, KW), (SH, SW), (PH, PW) = cache
    dxp = np.zeros((N, C, H + 2 * PH, W + 2 * PW), dtype=dout.dtype)
    H_out, W_out = dout.shape[2:]
    for n in range(N):
        for c in range(C):
            for h in range(H_out):
                for w in range(W_out):
                    share = dout[n, c, h, w] / (KH * KW)
                    for i in range(KH):
                        for j in range(KW):
                            dxp[n, c, h * SH + i, w * SW + j] += share
    return dxp[:, :, PH : PH + H, PW : PW + W].copy()


def global_avgpool2d_forward_loops(x):
    """``(N, C, H, W)`` -> ``(N, C)``, the mean of each map."""
    N, C, H, W = x.shape
    out = np.zeros((N, C), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            total = 0.0
            for h in range(H):
                for w in range(W):
                    total += x[n, c, h, w]
            out[n, c] = total / (H * W)
    return out, x.shape


def global_avgpool2d_backward_loops(dout, x_shape):
    N, C, H, W = x_shape
    dx = np.zeros(x_shape, dtype=dout.dtype)
    for n in range(N):
        for c in range(C):
            for h in range(H):
                for w in range(W):
                    dx[n, c, h, w] = dout[n, c] / (H * W)
    return dx


def maxpool1d_forward_loops(x, pool, stride, padding=0):
    """The 2-D loops on ``(N, C, 1, L)``."""
    out, cache = maxpool2d_forward_loops(
        x[:, :, None, :], (1, pool), (1, stride), (0, padding)
    )
    return out[:, :, 0, :], cache


def maxpool1d_backward_loops(dout, cache):
    return maxpool2d_backward_loops(dout[:, :, None, :], cache)[:, :, 0, :]


def avgpool1d_forward_loops(x, pool, stride, padding=0):
    out, cache = avgpool2d_forward_loops(
        x[:, :, None, :], (1, pool), (1, stride), (0, padding)
    )
    return out[:, :, 0, :], cache


def avgpool1d_backward_loops(dout, cache):
    return avgpool2d_backward_loops(dout[:, :, None, :], cache)[:, :, 0, :]
