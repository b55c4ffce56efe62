"""Gradients of the flat stride-1 zero-padded convolution (:mod:`conv_flat`).

The cache holds the padded input, so each chunk's columns are copied again on the
wide grid (:mod:`conv_wide`), and ``dout`` is laid on the same grid with ZEROS on the
junk positions (:func:`~conv_wide.dout_wide`), so they add nothing:

- ``dw``: ``g @ cols.T`` where ``g (F, n, P)`` is that ``dout`` (and the ones row of
  ``cols`` yields ``db``), in the forward's layout (:func:`_dw_db`: full columns, row
  bands of :mod:`conv_bands`, or the images innermost of :mod:`conv_inner`).
- ``dx``, two ways, whichever does less work for the shape (the measured rule:
  :func:`~cnnumpy.engine.rules.dx_by_full_convolution`):

  * the notes' full convolution of the padded ``dout`` with the rotated kernels
    (seed 002), run by the same wide-grid forward: its GEMM sums over ``F*KH*KW``,
    and it copies ``F*KH*KW`` rows of ``P`` floats;
  * ``dx_cols = Wt @ g`` with ``Wt (KH*KW*C, F)``, then ``KH*KW`` slice-adds
    ``dxp[c, n, off : off + P] += dx_cols[kh, kw, c, n]``, each a run of ``P``
    floats (col2im without its short rows). It moves ``C*KH*KW`` rows instead of
    ``F*KH*KW``.
"""

from __future__ import annotations

import numpy as np

from cnnumpy.engine.kernels.conv_bands import dw_db_bands
from cnnumpy.engine.kernels.conv_flat import correlate_flat
from cnnumpy.engine.kernels.conv_inner import dw_db_inner
from cnnumpy.engine.kernels.conv_wide import dout_wide, fill_cols
from cnnumpy.engine.kernels.parallel import (
    SCRATCH,
    Pads,
    chunk_bounds,
    parallel_chunks,
)
from cnnumpy.engine.kernels.products import add_product
from cnnumpy.engine.rules import dx_by_full_convolution, inner_applies


def _dx_chunk(g: np.ndarray, w_t: np.ndarray, xp_shape, pads: Pads, k: int):
    """``dx (n, C, H, W)`` of one chunk: one GEMM, ``KH*KW`` long slice-adds, crop."""
    F, n, P = g.shape
    _, C, Hp, Wp = xp_shape
    KH, KW = w_t.shape[:2]
    dx_cols = SCRATCH.get(f"dxcols{k}", (KH, KW, C, n, P), g.dtype)
    np.matmul(
        w_t.reshape(-1, F), g.reshape(F, -1), out=dx_cols.reshape(KH * KW * C, -1)
    )
    dxp = SCRATCH.get(f"dxp{k}", (C, n, Hp * Wp), g.dtype)
    dxp.fill(0)
    for kh in range(KH):
        for kw in range(KW):
            off = kh * Wp + kw
            dxp[:, :, off : off + P] += dx_cols[kh, kw]
    (top, bottom), (left, right) = pads
    planes = dxp.reshape(C, n, Hp, Wp)[:, :, top : Hp - bottom, left : Wp - right]
    return planes.transpose(1, 0, 2, 3)


def _dx_full_flat(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """``dx`` as the notes' full convolution (seed 002), run by the flat forward.

    ``dx = corr(pad(dout), rot180(w))`` with ``dout`` padded by ``KH - 1 - top`` above
    (and so on), which yields exactly the ``H x W`` input positions: the forward kernel
    with the ``(C, F, KH, KW)`` rotated weights. Its GEMM sums over ``F*KH*KW`` (long),
    where the slice-add form sums over ``F`` only (a poor GEMM when ``F`` is small).
    """
    _layout, _x_shape, _xp, w, _has_bias, pads = cache
    KH, KW = w.shape[2:]
    (top, bottom), (left, right) = pads
    gpads = ((KH - 1 - top, KH - 1 - bottom), (KW - 1 - left, KW - 1 - right))
    w_rot = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
    return correlate_flat(dout, w_rot, None, gpads)


def _dx_slice_add(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """``dx`` by ``Wt @ g`` and ``KH*KW`` long slice-adds, chunk by chunk."""
    _layout, x_shape, xp, w, _has_bias, pads = cache
    F, C, KH, KW = w.shape
    Wp = xp.shape[3]
    w_t = w.transpose(2, 3, 1, 0).copy()  # (KH, KW, C, F): rows of dx_cols
    dx = np.empty(x_shape, dtype=dout.dtype)

    def work(lo: int, hi: int, k: int) -> None:
        g = dout_wide(dout[lo:hi], Wp, f"g{k}")
        dx[lo:hi] = _dx_chunk(g, w_t, xp.shape, pads, k)

    P = (dout.shape[2] - 1) * Wp + dout.shape[3]
    per_image = 2 * KH * KW * C * P * dout.dtype.itemsize  # dx_cols and dxp
    parallel_chunks(work, chunk_bounds(x_shape[0], per_image))
    return dx


def _dw_db(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """``[dw | db] = g @ cols.T`` summed over chunks, ``(F, C*KH*KW [+1])``, in the
    forward's layout."""
    layout, _x_shape, xp, w, has_bias, _pads = cache
    F, C, KH, KW = w.shape
    if layout == "inner":
        return dw_db_inner(dout, xp, has_bias)
    if layout == "bands":
        return dw_db_bands(dout, cache)
    N, _, Hp, Wp = xp.shape
    P = (dout.shape[2] - 1) * Wp + dout.shape[3]
    rows = C * KH * KW + int(has_bias)

    def work(lo: int, hi: int, k: int) -> np.ndarray:
        cols = fill_cols(xp[lo:hi], (KH, KW), P, has_bias, f"cols{k}")
        g = dout_wide(dout[lo:hi], Wp, f"g{k}")
        part = SCRATCH.get(f"dw{k}", (F, rows), dout.dtype)
        g_mat, cols_mat = g.reshape(F, -1), cols.reshape(rows, -1)
        add_product(part, g_mat, cols_mat.T, lo == bounds[k][0])
        return part

    bounds = chunk_bounds(N, rows * P * dout.dtype.itemsize)
    return sum(parallel_chunks(work, bounds))


def conv2d_backward_flat(
    dout: np.ndarray, cache: tuple, need_dx: bool = True
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """Gradients of :func:`~conv_flat.conv2d_forward_flat`.

    ``[dw | db]`` by one GEMM per chunk (columns rebuilt from the cached padded
    input); ``dx`` by the full convolution when ``2*C > F`` (``2*C >= F`` on small
    maps) and the padding is smaller than the kernel (always true for "same" and
    "valid"), else by the slice-adds
    (:func:`~cnnumpy.engine.rules.dx_by_full_convolution`, the module docstring).

    Returns:
        ``(dx (N, C, H, W) or None, dw (F, C, KH, KW), db (F,) or None)``.
    """
    _layout, _x_shape, xp, w, has_bias, pads = cache
    F, C, KH, KW = w.shape
    dw_ext = _dw_db(dout, cache)
    dw = dw_ext[:, : C * KH * KW].reshape(w.shape)
    db = dw_ext[:, -1].copy() if has_bias else None
    if not need_dx:
        return None, dw, db
    small = inner_applies(*dout.shape[2:], xp.shape[3])
    if dx_by_full_convolution(C, F, small, pads, (KH, KW)):
        return _dx_full_flat(dout, cache), dw, db
    return _dx_slice_add(dout, cache), dw, db
