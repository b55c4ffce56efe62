"""The engine's im2col plumbing: zero-copy windows, columns into reused buffers.

The math is the book's (:mod:`cnnumpy.textbook.padding`, :mod:`cnnumpy.textbook.im2col`:
padding, the window view, im2col, col2im); this module adds what the fast kernels need
on top: a zero padding that allocates once, windows built without ``as_strided``'s
overhead, columns copied into the shared scratch buffer with a row of ones for the bias.
The last axis of every copy walks ``wo``, along an image row: with stride 1 each inner
run is ``Wo`` contiguous floats, which is what ``memcpy``-like loops like.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from cnnumpy.engine.kernels.parallel import SCRATCH, Pads
from cnnumpy.textbook import padding as book_padding
from cnnumpy.textbook.arguments import int_tuple
from cnnumpy.textbook.im2col import col2im, im2col, window_layout
from cnnumpy.textbook.padding import (
    PADDING_MODES,
    check_padding_mode,
    normalize_pads,
    output_size,
    pad2d_backward,
    resolve_padding,
)


def conv_geometry(x, w, stride, padding):
    """``(stride pair, pads)`` of a convolution call, as the book resolves them."""
    SH, SW = int_tuple(stride, 2, "stride", "conv2d")
    pads = resolve_padding(padding, w.shape[2:], (SH, SW), x.shape[2:])
    return (SH, SW), pads


def pad2d(x: np.ndarray, pads: int | tuple, mode: str = "zeros") -> np.ndarray:
    """:func:`cnnumpy.textbook.padding.pad2d`, with zero padding as one zero-filled
    allocation and one block copy (cheaper than the generic ``np.pad``)."""
    (top, bottom), (left, right) = normalize_pads(pads)
    check_padding_mode(mode)
    if mode != "zeros" or top == bottom == left == right == 0:
        return book_padding.pad2d(x, pads, mode)
    H, W = x.shape[-2:]
    xp = np.zeros(x.shape[:-2] + (H + top + bottom, W + left + right), dtype=x.dtype)
    xp[..., top : top + H, left : left + W] = x
    return xp


def strided_view(
    a: np.ndarray, shape: tuple, strides: tuple, writeable: bool = False
) -> np.ndarray:
    """View of ``a``'s memory with the given shape and strides (read-only unless
    asked: windows that overlap must not be written through).

    Like ``as_strided``, but for a C-contiguous ``a`` it builds the view directly
    (about 1 microsecond instead of 8: the kernels make a few per chunk) and NumPy
    checks that the view stays inside ``a``'s memory.
    """
    if not a.flags.c_contiguous:
        return as_strided(a, shape=shape, strides=strides, writeable=writeable)
    view = np.ndarray(shape, a.dtype, a, 0, strides)
    view.flags.writeable = writeable and a.flags.writeable
    return view


def window_view(
    xp: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int]
) -> np.ndarray:
    """:func:`cnnumpy.textbook.im2col.window_view` through :func:`strided_view`."""
    shape, strides = window_layout(xp.shape, xp.strides, kernel, stride)
    return strided_view(xp, shape, strides)


def weights_matrix(w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """``[W | b]``: the kernels as rows ``(F, C*KH*KW)``, plus the bias column, so
    that the bias rides in the GEMM with the columns' row of ones."""
    F = w.shape[0]
    w_mat = w.reshape(F, -1)
    if b is None:
        return w_mat
    return np.concatenate([w_mat, b.reshape(F, 1).astype(w.dtype)], axis=1)


def pad_into(dst: np.ndarray, src: np.ndarray, pads: Pads) -> np.ndarray:
    """Write ``src`` zero-padded by ``pads`` into ``dst`` (which may hold garbage).

    Only the four border strips are zeroed, then the interior is copied once.
    """
    (top, bottom), (left, right) = pads
    H, W = src.shape[-2:]
    Hp, Wp = dst.shape[-2:]
    dst[..., :top, :] = 0
    dst[..., top + H :, :] = 0
    dst[..., top : top + H, :left] = 0
    dst[..., top : top + H, left + W :] = 0
    dst[..., top : top + H, left : left + W] = src
    return dst


def fill_columns(
    xp: np.ndarray,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    ones_row: bool = False,
    role: str = "cols",
) -> np.ndarray:
    """im2col of a few images ``xp`` into the reused scratch buffer ``role``.

    Returns ``cols`` ``(C*KH*KW [+ 1], n*Ho*Wo)``, rows ``(c, kh, kw)`` like
    :func:`im2col`, filled by ONE ``copyto`` from the zero-copy :func:`window_view`
    (no allocation, no page faults, and the chunk is still in cache when the GEMM
    reads it). With ``ones_row`` a last row of ones is appended: multiplying by
    ``[W | b]`` then adds the bias inside the GEMM, and the gradient
    ``dout @ cols.T`` yields ``db`` as its last column.
    """
    n, C, Hp, Wp = xp.shape
    KH, KW = kernel
    Ho, Wo = output_size(Hp, KH, stride[0]), output_size(Wp, KW, stride[1])
    rows = C * KH * KW + int(ones_row)
    cols = SCRATCH.get(role, (rows, n * Ho * Wo), xp.dtype)
    target = cols[: C * KH * KW].reshape(C, KH, KW, n, Ho, Wo)
    np.copyto(target, window_view(xp, kernel, stride))
    if ones_row:
        cols[-1] = 1
    return cols


__all__ = [
    "PADDING_MODES",
    "col2im",
    "conv_geometry",
    "fill_columns",
    "im2col",
    "normalize_pads",
    "pad2d",
    "pad2d_backward",
    "pad_into",
    "strided_view",
    "weights_matrix",
    "window_view",
]
