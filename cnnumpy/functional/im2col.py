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

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numpy.lib.stride_tricks import as_strided

# Bytes of one im2col chunk. The fast kernels never build the column matrix of a whole
# batch (C*KH*KW x N*Ho*Wo floats: 300 MB for a 32-channel 3x3 layer on 256 CIFAR
# images); they build it for a few images at a time, small enough to stay in the
# processor's cache between the copy that fills it and the GEMM that reads it.
CHUNK_BYTES = 4 * 2**20
# Below this much scratch in all, a kernel runs on the calling thread alone.
PARALLEL_BYTES = 2**18

PADDING_MODES = ("zeros", "reflect", "replicate")
_NUMPY_MODE = {"reflect": "reflect", "replicate": "edge"}

Pads = tuple[tuple[int, int], tuple[int, int]]


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
    return as_strided(
        xp,
        shape=(C, KH, KW, N, Ho, Wo),
        strides=(sC, sH, sW, sN, sH * SH, sW * SW),
        writeable=False,
    )


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


class Workspace:
    """Scratch arrays reused from call to call, one per role and dtype.

    Why: a fresh ``np.empty`` of tens of MB is fresh pages from the kernel, and every
    first touch of a page is a page fault (the kernel zeroes it). Reusing the same
    buffer pass after pass touches pages that are already mapped, and often already in
    cache. A buffer grows when a bigger shape is asked for and is never shrunk.

    ``get`` returns uninitialised memory. ``padded`` returns a buffer whose border is
    zero provided the caller writes only the interior: it is zeroed when (re)allocated
    for a new shape and the border is never written afterwards.
    """

    def __init__(self) -> None:
        self._flat: dict[tuple[str, np.dtype, int], np.ndarray] = {}
        self._padded: dict[str, np.ndarray] = {}

    def get(self, role: str, shape: tuple[int, ...], dtype) -> np.ndarray:
        """An uninitialised C-contiguous array of ``shape``, reused across calls."""
        # keyed by thread too: two user threads running kernels never share scratch
        key = (role, np.dtype(dtype), threading.get_ident())
        size = int(np.prod(shape, dtype=np.int64))
        buf = self._flat.get(key)
        if buf is None or buf.size < size:
            buf = np.empty(size, dtype=dtype)
            self._flat[key] = buf
        return buf[:size].reshape(shape)

    def padded(self, role: str, x: np.ndarray, pads: Pads) -> np.ndarray:
        """``x`` zero-padded by ``pads`` on its last two axes, in a reused buffer."""
        (top, bottom), (left, right) = pads
        H, W = x.shape[-2:]
        shape = x.shape[:-2] + (H + top + bottom, W + left + right)
        buf = self._padded.get(role)
        if buf is None or buf.shape != shape or buf.dtype != x.dtype:
            buf = np.zeros(shape, dtype=x.dtype)
            self._padded[role] = buf
        buf[..., top : top + H, left : left + W] = x
        return buf

    def clear(self) -> None:
        """Forget every buffer (the memory returns to the system)."""
        self._flat.clear()
        self._padded.clear()


# Chunk buffers live only during one call, so every layer can share them.
SCRATCH = Workspace()

# Threads that process chunks side by side (see parallel_chunks).
WORKERS = max(1, min(os.cpu_count() or 1, 4))
_POOL: ThreadPoolExecutor | None = None
_BLAS = None


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(WORKERS, thread_name_prefix="cnnumpy")
    return _POOL


def _single_threaded_blas():
    """Hold the BLAS to one thread per call (threadpoolctl), if it is installed."""
    global _BLAS
    if _BLAS is None:
        try:
            from threadpoolctl import ThreadpoolController

            _BLAS = ThreadpoolController()
        except ImportError:  # no control: the BLAS keeps its own threads
            _BLAS = False
    if _BLAS is False:
        return contextlib.nullcontext()
    return _BLAS.limit(limits=1, user_api="blas")


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


def chunk_bounds(n: int, bytes_per_item: int) -> list[tuple[int, int]]:
    """Split ``range(n)`` into chunks of about :data:`CHUNK_BYTES` of scratch each,
    and, unless the whole job is below :data:`PARALLEL_BYTES`, at least as many
    chunks as there are workers (so that every core has work)."""
    step = max(1, min(n, CHUNK_BYTES // max(bytes_per_item, 1)))
    if n * bytes_per_item >= PARALLEL_BYTES:  # tiny jobs: threads cost more than gain
        step = max(1, min(step, -(-n // WORKERS)))
    return [(lo, min(n, lo + step)) for lo in range(0, n, step)]


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


def parallel_chunks(work, bounds: list[tuple[int, int]]) -> list:
    """Run ``work(lo, hi, worker)`` over every chunk, on :data:`WORKERS` threads.

    Why: NumPy's copies and ufuncs run on one core, and a multi-threaded BLAS call on
    a small matrix spends much of its time synchronising its threads (badly so when
    another process shares the cores). Giving each core whole chunks to copy AND
    multiply, with the BLAS held to one thread meanwhile, keeps both cores busy with
    no barrier but the final join. NumPy releases the GIL inside copies and GEMMs.
    Worker ``k`` handles chunks ``k, k + WORKERS, ...`` and must use scratch roles of
    its own (e.g. ``f"cols{k}"``). Returns each worker's last return value.
    """
    workers = min(WORKERS, len(bounds))
    if workers <= 1:
        return [[work(lo, hi, 0) for lo, hi in bounds][-1]]

    def run(k: int):
        result = None
        for lo, hi in bounds[k::workers]:
            result = work(lo, hi, k)
        return result

    with _single_threaded_blas():
        futures = [_pool().submit(run, k) for k in range(workers)]
        return [f.result() for f in futures]
