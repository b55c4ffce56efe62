"""Stride-1 zero-padded convolution of small maps with the images as the innermost axis.

The wide grid of :mod:`conv_flat` computes ``Wp - Wo = KW - 1`` junk outputs per row
of the output (where the window straddles two rows). On small maps that is a large
share of the work: 8x8 maps with 5x5 kernels ("same") compute 92 positions for 64
outputs (1.44x), 16x16 ones 316 for 256 (1.23x), 8x8 with 3x3 kernels 78 for 64. Here
a chunk of ``n`` images is laid out ``(C, Hp, Wp, n)``: the images innermost. Then for
a kernel offset ``(c, kh, kw)`` and an output row ``i``, the ``Wo`` outputs of all ``n``
images read ONE contiguous run of ``Wo*n`` floats, ``xt[c, i + kh, kw : kw + Wo, :]``.
So the columns ``cols[(c, kh, kw), (i, j, m)]`` are a copy of runs ``Wo*n`` floats long
(256 for 8x8 maps and 32 images), with no junk at all, and

- forward: ``[W | b] @ cols`` -> ``(F, Ho, Wo, n)``, copied to ``(n, F, Ho, Wo)``;
- ``dw``: ``g @ cols.T`` with ``g = dout`` laid out ``(F, Ho, Wo, n)`` (the ones row of
  ``cols`` yields ``db``);
- ``dx``: the full convolution of the padded ``dout`` (seed 002) goes through the
  forward, so it uses this layout too when its maps are small.

The price is two transposing copies per chunk (the input into ``(C, Hp, Wp, n)``, the
output back to ``(n, F, Ho, Wo)``), each over one activation map, where the columns are
``KH*KW`` times larger. Measured on one core of the project's machine (float32, batch
32, wide grid -> this layout, forward | backward): seed 000's 8x8 layer (20 -> 20
channels 5x5) 1.09 -> 0.89 | 2.49 -> 1.70 ms, its 16x16 layer (16 -> 20) 3.48 -> 2.81 |
6.77 -> 5.90 ms, ``vgg_cifar``'s 8x8 layer (128 -> 128, 3x3) 9.58 -> 8.25 | 19.4 ->
16.5 ms. Maps of 28x28 and 32x32 ran slower this way (forward 0.42-0.96x, ``dw``
0.47-1.17x; a 32 -> 32 3x3 layer 0.87x | 0.79x): their rows are long already and
the junk is small. Hence :func:`~cnnumpy.engine.rules.inner_applies`.
"""

from __future__ import annotations

import numpy as np

from cnnumpy.engine.kernels.epilogue import Post, Tiles, chunk_epilogue, out_size
from cnnumpy.engine.kernels.im2col import pad_into, strided_view, weights_matrix
from cnnumpy.engine.kernels.parallel import (
    SCRATCH,
    Pads,
    chunk_bounds,
    parallel_chunks,
)
from cnnumpy.engine.kernels.products import add_product
from cnnumpy.textbook.padding import output_size


def _images_inner(x: np.ndarray, pads: Pads | None, role: str) -> np.ndarray:
    """``xt (C, Hp, Wp, n)``: the planes ``x (n, C, H, W)``, zero-padded by ``pads``
    (``None``: already padded), with the images innermost, in a reused buffer."""
    n, C, H, W = x.shape
    (top, bottom), (left, right) = pads or ((0, 0), (0, 0))
    xt = SCRATCH.get(role, (C, H + top + bottom, W + left + right, n), x.dtype)
    pad_into(xt.transpose(3, 0, 1, 2), x, pads or ((0, 0), (0, 0)))
    return xt


def _fill_cols_inner(
    xt: np.ndarray, kernel: tuple[int, int], Ho: int, Wo: int, bias: bool, role: str
) -> np.ndarray:
    """``cols (C*KH*KW [+1], Ho*Wo*n)`` from ``xt (C, Hp, Wp, n)``: for each row
    ``(c, kh, kw)`` and output row ``i``, one run of ``Wo*n`` floats."""
    C, _Hp, _Wp, n = xt.shape
    KH, KW = kernel
    rows = C * KH * KW
    cols = SCRATCH.get(role, (rows + int(bias), Ho * Wo * n), xt.dtype)
    sC, sH, sW, sN = xt.strides
    runs = strided_view(xt, (C, KH, KW, Ho, Wo * n), (sC, sH, sW, sH, sN))
    np.copyto(cols[:rows].reshape(C, KH, KW, Ho, Wo * n), runs)
    if bias:
        cols[rows] = 1
    return cols


def correlate_inner(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    pads: Pads | None = None,
    post: Post = None,
    pool: Tiles | None = None,
) -> np.ndarray:
    """Valid stride-1 correlation of the planes ``x`` (already padded, or padded by
    ``pads`` chunk by chunk), as in :func:`conv_flat.correlate_flat`, in this layout.

    ``post`` and ``pool`` (fused inference) run on each chunk, see
    :func:`~cnnumpy.engine.kernels.epilogue.chunk_epilogue`; the chunk has no junk, so
    ``post`` runs on exactly the outputs.
    """
    N, C, H, W = x.shape
    (top, bottom), (left, right) = pads or ((0, 0), (0, 0))
    F, _, KH, KW = w.shape
    Ho, Wo = output_size(H, KH, 1, top, bottom), output_size(W, KW, 1, left, right)
    w_ext = weights_matrix(w, b)
    out = np.empty((N, F, *out_size(Ho, Wo, pool)), dtype=x.dtype)

    def work(lo: int, hi: int, k: int) -> None:
        xt = _images_inner(x[lo:hi], pads, f"xt{k}")
        cols = _fill_cols_inner(xt, (KH, KW), Ho, Wo, b is not None, f"cols{k}")
        res = SCRATCH.get(f"out{k}", (F, Ho, Wo, hi - lo), x.dtype)
        np.matmul(w_ext, cols, out=res.reshape(F, -1))
        # (F, n, Ho, Wo) view of the chunk: the epilogue's pool takes (Ho, Wo) tiles
        valid = chunk_epilogue(res, res.transpose(0, 3, 1, 2), pool, post, k)
        out[lo:hi] = valid.transpose(1, 0, 2, 3)

    per_image = w_ext.shape[1] * Ho * Wo * x.dtype.itemsize
    parallel_chunks(work, chunk_bounds(N, per_image))
    return out


def dw_db_inner(dout: np.ndarray, xp: np.ndarray, has_bias: bool) -> np.ndarray:
    """``[dw | db] = g @ cols.T`` summed over chunks, ``(F, C*KH*KW [+1])``, from
    the padded input ``xp (N, C, Hp, Wp)`` and ``dout (N, F, Ho, Wo)``."""
    N, C, Hp, Wp = xp.shape
    _, F, Ho, Wo = dout.shape
    KH, KW = Hp - Ho + 1, Wp - Wo + 1
    rows = C * KH * KW + int(has_bias)

    def work(lo: int, hi: int, k: int) -> np.ndarray:
        xt = _images_inner(xp[lo:hi], None, f"xt{k}")
        cols = _fill_cols_inner(xt, (KH, KW), Ho, Wo, has_bias, f"cols{k}")
        g = SCRATCH.get(f"g{k}", (F, Ho, Wo, hi - lo), dout.dtype)
        g[...] = dout[lo:hi].transpose(1, 2, 3, 0)
        part = SCRATCH.get(f"dw{k}", (F, rows), dout.dtype)
        add_product(part, g.reshape(F, -1), cols.T, lo == bounds[k][0])
        return part

    bounds = chunk_bounds(N, rows * Ho * Wo * dout.dtype.itemsize)
    return sum(parallel_chunks(work, bounds))
