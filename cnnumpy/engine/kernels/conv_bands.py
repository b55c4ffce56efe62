"""Row bands: the wide grid's columns for wide kernels over many channels.

Wide kernels over many channels (:func:`~cnnumpy.engine.rules.use_bands`: seed 000's
5x5 layers over 16-20 channels) copy "row bands" instead of full columns
(:mod:`conv_wide`): the columns of ``kw = 0`` only, ``bands[(c, kh), n, q] =
xp[n, c, kh*Wp + q]``; the other ``kw`` are the same rows read ``kw`` floats further
on, so ``KW`` times fewer rows are copied.

- forward (:func:`bands_product`): ``Z = W_bands @ bands`` gives, for every ``kw``, the
  partial sums ``Z[kw, f, n, q] = sum_{c, kh} w[f, c, kh, kw] * xp[n, c, kh*Wp + q]``;
  the output is ``sum_kw Z[kw, :, :, kw : kw + P]`` (input position
  ``p + kh*Wp + kw`` is band ``(c, kh)`` at ``q = p + kw``), ``KW - 1`` adds of runs
  ``P`` long.
- ``dw`` (:func:`dw_db_bands`): one GEMM per ``kw`` on a shifted view of the bands.
"""

from __future__ import annotations

import numpy as np

from cnnumpy.engine.kernels.conv_wide import dout_wide
from cnnumpy.engine.kernels.im2col import strided_view
from cnnumpy.engine.kernels.parallel import (
    SCRATCH,
    chunk_bounds,
    parallel_chunks,
)
from cnnumpy.engine.kernels.products import add_product


def fill_bands(
    xp: np.ndarray, KH: int, Q: int, bias: bool, role: str, tail: int = 0
) -> np.ndarray:
    """Row-band columns ``bands (C*KH [+1], n, Q)``, ``bands[(c, kh), n, q] =
    xp[n, c, kh*Wp + q]``: the columns of :func:`~conv_wide.fill_cols` for ``kw = 0``
    only, each run ``KW - 1`` floats longer; the other ``kw`` are the same rows
    shifted by ``kw`` (see :func:`bands_product`). Returned flat, followed by ``tail``
    zeros (so that a view shifted by up to ``tail`` floats stays inside the buffer,
    see :func:`dw_db_bands`)."""
    n, C, _Hp, _Wp = xp.shape
    size = (C * KH + int(bias)) * n * Q
    flat = SCRATCH.get(role, (size + tail,), xp.dtype)
    bands = flat[:size].reshape(-1, n, Q)
    sN, sC, sH, sW = xp.strides
    shifted = strided_view(xp, (C, KH, n, Q), (sC, sH, sN, sW))
    np.copyto(bands[: C * KH].reshape(C, KH, n, Q), shifted)
    if bias:
        bands[-1] = 1
    flat[size:] = 0
    return flat


def band_weights(w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """``(KW*F, C*KH [+1])``: row ``(kw, f)``, column ``(c, kh)`` holds
    ``w[f, c, kh, kw]``; the bias column is ``b`` in the ``kw = 0`` rows, else 0."""
    F, C, KH, KW = w.shape
    w_bands = w.transpose(3, 0, 1, 2).reshape(KW * F, C * KH)
    if b is None:
        return np.ascontiguousarray(w_bands)
    bias = np.zeros((KW * F, 1), dtype=w.dtype)
    bias[:F, 0] = b
    return np.concatenate([w_bands, bias], axis=1)


def bands_product(
    w_bands: np.ndarray,
    xp: np.ndarray,
    kernel: tuple[int, int],
    P: int,
    bias: bool,
    k: int,
) -> np.ndarray:
    """One chunk's correlation on the wide grid, ``(F, n, P)``, from row bands:
    ``Z = W_bands @ bands`` (:func:`band_weights`), then ``KW - 1`` shifted adds
    (module docstring). ``k`` names the worker's scratch buffers."""
    KH, KW = kernel
    F = w_bands.shape[0] // KW
    Q = P + KW - 1  # kw shifts of P positions: the last read is the plane's end
    cols = fill_bands(xp, KH, Q, bias, f"cols{k}")
    z = SCRATCH.get(f"out{k}", (KW, F, xp.shape[0], Q), xp.dtype)
    np.matmul(w_bands, cols.reshape(w_bands.shape[1], -1), out=z.reshape(KW * F, -1))
    res = z[0, :, :, :P]
    for kw in range(1, KW):
        res += z[kw, :, :, kw : kw + P]
    return res


def dw_db_bands(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """``[dw | db]`` ``(F, C*KH*KW [+1])`` from row bands: ``KW`` GEMMs per chunk.

    ``dw[f, c, kh, kw] = sum_{n, p} g[f, n, p] * bands[(c, kh), n, p + kw]``. With
    ``g`` on ``Q = P + KW - 1`` positions per image (zeros beyond ``P``), the bands
    of a chunk read as ONE matrix ``(C*KH, n*Q)`` shifted by ``kw`` floats: the last
    ``KW - 1`` positions of an image then read the next image's first ones (or the
    zero tail of the buffer), multiplied by the zeros of ``g``. So ``dw[..., kw]`` is
    one GEMM ``g @ shifted.T`` on a view, with no copy per ``kw``.
    """
    _layout, _x_shape, xp, w, has_bias, _pads = cache
    F, C, KH, KW = w.shape
    N, _, Hp, Wp = xp.shape
    P = (dout.shape[2] - 1) * Wp + dout.shape[3]
    Q = P + KW - 1
    rows = C * KH + int(has_bias)

    def work(lo: int, hi: int, k: int) -> np.ndarray:
        n = hi - lo
        flat = fill_bands(xp[lo:hi], KH, Q, has_bias, f"cols{k}", KW - 1)
        g = dout_wide(dout[lo:hi], Wp, f"g{k}", Q).reshape(F, n * Q)
        part = SCRATCH.get(f"dw{k}", (KW, F, rows), dout.dtype)
        step = flat.itemsize
        for kw in range(KW):
            shifted = strided_view(flat[kw:], (rows, n * Q), (n * Q * step, step))
            add_product(part[kw], g, shifted.T, lo == bounds[k][0])
        return part

    bounds = chunk_bounds(N, rows * Q * dout.dtype.itemsize)
    part = sum(parallel_chunks(work, bounds))
    dw_ext = np.empty((F, C * KH * KW + int(has_bias)), dtype=dout.dtype)
    # part[kw, f, c*KH + kh] -> dw_ext[f, (c*KH + kh)*KW + kw]
    dw_ext[:, : C * KH * KW] = part[:, :, : C * KH].transpose(1, 2, 0).reshape(F, -1)
    if has_bias:
        dw_ext[:, -1] = part[0, :, -1]
    return dw_ext
