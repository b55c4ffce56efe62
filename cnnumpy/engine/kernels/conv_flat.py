"""Stride-1 zero-padded convolution on flat image planes ("implicit GEMM" layout).

Every convolution of the notes' networks has stride 1 and zero padding. For those, the
column matrix can be copied in long runs instead of image rows: each padded plane is
kept flat and the correlation computed on the WIDE grid of :mod:`conv_wide`, whose
columns are one contiguous run of about ``Ho*Wp`` floats per row and image (classic
im2col copies runs of ``Wo``), at the price of ``Wp - Wo`` junk positions per output
row that are never read.

- forward (here): ``[W | b] @ cols`` -> ``(F, n, P)``, then a strided view drops the
  junk while transposing to ``(N, F, Ho, Wo)``.
- ``dw`` and ``dx`` (:mod:`conv_flat_backward`): ``g @ cols.T`` with zeros on the junk
  of ``g``, and ``dx`` by the notes' full convolution or by long slice-adds,
  whichever does less work for the shape.

Wide kernels over many channels copy "row bands" instead (:mod:`conv_bands`,
:func:`~cnnumpy.engine.rules.use_bands`), ``KW`` times fewer rows. Small output maps
(up to 16x16) on which the wide grid would compute at least 10% junk take
:mod:`conv_inner` instead (the images innermost: no junk), for the forward, ``dw``
and the full-convolution ``dx``. The three layouts are three kernels of the
``conv2d`` dispatch table (:mod:`cnnumpy.engine.ops`, rules
:func:`~cnnumpy.engine.rules.layout_for`); the backward runs the forward's layout,
and the full-convolution ``dx`` picks its own by the same rules (its maps and
channels are not the forward's).

Batches go chunk by chunk through :func:`parallel_chunks`, like the general kernels
(chunks of about 4 MB of columns: big enough that the per-chunk overhead of the two
worker threads is small, measured faster than 1-image or whole-batch chunks, and
faster than one whole-batch GEMM on the BLAS's own two threads).
"""

from __future__ import annotations

import numpy as np

from cnnumpy.engine.kernels.conv_bands import band_weights, bands_product
from cnnumpy.engine.kernels.conv_inner import correlate_inner
from cnnumpy.engine.kernels.conv_wide import fill_cols, wide_view
from cnnumpy.engine.kernels.epilogue import Post, Tiles, chunk_epilogue, out_size
from cnnumpy.engine.kernels.im2col import pad_into, weights_matrix
from cnnumpy.engine.kernels.parallel import (
    PADDED,
    SCRATCH,
    Pads,
    chunk_bounds,
    parallel_chunks,
)
from cnnumpy.engine.rules import layout_for
from cnnumpy.textbook.padding import output_size

NO_PADS: Pads = ((0, 0), (0, 0))


def _padded(x: np.ndarray, pads: Pads):
    """``x`` zero-padded (in a reused buffer, see :class:`PaddedBuffers`) and
    C-contiguous (``x`` itself when it already is)."""
    if any(sum(pads, ())):
        return PADDED.padded(x, pads)
    return np.ascontiguousarray(x)


def _columns_product(
    w_ext: np.ndarray,
    xp: np.ndarray,
    kernel: tuple[int, int],
    P: int,
    bias: bool,
    k: int,
) -> np.ndarray:
    """One chunk's correlation on the wide grid, ``(F, n, P)``, from full columns:
    ``[W | b] @ cols``, one GEMM. ``k`` names the worker's scratch buffers."""
    F = w_ext.shape[0]
    cols = fill_cols(xp, kernel, P, bias, f"cols{k}")
    res = SCRATCH.get(f"out{k}", (F, xp.shape[0], P), xp.dtype)
    np.matmul(w_ext, cols.reshape(cols.shape[0], -1), out=res.reshape(F, -1))
    return res


def correlate_flat(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    pads: Pads | None = None,
    post: Post = None,
    pool: Tiles | None = None,
    layout: str | None = None,
) -> np.ndarray:
    """Valid stride-1 correlation of the planes ``x``, chunk by chunk.

    ``x`` is already padded, or with ``pads`` each chunk is zero-padded into a
    scratch buffer first (no padded copy of the whole batch). ``pool`` and ``post``
    (fused inference) run on each chunk while it is in cache, see
    :func:`chunk_epilogue`.

    ``layout`` (default: :func:`~cnnumpy.engine.rules.layout_for`'s choice) is
    ``"inner"``
    (:mod:`conv_inner`) or one of two column layouts on the wide grid: full columns
    (:func:`_columns_product`) or row bands (:func:`~conv_bands.bands_product`).
    """
    N, C, H, W = x.shape
    (top, bottom), (left, right) = pads or NO_PADS
    Hp, Wp = H + top + bottom, W + left + right
    F, _, KH, KW = w.shape
    Ho, Wo = output_size(Hp, KH), output_size(Wp, KW)
    layout = layout or layout_for(x.shape, w.shape, pads or NO_PADS)
    if layout == "inner":  # small maps: no junk (conv_inner)
        return correlate_inner(x, w, b, pads, post, pool)
    P = (Ho - 1) * Wp + Wo
    if layout == "bands":
        w_ext, product = band_weights(w, b), bands_product
        Q = P + KW - 1  # the length of a band (conv_bands)
        per_image = max(w_ext.shape[1], w_ext.shape[0]) * Q * x.dtype.itemsize
    else:
        w_ext, product = weights_matrix(w, b), _columns_product  # the bias rides
        per_image = w_ext.shape[1] * P * x.dtype.itemsize
    out = np.empty((N, F, *out_size(Ho, Wo, pool)), dtype=x.dtype)

    def work(lo: int, hi: int, k: int) -> None:
        xp = x[lo:hi]
        if pads is not None:
            xp = pad_into(
                SCRATCH.get(f"pad{k}", (hi - lo, C, Hp, Wp), x.dtype), xp, pads
            )
        res = product(w_ext, xp, (KH, KW), P, b is not None, k)
        valid = chunk_epilogue(res, wide_view(res, Ho, Wo, Wp), pool, post, k)
        out[lo:hi] = valid.transpose(1, 0, 2, 3)

    parallel_chunks(work, chunk_bounds(N, per_image))
    return out


def conv2d_forward_flat(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    pads: Pads,
    layout: str,
    post: Post = None,
    pool: Tiles | None = None,
) -> tuple[np.ndarray, tuple]:
    """Stride-1 zero-padded cross-correlation in ``layout`` (one of
    :data:`~cnnumpy.engine.rules.LAYOUTS`, module docstring); ``post`` and ``pool``
    as in :func:`correlate_flat`.

    Shape:
        x ``(N, C, H, W)``, w ``(F, C, KH, KW)``, b ``(F,)`` -> out
        ``(N, F, Ho, Wo)`` with ``Ho = H + top + bottom - KH + 1``.

    Returns:
        ``(out, cache)``; the cache holds the padded input, not the columns. Its
        gradients: :func:`~conv_flat_backward.conv2d_backward_flat`.
    """
    xp = _padded(x, pads)
    out = correlate_flat(xp, w, b, post=post, pool=pool, layout=layout)
    return out, (layout, x.shape, xp, w, b is not None, pads)
