"""The technique lab, 2x2 max pooling with stride 2: every technique of the notes as a
forward and a backward function (see :mod:`cnnumpy.functional.techniques`).

Every forward takes ``(x,)`` and returns ``(y, cache)``; every backward takes
``(dout, cache)`` and returns ``(dx,)``. The gradient of a window goes to its FIRST
maximum in row-major order (like PyTorch), so ties give one winner in every technique.

Shape:
    x ``(N, C, H, W)`` with H, W even, y and dout ``(N, C, H/2, W/2)``.
"""

from __future__ import annotations

import numpy as np

from cnnumpy.functional.im2col import col2im, im2col
from cnnumpy.functional.pool import maxpool2d_backward, maxpool2d_forward


# -- 1 loops: every comparison is a Python statement ---------------------------------
def pool_loops_forward(x):
    N, C, H, W = x.shape
    y = np.zeros((N, C, H // 2, W // 2), dtype=x.dtype)
    winner = np.zeros(y.shape, dtype=np.intp)  # u * 2 + v of the first maximum
    for n in range(N):
        for c in range(C):
            for i in range(H // 2):
                for j in range(W // 2):
                    best, arg = -np.inf, 0
                    for u in range(2):
                        for v in range(2):
                            if x[n, c, 2 * i + u, 2 * j + v] > best:
                                best, arg = x[n, c, 2 * i + u, 2 * j + v], 2 * u + v
                    y[n, c, i, j], winner[n, c, i, j] = best, arg
    return y, (x.shape, winner)


def pool_loops_backward(dout, cache):
    shape, winner = cache
    N, C, Ho, Wo = dout.shape
    dx = np.zeros(shape, dtype=dout.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(Ho):
                for j in range(Wo):
                    u, v = divmod(int(winner[n, c, i, j]), 2)
                    dx[n, c, 2 * i + u, 2 * j + v] = dout[n, c, i, j]
    return (dx,)


# -- 2 a loop over output positions, np.max of one window (seed 000, II.2.c) -----------
def pool_loops_max_forward(x):
    N, C, H, W = x.shape
    y = np.empty((N, C, H // 2, W // 2), dtype=x.dtype)
    for i in range(H // 2):
        for j in range(W // 2):
            y[:, :, i, j] = np.max(
                x[:, :, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2], (2, 3)
            )
    return y, x


def pool_loops_max_backward(dout, x):
    N, C, Ho, Wo = dout.shape
    dx = np.zeros(x.shape, dtype=dout.dtype)
    for i in range(Ho):
        for j in range(Wo):
            window = x[:, :, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2].reshape(N, C, 4)
            first = window.argmax(axis=2)  # the notes' mask, first maximum only
            block = np.zeros((N, C, 4), dtype=dout.dtype)
            np.put_along_axis(block, first[..., None], dout[:, :, i, j, None], axis=2)
            dx[:, :, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2] = block.reshape(N, C, 2, 2)
    return (dx,)


# -- 3 ONE max over a strided view (a reshape: 2x2 windows do not overlap) -----------
def _tiles(x):
    N, C, H, W = x.shape
    return x.reshape(N, C, H // 2, 2, W // 2, 2)  # [n, c, i, u, j, v], no copy


def pool_view_forward(x):
    tiles = _tiles(x)
    y = tiles.max(axis=(3, 5))
    # the first maximum: (u, v) moved last then flattened, argmax takes the first
    winner = tiles.transpose(0, 1, 2, 4, 3, 5).reshape(*y.shape, 4).argmax(axis=-1)
    return y, (x.shape, winner)


def pool_view_backward(dout, cache):
    shape, winner = cache
    mask = winner[..., None] == np.arange(4)  # (N, C, Ho, Wo, 4), one True per window
    dtiles = (mask * dout[..., None]).reshape(*dout.shape, 2, 2)
    return (dtiles.transpose(0, 1, 2, 4, 3, 5).reshape(shape),)


# -- 4 im2col + ONE max over the columns (seed 001, 3.3) -----------------------------
def pool_im2col_forward(x):
    N, C, H, W = x.shape
    cols = im2col(x, (2, 2), (2, 2)).reshape(C, 4, -1)  # (C, u*2+v, N*Ho*Wo)
    winner = cols.argmax(axis=1)  # (C, N*Ho*Wo), the first maximum
    y = np.take_along_axis(cols, winner[:, None], axis=1)[:, 0]
    return y.reshape(C, N, H // 2, W // 2).transpose(1, 0, 2, 3), (x.shape, winner)


def pool_im2col_backward(dout, cache):
    shape, winner = cache
    C = shape[1]
    g = dout.transpose(1, 0, 2, 3).reshape(C, 1, -1)  # (C, 1, N*Ho*Wo)
    dcols = (winner[:, None] == np.arange(4)[:, None]) * g  # mask x gradient
    return (col2im(dcols.reshape(C * 4, -1), shape, (2, 2), (2, 2)),)


# -- 5 cnnumpy's kernel (see pool.py) -----------------------------------------------
def pool_fast_forward(x):
    return maxpool2d_forward(x, 2, 2)


def pool_fast_backward(dout, cache):
    return (maxpool2d_backward(dout, cache),)
