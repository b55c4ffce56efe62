"""The wide grid: a stride-1 correlation read from flat image planes.

Keep each padded plane flat, ``xp[n, c, :]`` of length ``Hp*Wp``. Output ``(i, j)``
reads ``xp[n, c, (i + kh)*Wp + (j + kw)]``, i.e. position ``p = i*Wp + j`` shifted by
``off = kh*Wp + kw``. Computed on the WIDE grid ``p = 0 .. P-1`` with

    P = (Ho - 1)*Wp + Wo        (every output row padded to Wp, minus the last junk)

the columns are ``cols[(c, kh, kw), n, p] = xp[n, c, p + off]``: for each row and image
ONE contiguous run of ``P`` floats (about ``Ho*Wp``), a memcpy, where classic im2col
copies runs of ``Wo`` floats. The ``Wp - Wo`` junk positions at the end of each output
row read across the row boundary; their results are simply never read. ``P`` stops
before the last row's junk, so reads never leave the plane (no extra tail).

This module holds the grid's three pieces, shared by the forward
(:mod:`conv_flat`), the row bands (:mod:`conv_bands`) and the gradients
(:mod:`conv_flat_backward`): the view of the valid outputs on the grid
(:func:`wide_view`), the columns (:func:`fill_cols`) and ``dout`` laid on the grid
with zeros on the junk (:func:`dout_wide`).
"""

from __future__ import annotations

import numpy as np

from cnnumpy.engine.kernels.im2col import strided_view
from cnnumpy.engine.kernels.parallel import SCRATCH


def wide_view(a: np.ndarray, rows: int, width: int, row_step: int) -> np.ndarray:
    """``a (..., P)`` seen as ``(..., rows, width)`` with rows ``row_step`` apart:
    the valid ``(Ho, Wo)`` outputs (or junk strips) of the wide grid, no copy."""
    s = a.strides[-1]
    shape, strides = a.shape[:-1] + (rows, width), a.strides[:-1] + (row_step * s, s)
    return strided_view(a, shape, strides, writeable=True)


def fill_cols(xp: np.ndarray, kernel: tuple[int, int], P: int, bias: bool, role):
    """``cols (C*KH*KW [+1], n, P)`` from flat planes ``xp (n, C, Hp, Wp)``: one
    contiguous run of ``P`` floats per (row, image), plus the ones row of the bias."""
    n, C, Hp, Wp = xp.shape
    KH, KW = kernel
    rows = C * KH * KW
    cols = SCRATCH.get(role, (rows + int(bias), n, P), xp.dtype)
    sN, sC, sH, sW = xp.strides
    shifted = strided_view(xp, (C, KH, KW, n, P), (sC, sH, sW, sN, sW))
    np.copyto(cols[:rows].reshape(C, KH, KW, n, P), shifted)
    if bias:
        cols[rows] = 1
    return cols


def dout_wide(
    dout: np.ndarray, Wp: int, role: str, length: int | None = None
) -> np.ndarray:
    """``g (F, n, P)``: ``dout (n, F, Ho, Wo)`` on the wide grid, zeros on the junk
    (and on ``P .. length - 1`` when a longer ``length`` is asked for)."""
    n, F, Ho, Wo = dout.shape
    P = (Ho - 1) * Wp + Wo
    g = SCRATCH.get(role, (F, n, length or P), dout.dtype)
    wide_view(g, Ho, Wo, Wp)[...] = dout.transpose(1, 0, 2, 3)
    if Wp > Wo and Ho > 1:
        wide_view(g[..., Wo:], Ho - 1, Wp - Wo, Wp)[...] = 0
    g[..., P:] = 0
    return g
