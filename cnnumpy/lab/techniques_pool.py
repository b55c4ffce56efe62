"""The technique lab, 2x2 max pooling with stride 2: every technique of the notes as a
forward and a backward function (see :mod:`cnnumpy.lab.techniques`).

Every forward takes ``(x,)`` and returns ``(y, cache)``; every backward takes
``(dout, cache)`` and returns ``(dx,)``. The gradient of a window goes to its FIRST
maximum in row-major order (like PyTorch), so ties give one winner in every technique.

Shape:
    x ``(N, C, H, W)`` with H, W even, y and dout ``(N, C, H/2, W/2)``.
"""

from __future__ import annotations

import numpy as np

from cnnumpy.engine import ops
from cnnumpy.textbook import loops
from cnnumpy.textbook import pool as book_pool


# -- 1 loops: every comparison is a Python statement (the book's
# :func:`cnnumpy.textbook.loops.maxpool2d_forward_loops`)
def pool_loops_forward(x):
    return loops.maxpool2d_forward_loops(x, 2, 2)


def pool_loops_backward(dout, cache):
    return (loops.maxpool2d_backward_loops(dout, cache),)


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


# -- 4 the book: im2col + ONE max with the mask (seed 001, 3.3;
# :mod:`cnnumpy.textbook.pool`)
def pool_book_forward(x):
    return book_pool.maxpool2d_forward(x, 2, 2)


def pool_book_backward(dout, cache):
    return (book_pool.maxpool2d_backward(dout, cache),)


# -- 5 the engine (see pool.py and pool_tiles.py) -----------------------------------
def pool_fast_forward(x):
    return ops.maxpool2d.forward(x, 2, 2)


def pool_fast_backward(dout, cache):
    return (ops.maxpool2d.backward(dout, cache),)
