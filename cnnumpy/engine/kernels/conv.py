"""Convolution forward and backward, vectorised with im2col and one matrix product.

Like every framework (and seed 002, "Couche convolution"), the "convolution" is a
cross-correlation, the kernel is not flipped:

    out[n, f, i, j] = b[f] + sum_{c, u, v} w[f, c, u, v] * xp[n, c, i*SH + u, j*SW + v]

where ``xp`` is the padded input. Output size (seed 003):
``H_out = (H + 2P - KH) // S + 1``, with ``2P`` meaning ``top + bottom`` when the
padding is asymmetric.

Backward (seeds 001 and 002): with ``x_cols`` the im2col matrix and ``G = dout``
reshaped ``(F, N*Ho*Wo)``,

    dw = G @ x_cols.T              (the notes' correlation of the input with dL/dY)
    dx = col2im(w_mat.T @ G)       (the notes' full convolution of dL/dY with the kernel
                                    rotated by 180 degrees, written as a scatter-add)
    db = sum over n, i, j of dout  (once per output map)

Why it is fast: the windows are a zero-copy strided view, copied once into ``x_cols``
with inner runs along image rows; each product is ONE GEMM with the batch folded into
its columns (BLAS does the heavy lifting, in the input's dtype, float32 by default); no
Python loop runs over the batch or the output positions, only over the ``KH*KW`` kernel
offsets in col2im.

Stride 1 with zero padding (every convolution of the notes' networks) goes to
:mod:`cnnumpy.engine.kernels.conv_flat`, which copies the columns in runs of a whole
image plane instead of one row, and computes ``dx`` without col2im's short rows. This
module keeps the general path, the ``"columns"`` kernel of the ``conv2d`` dispatch
table (:mod:`cnnumpy.engine.ops`): any stride, reflect and replicate padding. Which
one a call takes: :func:`~cnnumpy.engine.rules.layout_of`.

Every kernel here has the book's signature (:mod:`cnnumpy.textbook.conv`) plus two
arguments that only fused inference passes (``post`` and ``pool``,
:mod:`cnnumpy.engine.fusion`).
"""

from __future__ import annotations

import numpy as np

from cnnumpy.engine.kernels.conv_flat import conv2d_forward_flat
from cnnumpy.engine.kernels.conv_flat_backward import conv2d_backward_flat
from cnnumpy.engine.kernels.epilogue import Post, Tiles, chunk_epilogue, out_size
from cnnumpy.engine.kernels.im2col import (
    PADDING_MODES,
    col2im,
    conv_geometry,
    fill_columns,
    pad2d,
    pad2d_backward,
    weights_matrix,
)
from cnnumpy.engine.kernels.parallel import (
    PADDED,
    SCRATCH,
    chunk_bounds,
    parallel_chunks,
)
from cnnumpy.engine.kernels.products import add_product
from cnnumpy.engine.rules import LAYOUTS, flat_applies, layout_of
from cnnumpy.textbook.padding import (
    check_output_size,
    output_size,
    resolve_padding,
    resolve_padding_1d,
)


def conv2d_forward(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    stride: int | tuple[int, int] = 1,
    padding: int | str | tuple = 0,
    padding_mode: str = "zeros",
    post: Post = None,
    pool: Tiles | None = None,
    layout: str | None = None,
) -> tuple[np.ndarray, tuple]:
    """2-D cross-correlation: pad, im2col a chunk of images, one GEMM per chunk.

    ``layout`` (default: :func:`~cnnumpy.engine.rules.layout_of`'s choice) is
    ``"columns"`` (this function's own body) or a flat layout, which
    :func:`conv2d_forward_flat` runs (stride 1 with zero padding only).

    Args:
        x: input ``(N, C, H, W)``.
        w: kernels ``(F, C, KH, KW)``.
        b: bias ``(F,)`` or None.
        stride: ``S`` or ``(SH, SW)``.
        padding: see :func:`resolve_padding`.
        padding_mode: ``"zeros"``, ``"reflect"`` or ``"replicate"``.
        post: an in-place operation run on each chunk's output while it is in cache
            (fused inference, :mod:`cnnumpy.engine.fusion`: the next layer's
            activation).
        pool: :class:`Tiles`: each chunk's output is pooled over tiles of that size
            (fused inference; the output is then ``(N, F, H_out/KH, W_out/KW)``, and
            the caller checks that the tiles divide it).

    Returns:
        out ``(N, F, H_out, W_out)`` with ``H_out = (H + top + bottom - KH) // SH + 1``,
        and the cache for :func:`conv2d_backward` (the padded input, not the columns:
        backward rebuilds them chunk by chunk, which costs one copy and saves the
        ``KH*KW``-times-larger column matrix of the whole batch).
    """
    N, C, H, W = x.shape
    F, _, KH, KW = w.shape
    (SH, SW), pads = conv_geometry(x, w, stride, padding)
    layout = layout or layout_of(x, w, b, (SH, SW), pads, padding_mode)
    if layout in LAYOUTS:
        if not flat_applies((SH, SW), padding_mode):
            raise ValueError(
                f"conv2d_forward: layout {layout!r} needs stride 1 and zero padding, "
                f"got stride {(SH, SW)} and {padding_mode!r}"
            )
        return conv2d_forward_flat(x, w, b, pads, layout, post, pool)
    if padding_mode == "zeros" and any(sum(pads, ())):
        xp = PADDED.padded(x, pads)  # a reused buffer, borders zeroed once
    else:
        xp = pad2d(x, pads, padding_mode)
    H_out = output_size(xp.shape[2], KH, SH)
    W_out = output_size(xp.shape[3], KW, SW)
    w_ext = weights_matrix(w, b)  # (F, C*KH*KW [+1]): the bias rides in the GEMM
    out = np.empty((N, F, *out_size(H_out, W_out, pool)), dtype=x.dtype)

    def work(lo: int, hi: int, k: int) -> None:
        cols = fill_columns(xp[lo:hi], (KH, KW), (SH, SW), b is not None, f"cols{k}")
        res = SCRATCH.get(f"out{k}", (F, hi - lo, H_out, W_out), x.dtype)
        np.matmul(w_ext, cols, out=res.reshape(F, -1))  # ONE GEMM per chunk
        # (F, n, Ho, Wo) -> (N, F, Ho, Wo): inner runs are whole maps (Ho*Wo floats)
        out[lo:hi] = chunk_epilogue(res, res, pool, post, k).transpose(1, 0, 2, 3)

    per_image = w_ext.shape[1] * H_out * W_out * x.dtype.itemsize
    parallel_chunks(work, chunk_bounds(N, per_image))
    cache = ("columns", x.shape, xp, w, b is not None, (SH, SW), pads, padding_mode)
    return out, cache


def _dx_col2im(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """General ``dx`` (any stride, reflect/replicate padding): one GEMM to the
    columns' gradient, then col2im's scatter-add and the padding's backward."""
    _layout, _x_shape, xp, w, _has_bias, stride, pads, padding_mode = cache
    F, C, KH, KW = w.shape
    dout_mat = dout.transpose(1, 0, 2, 3).reshape(F, -1)
    dx_cols = w.reshape(F, C * KH * KW).T @ dout_mat  # (C*KH*KW, N*Ho*Wo)
    dxp = col2im(dx_cols, xp.shape, (KH, KW), stride)
    return np.ascontiguousarray(pad2d_backward(dxp, pads, padding_mode))


def conv2d_backward(
    dout: np.ndarray,
    cache: tuple,
    need_dx: bool = True,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """Gradients of :func:`conv2d_forward`.

    A cache of a flat layout goes to :func:`conv2d_backward_flat`. Otherwise
    ``dw = G @ x_cols.T`` chunk by chunk (the columns are rebuilt from the cached
    padded input into the shared scratch buffer), with ``db`` as the last column of
    the same GEMM, and ``dx`` by col2im.

    Args:
        dout: ``dL/dout`` ``(N, F, H_out, W_out)``.
        cache: from the forward pass.
        need_dx: False skips ``dx`` (the first layer of a model needs no input
            gradient), saving one GEMM and its copies.

    Returns:
        ``(dx (N, C, H, W) or None, dw (F, C, KH, KW), db (F,) or None)``.
    """
    if cache[0] in LAYOUTS:
        return conv2d_backward_flat(dout, cache, need_dx)
    _layout, _x_shape, xp, w, has_bias, stride, _pads, _mode = cache
    F, C, KH, KW = w.shape
    Ho, Wo = dout.shape[2:]
    rows = C * KH * KW + int(has_bias)

    def work(lo: int, hi: int, k: int) -> np.ndarray:
        cols = fill_columns(xp[lo:hi], (KH, KW), stride, has_bias, f"cols{k}")
        g = SCRATCH.get(f"g{k}", (F, hi - lo, Ho, Wo), dout.dtype)
        g[...] = dout[lo:hi].transpose(1, 0, 2, 3)  # (F, n*Ho*Wo), in cache
        part = SCRATCH.get(f"dw{k}", (F, rows), dout.dtype)
        add_product(part, g.reshape(F, -1), cols.T, lo == bounds[k][0])
        return part

    bounds = chunk_bounds(dout.shape[0], rows * Ho * Wo * dout.dtype.itemsize)
    dw_ext = sum(parallel_chunks(work, bounds))
    dw = dw_ext[:, : C * KH * KW].reshape(w.shape)
    db = dw_ext[:, -1].copy() if has_bias else None
    if not need_dx:
        return None, dw, db
    return _dx_col2im(dout, cache), dw, db


def conv1d_forward(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    stride: int = 1,
    padding: int | str | tuple = 0,
    padding_mode: str = "zeros",
    post: Post = None,
) -> tuple[np.ndarray, tuple]:
    """1-D cross-correlation, ``out[n, f, i] = b[f] + sum_{c,u} w[f,c,u] x[n,c,i*S+u]``.

    A sequence is an image of height 1: this reuses :func:`conv2d_forward` on
    ``(N, C, 1, L)`` with kernels ``(F, C, 1, K)`` (views, no copies).

    Args:
        x: ``(N, C, L)``; w: ``(F, C, K)``; b: ``(F,)`` or None.
        stride: ``S``. padding: ``P``, ``(left, right)``, ``"valid"`` or ``"same"``.

    Returns:
        out ``(N, F, L_out)`` with ``L_out = (L + 2P - K) // S + 1``, and the cache.
    """
    pads = resolve_padding_1d(padding, w.shape[2], int(stride), x.shape[2])
    out, cache = conv2d_forward(
        x[:, :, None, :],
        w[:, :, None, :],
        b,
        (1, int(stride)),
        pads,
        padding_mode,
        post,
    )
    return out[:, :, 0, :], cache


def conv1d_backward(
    dout: np.ndarray,
    cache: tuple,
    need_dx: bool = True,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """Gradients of :func:`conv1d_forward`: ``dx (N, C, L), dw (F, C, K), db (F,)``."""
    dx, dw, db = conv2d_backward(dout[:, :, None, :], cache, need_dx)
    return (None if dx is None else dx[:, :, 0, :]), dw[:, :, 0, :], db


__all__ = [
    "PADDING_MODES",
    "check_output_size",
    "conv1d_backward",
    "conv1d_forward",
    "conv2d_backward",
    "conv2d_forward",
    "output_size",
    "resolve_padding",
    "resolve_padding_1d",
]
