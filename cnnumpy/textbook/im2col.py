"""im2col and col2im: a convolution as ONE matrix product (seed 001, "Im2Col").

Every receptive field of the padded input becomes one column, so that the convolution
of the whole batch is a single product ``W_mat @ x_cols``. The columns are laid out
``(C*KH*KW, N*Ho*Wo)``:

- rows ``(c, kh, kw)`` follow the C-order flattening of a weight ``(F, C, KH, KW)``, so
  ``w.reshape(F, -1)`` needs no transpose;
- columns ``(n, ho, wo)`` fold the batch into the matrix product.

col2im is its transpose: every column is added back onto its window, and overlapping
windows add up (seed 001, Figure 9), which is exactly the chain rule.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from cnnumpy.textbook.padding import output_size


def window_layout(
    shape: tuple[int, ...],
    strides: tuple[int, ...],
    kernel: tuple[int, int],
    stride: tuple[int, int],
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Shape and strides of the view of every window of a ``(N, C, Hp, Wp)`` array.

    The view's axes are ``(C, KH, KW, N, Ho, Wo)``: ``view[c, kh, kw, n, ho, wo] =
    xp[n, c, ho*SH + kh, wo*SW + kw]``. Rows or columns left over when ``Hp - KH`` is
    not a multiple of ``SH`` are skipped (floor, like every framework).
    """
    N, C, Hp, Wp = shape
    KH, KW = kernel
    SH, SW = stride
    Ho, Wo = output_size(Hp, KH, SH), output_size(Wp, KW, SW)
    sN, sC, sH, sW = strides
    return (C, KH, KW, N, Ho, Wo), (sC, sH, sW, sN, sH * SH, sW * SW)


def window_view(
    xp: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int]
) -> np.ndarray:
    """Zero-copy view of every ``KH x KW`` window, axes ``(C, KH, KW, N, Ho, Wo)``.

    Only strides change, no data moves; the view is read-only because windows overlap.
    """
    shape, strides = window_layout(xp.shape, xp.strides, kernel, stride)
    return as_strided(xp, shape=shape, strides=strides, writeable=False)


def im2col(
    xp: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int]
) -> np.ndarray:
    """Receptive fields as columns, copied once from the window view.

    Args:
        xp: padded input ``(N, C, Hp, Wp)``.
        kernel: ``(KH, KW)``.
        stride: ``(SH, SW)``.

    Returns:
        x_cols ``(C*KH*KW, N*Ho*Wo)``, rows ``(c, kh, kw)``, columns ``(n, ho, wo)``.
    """
    view = window_view(xp, kernel, stride)
    C, KH, KW, N, Ho, Wo = view.shape
    return np.ascontiguousarray(view).reshape(C * KH * KW, N * Ho * Wo)


def col2im(
    cols: np.ndarray,
    xp_shape: tuple[int, ...],
    kernel: tuple[int, int],
    stride: tuple[int, int],
) -> np.ndarray:
    """Inverse of :func:`im2col`: scatter-add every column back onto its window.

    The loop runs over the ``KH*KW`` kernel offsets only; each step adds one whole block
    ``(C, N, Ho, Wo)`` onto the input positions that offset reads.

    Returns:
        ``(N, C, Hp, Wp)``, as a transposed view of a ``(C, N, Hp, Wp)`` buffer.
    """
    N, C, Hp, Wp = xp_shape
    KH, KW = kernel
    SH, SW = stride
    Ho, Wo = output_size(Hp, KH, SH), output_size(Wp, KW, SW)
    blocks = cols.reshape(C, KH, KW, N, Ho, Wo)
    acc = np.zeros((C, N, Hp, Wp), dtype=cols.dtype)
    for kh in range(KH):
        for kw in range(KW):
            rows = slice(kh, kh + SH * Ho, SH)
            columns = slice(kw, kw + SW * Wo, SW)
            acc[:, :, rows, columns] += blocks[:, kh, kw]
    return acc.transpose(1, 0, 2, 3)
