"""Padding, sliding windows, im2col and col2im: the plumbing under every convolution.

Padding (seed 003, "Comment gérer les bords ?"): the notes' three options are

- ``"zeros"``      zero padding        ``[0 | 10 20 30 40 50 | 0]``
- ``"reflect"``    reflection padding  ``[20 | 10 20 30 40 50 | 40]`` (edge not copied)
- ``"replicate"``  stretching padding  ``[10 | 10 20 30 40 50 | 50]``

Padding amounts are pairs per axis, ``((top, bottom), (left, right))``, so that "same"
padding with an even kernel can put the extra row at the bottom and the extra column on
the right (TensorFlow/Keras). ``(PH, PW)`` or an int mean symmetric padding.

im2col (seed 001, "La méthode Im2Col"): every receptive field becomes one column, so
that a convolution is a single matrix product. The columns are laid out
``(C*KH*KW, N*Ho*Wo)``:

- rows ``(c, kh, kw)`` follow the C-order flattening of a weight ``(F, C, KH, KW)``, so
  ``w.reshape(F, -1)`` needs no transpose;
- columns ``(n, ho, wo)`` fold the batch into the matrix product (one GEMM per layer);
- the last axis of the copy walks ``wo``, i.e. along an image row: with stride 1 each
  inner run is ``Wo`` contiguous floats read and written, which is what ``memcpy``-like
  loops like.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from cnnumpy.functional.parallel import SCRATCH, Pads

PADDING_MODES = ("zeros", "reflect", "replicate")
_NUMPY_MODE = {"reflect": "reflect", "replicate": "edge"}


def normalize_pads(pads: int | tuple) -> Pads:
    """``P``, ``(PH, PW)`` or ``((top, bottom), (left, right))`` -> the last form."""
    if isinstance(pads, (int, np.integer)):
        return (int(pads), int(pads)), (int(pads), int(pads))
    out = []
    for p in pads:
        if isinstance(p, (int, np.integer)):
            out.append((int(p), int(p)))
        else:
            before, after = p
            out.append((int(before), int(after)))
    if len(out) != 2 or min(min(p) for p in out) < 0:
        raise ValueError(
            f"pad2d: expected non-negative padding for 2 axes, got {pads!r}"
        )
    return out[0], out[1]


def pad2d(x: np.ndarray, pads: int | tuple, mode: str = "zeros") -> np.ndarray:
    """Pad the last two axes of ``x`` (``(..., H, W)``).

    Args:
        x: array ``(..., H, W)``.
        pads: ``P``, ``(PH, PW)`` or ``((top, bottom), (left, right))``.
        mode: ``"zeros"``, ``"reflect"`` (needs every pad < the size of its axis) or
            ``"replicate"``.

    Returns:
        ``(..., H + top + bottom, W + left + right)``; ``x`` itself when nothing is
        padded.
    """
    (top, bottom), (left, right) = normalize_pads(pads)
    if mode not in PADDING_MODES:
        raise ValueError(
            f"pad2d: padding_mode must be one of {PADDING_MODES}, got {mode!r}"
        )
    if top == bottom == left == right == 0:
        return x
    H, W = x.shape[-2:]
    if mode == "zeros":
        # One zero-filled allocation and one block copy: cheaper than generic np.pad.
        xp = np.zeros(
            x.shape[:-2] + (H + top + bottom, W + left + right), dtype=x.dtype
        )
        xp[..., top : top + H, left : left + W] = x
        return xp
    if mode == "reflect" and (max(top, bottom) >= H or max(left, right) >= W):
        raise ValueError(
            f"pad2d: reflect padding needs each pad < the input size, got pads "
            f"(({top}, {bottom}), ({left}, {right})) for an input of size {H}x{W}"
        )
    widths = [(0, 0)] * (x.ndim - 2) + [(top, bottom), (left, right)]
    return np.pad(x, widths, mode=_NUMPY_MODE[mode])


def _fold_axis(
    g: np.ndarray, axis: int, before: int, after: int, mode: str
) -> np.ndarray:
    """Backward of padding one axis: crop, and for reflect/replicate add the gradient of
    every padded cell onto the cell it copies (a copied value feeds the loss twice)."""
    g = np.moveaxis(g, axis, -1)
    size = g.shape[-1] - before - after
    inner = g[..., before : before + size].copy()
    if mode == "reflect":
        # padded before-1-i copies x[1+i]; padded before+size+i copies x[size-2-i]
        if before:
            inner[..., 1 : before + 1] += g[..., :before][..., ::-1]
        if after:
            inner[..., size - 1 - after : size - 1] += g[..., before + size :][
                ..., ::-1
            ]
    elif mode == "replicate":
        if before:
            inner[..., 0] += g[..., :before].sum(axis=-1)
        if after:
            inner[..., size - 1] += g[..., before + size :].sum(axis=-1)
    return np.moveaxis(inner, -1, axis)


def pad2d_backward(
    dxp: np.ndarray, pads: int | tuple, mode: str = "zeros"
) -> np.ndarray:
    """Gradient of :func:`pad2d`: ``dL/dx`` from ``dL/dx_padded``.

    Zero padding only crops (a view, no copy). Reflect and replicate padding copy input
    cells into the border, so the border's gradient is folded back onto those cells
    (axis by axis, which also handles the corners: a corner is a copy of a copy).

    Shape:
        dxp ``(..., H + top + bottom, W + left + right)`` -> ``(..., H, W)``.
    """
    (top, bottom), (left, right) = normalize_pads(pads)
    Hp, Wp = dxp.shape[-2:]
    if mode == "zeros" or top == bottom == left == right == 0:
        return dxp[..., top : Hp - bottom, left : Wp - right]
    g = _fold_axis(dxp, -1, left, right, mode)
    return _fold_axis(g, -2, top, bottom, mode)


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
    """Zero-copy view of every ``KH x KW`` window, axes ``(C, KH, KW, N, Ho, Wo)``.

    ``view[c, kh, kw, n, ho, wo] = xp[n, c, ho*SH + kh, wo*SW + kw]``. Only strides
    change, no data moves (``as_strided``); the view is read-only because windows
    overlap. Rows or columns left over when ``(Hp - KH)`` is not a multiple of ``SH``
    are skipped (floor, like every framework).
    """
    N, C, Hp, Wp = xp.shape
    KH, KW = kernel
    SH, SW = stride
    Ho, Wo = (Hp - KH) // SH + 1, (Wp - KW) // SW + 1
    sN, sC, sH, sW = xp.strides
    shape, strides = (C, KH, KW, N, Ho, Wo), (sC, sH, sW, sN, sH * SH, sW * SW)
    return strided_view(xp, shape, strides)


def im2col(
    xp: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int]
) -> np.ndarray:
    """Receptive fields as columns, copied once from the strided window view.

    Args:
        xp: padded input ``(N, C, Hp, Wp)``.
        kernel: ``(KH, KW)``.
        stride: ``(SH, SW)``.

    Returns:
        x_cols ``(C*KH*KW, N*Ho*Wo)``, C-contiguous, rows ``(c, kh, kw)``, columns
        ``(n, ho, wo)``.
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

    Overlapping windows add up (seed 001, Figure 9), which is exactly the chain rule.
    The loop runs over the ``KH*KW`` kernel offsets only; each step adds one whole block
    ``(C, N, Ho, Wo)`` whose inner runs are image rows (``Wo`` floats), never ``C``
    floats.

    Returns:
        ``(N, C, Hp, Wp)`` as a transposed view of a ``(C, N, Hp, Wp)`` buffer; the
        caller's final crop-and-copy makes it contiguous.
    """
    N, C, Hp, Wp = xp_shape
    KH, KW = kernel
    SH, SW = stride
    Ho, Wo = (Hp - KH) // SH + 1, (Wp - KW) // SW + 1
    blocks = cols.reshape(C, KH, KW, N, Ho, Wo)
    acc = np.zeros((C, N, Hp, Wp), dtype=cols.dtype)
    for kh in range(KH):
        for kw in range(KW):
            acc[:, :, kh : kh + SH * Ho : SH, kw : kw + SW * Wo : SW] += blocks[
                :, kh, kw
            ]
    return acc.transpose(1, 0, 2, 3)


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
    Ho, Wo = (Hp - KH) // stride[0] + 1, (Wp - KW) // stride[1] + 1
    rows = C * KH * KW + int(ones_row)
    cols = SCRATCH.get(role, (rows, n * Ho * Wo), xp.dtype)
    target = cols[: C * KH * KW].reshape(C, KH, KW, n, Ho, Wo)
    np.copyto(target, window_view(xp, kernel, stride))
    if ones_row:
        cols[-1] = 1
    return cols
