"""The technique lab, convolution: stride 1, zero padding ``P``, every technique of the
notes as a forward and a backward function (see :mod:`cnnumpy.lab.techniques`).

Every forward takes ``(x, w, b, P)`` and returns ``(y, cache)``; every backward takes
``(dout, cache)`` and returns ``(dx, dw, db)``.

Shape:
    x ``(N, C, H, W)``, w ``(F, C, K, K)``, b ``(F,)``, y and dout ``(N, F, Ho, Wo)``
    with ``Ho = H + 2P - K + 1``.
"""

from __future__ import annotations

import numpy as np

from cnnumpy.engine.kernels.conv import conv2d_backward, conv2d_forward
from cnnumpy.textbook import conv as book_conv
from cnnumpy.textbook import loops
from cnnumpy.textbook.im2col import window_view
from cnnumpy.textbook.padding import output_size


def _pad(x, P):
    return np.pad(x, ((0, 0), (0, 0), (P, P), (P, P)))


def _crop(xp, cache):
    P, (H, W) = cache["P"], cache["hw"]
    return xp[:, :, P : P + H, P : P + W]


def _cache(x, w, P, **more):
    return {"xp": _pad(x, P), "w": w, "P": P, "hw": x.shape[2:], **more}


# -- 1 loops: every multiply-add is a Python statement (seed 000, technique 1): the
# book's :func:`cnnumpy.textbook.loops.conv2d_forward_loops`, stride 1, padding P
def conv_loops_forward(x, w, b, P):
    return loops.conv2d_forward_loops(x, w, b, 1, P)


conv_loops_backward = loops.conv2d_backward_loops


# -- 2 loops over outputs, np.sum of one window (technique 2) -------------------------
def conv_loops_sum_forward(x, w, b, P):
    c = _cache(x, w, P)
    xp = c["xp"]
    N, F, K = x.shape[0], w.shape[0], w.shape[2]
    Ho, Wo = output_size(xp.shape[2], K), output_size(xp.shape[3], K)
    y = np.zeros((N, F, Ho, Wo), dtype=x.dtype)
    for n in range(N):
        for f in range(F):
            for i in range(Ho):
                for j in range(Wo):
                    y[n, f, i, j] = np.sum(w[f] * xp[n, :, i : i + K, j : j + K]) + b[f]
    return y, c


def conv_loops_sum_backward(dout, c):
    xp, w = c["xp"], c["w"]
    N, F, Ho, Wo = dout.shape
    K = w.shape[2]
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    for n in range(N):
        for f in range(F):
            for i in range(Ho):
                for j in range(Wo):
                    g = dout[n, f, i, j]
                    dw[f] += xp[n, :, i : i + K, j : j + K] * g
                    dxp[n, :, i : i + K, j : j + K] += w[f] * g
    return _crop(dxp, c), dw, np.sum(dout, axis=(0, 2, 3))


# -- 3 a loop over output positions, one einsum each (seed 000, II.2.b) ---------------
def conv_einsum_pos_forward(x, w, b, P):
    c = _cache(x, w, P)
    xp = c["xp"]
    N, F, K = x.shape[0], w.shape[0], w.shape[2]
    Ho, Wo = output_size(xp.shape[2], K), output_size(xp.shape[3], K)
    y = np.empty((N, F, Ho, Wo), dtype=x.dtype)
    for i in range(Ho):
        for j in range(Wo):
            window = xp[:, :, i : i + K, j : j + K]  # (N, C, K, K), the whole batch
            y[:, :, i, j] = np.einsum("fcuv,ncuv->nf", w, window) + b
    return y, c


def conv_einsum_pos_backward(dout, c):
    xp, w = c["xp"], c["w"]
    Ho, Wo, K = dout.shape[2], dout.shape[3], w.shape[2]
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    for i in range(Ho):
        for j in range(Wo):
            g = dout[:, :, i, j]  # (N, F)
            dw += np.einsum("ncuv,nf->fcuv", xp[:, :, i : i + K, j : j + K], g)
            dxp[:, :, i : i + K, j : j + K] += np.einsum("fcuv,nf->ncuv", w, g)
    return _crop(dxp, c), dw, np.sum(dout, axis=(0, 2, 3))


# -- 4 ONE einsum over a strided view of every window (technique 4) -------------------
def conv_einsum_forward(x, w, b, P):
    c = _cache(x, w, P)
    K = w.shape[2]
    c["windows"] = window_view(c["xp"], (K, K), (1, 1))  # (C, K, K, N, Ho, Wo)
    y = np.einsum("fcuv,cuvnij->nfij", w, c["windows"], optimize=True)
    return y + b.reshape(-1, 1, 1), c


def conv_einsum_backward(dout, c):
    w, P = c["w"], c["P"]
    K = w.shape[2]
    dw = np.einsum("cuvnij,nfij->fcuv", c["windows"], dout, optimize=True)
    # dx: the full convolution of dout with the kernels rotated by 180 degrees
    q = K - 1 - P  # a padding larger than K - 1 crops dout instead
    gp = _pad(dout, q) if q >= 0 else dout[:, :, -q:q, -q:q]
    gwin = window_view(gp, (K, K), (1, 1))
    dx = np.einsum("fcuv,fuvnij->ncij", w[:, :, ::-1, ::-1], gwin, optimize=True)
    return dx, dw, np.sum(dout, axis=(0, 2, 3))


# -- 5 the book: im2col + ONE matrix product (seed 001, 3.1), dx as the notes' full
# convolution (:mod:`cnnumpy.textbook.conv`)
def conv_book_forward(x, w, b, P):
    return book_conv.conv2d_forward(x, w, b, 1, P)


conv_book_backward = book_conv.conv2d_backward


# -- 6 the engine (chunks, the wide grid, threads: conv.py, conv_flat.py) ------------
def conv_fast_forward(x, w, b, P):
    return conv2d_forward(x, w, b, 1, P)


def conv_fast_backward(dout, cache):
    return conv2d_backward(dout, cache)
