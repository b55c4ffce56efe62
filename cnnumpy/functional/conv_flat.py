"""Stride-1 zero-padded convolution on flat image planes ("implicit GEMM" layout).

Every convolution of the notes' networks has stride 1 and zero padding. For those, the
column matrix can be copied in long runs instead of image rows. Keep each padded plane
flat, ``xp[n, c, :]`` of length ``Hp*Wp``. Output ``(i, j)`` reads
``xp[n, c, (i + kh)*Wp + (j + kw)]``, i.e. position ``p = i*Wp + j`` shifted by
``off = kh*Wp + kw``. Computed on the WIDE grid ``p = 0 .. P-1`` with

    P = (Ho - 1)*Wp + Wo        (every output row padded to Wp, minus the last junk)

the columns are ``cols[(c, kh, kw), n, p] = xp[n, c, p + off]``: for each row and image
ONE contiguous run of ``P`` floats (about ``Ho*Wp``), a memcpy, where classic im2col
copies runs of ``Wo`` floats. The ``Wp - Wo`` junk positions at the end of each output
row read across the row boundary; their results are simply never read. ``P`` stops
before the last row's junk, so reads never leave the plane (no extra tail).

- forward: ``[W | b] @ cols`` -> ``(F, n, P)``, then a strided view drops the junk
  while transposing to ``(N, F, Ho, Wo)``.
- ``dw``: ``g @ cols.T`` where ``g (F, n, P)`` is ``dout`` with ZEROS on the junk
  positions, so they add nothing (and the ones row of ``cols`` yields ``db``).
- ``dx``, two ways, whichever does less work for the shape:

  * the notes' full convolution of the padded ``dout`` with the rotated kernels
    (seed 002), run by the same wide-grid forward: its GEMM sums over ``F*KH*KW``,
    and it copies ``F*KH*KW`` rows of ``P`` floats (chosen when ``2*C > F``, e.g.
    ``C = F`` in VGG, and when ``2*C = F`` on the small maps of :mod:`conv_inner`,
    which compute no junk: ``vgg_cifar``'s 64 -> 128 layer on 8x8, batch 32, one
    core, 5.64 ms by slice-adds, 4.45 ms so);
  * ``dx_cols = Wt @ g`` with ``Wt (KH*KW*C, F)``, then ``KH*KW`` slice-adds
    ``dxp[c, n, off : off + P] += dx_cols[kh, kw, c, n]``, each a run of ``P``
    floats (col2im without its short rows). It moves ``C*KH*KW`` rows instead of
    ``F*KH*KW``, so it wins when there are few input channels (LeNet-5: C = 1 or 6,
    F = 6 or 16), and it also serves paddings at least as large as the kernel.

  Junk positions of ``g`` carry zeros, so they add nothing either way.

Wide kernels over many channels (:func:`use_bands`: seed 000's 5x5 layers over 16-20
channels) copy "row bands" instead, the columns of ``kw = 0`` only: the other ``kw``
are the same rows read ``kw`` floats further on. The forward multiplies them by the
kernels of every ``kw`` at once and adds the ``KW`` partial outputs shifted
(:func:`_correlate`); ``dw`` takes one GEMM per ``kw`` on a shifted view
(:func:`_dw_db_bands`). ``KW`` times fewer rows are copied.

Small output maps (up to 16x16) on which the wide grid would compute at least 10%
junk take :mod:`conv_inner` instead (the images innermost: no junk), for the forward,
``dw`` and the full-convolution ``dx``. The three layouts are three kernels of the
``conv2d`` dispatch table (:mod:`cnnumpy.engine.ops`, rules :func:`layout_for`); the
backward runs the forward's layout, and the full-convolution ``dx`` picks its own by
the same rules (its maps and channels are not the forward's).

Batches go chunk by chunk through :func:`parallel_chunks`, like the general kernels
(chunks of about 4 MB of columns: big enough that the per-chunk overhead of the two
worker threads is small, measured faster than 1-image or whole-batch chunks, and
faster than one whole-batch GEMM on the BLAS's own two threads).
"""

from __future__ import annotations

import numpy as np

from cnnumpy.functional.conv_inner import correlate_inner, dw_db_inner, inner_applies
from cnnumpy.functional.epilogue import Post, Tiles, chunk_epilogue, out_size
from cnnumpy.functional.im2col import pad_into, strided_view, weights_matrix
from cnnumpy.functional.parallel import (
    PADDED,
    SCRATCH,
    Pads,
    add_product,
    chunk_bounds,
    parallel_chunks,
)

LAYOUTS = ("inner", "bands", "wide")


def flat_applies(stride: tuple[int, int], padding_mode: str) -> bool:
    """The flat layouts serve stride 1 with zero padding (any pad amounts)."""
    return tuple(stride) == (1, 1) and padding_mode == "zeros"


def layout_for(x_shape, w_shape, pads: Pads) -> str:
    """The measured choice of layout for a stride-1 zero-padded correlation:
    ``"inner"`` on small maps (:func:`inner_applies`), ``"bands"`` for wide kernels
    over many channels (:func:`use_bands`), else ``"wide"`` (full columns)."""
    _N, C, H, W = x_shape
    _F, _C, KH, KW = w_shape
    (top, bottom), (left, right) = pads
    Hp, Wp = H + top + bottom, W + left + right
    if inner_applies(Hp - KH + 1, Wp - KW + 1, Wp):
        return "inner"
    return "bands" if use_bands(C, (KH, KW)) else "wide"


def _wide(a: np.ndarray, rows: int, width: int, row_step: int) -> np.ndarray:
    """``a (..., P)`` seen as ``(..., rows, width)`` with rows ``row_step`` apart:
    the valid ``(Ho, Wo)`` outputs (or junk strips) of the wide grid, no copy."""
    s = a.strides[-1]
    shape, strides = a.shape[:-1] + (rows, width), a.strides[:-1] + (row_step * s, s)
    return strided_view(a, shape, strides, writeable=True)


def _fill_cols(xp: np.ndarray, kernel: tuple[int, int], P: int, bias: bool, role):
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


def _padded(x: np.ndarray, pads: Pads):
    """``x`` zero-padded (in a reused buffer, see :class:`PaddedBuffers`) and
    C-contiguous (``x`` itself when it already is)."""
    if any(sum(pads, ())):
        return PADDED.padded(x, pads)
    return np.ascontiguousarray(x)


def use_bands(channels: int, kernel: tuple[int, int]) -> bool:
    """Whether :func:`_correlate` takes row-band columns (see :func:`_fill_bands`).

    Bands copy ``KW`` times fewer rows but make ``KW - 1`` passes over a ``KW``-times
    larger GEMM output, and their GEMM sums over ``C*KH`` only. Measured on one core
    of the project's machine (float32, batch 32, full columns -> bands): seed 000's
    third convolution, 20 -> 20 channels 5x5 on 8x8, 1.54 -> 1.20 ms; its second
    one's ``dx`` (a 20 -> 16 correlation on 16x16) 3.53 -> 2.69 ms; its second one,
    16 -> 20, 3.23 -> 3.15 ms. 5x5 over 3 or 6 channels and 2x2 kernels ran up to
    1.5x slower (a GEMM summing over 5 to 30 terms); 3x3 over 32-128 channels the
    same either way (the GEMM dominates). Hence: wide kernels over enough rows.
    """
    KH, KW = kernel
    return KW >= 4 and channels * KH >= 64


def _fill_bands(
    xp: np.ndarray, KH: int, Q: int, bias: bool, role: str, tail: int = 0
) -> np.ndarray:
    """Row-band columns ``bands (C*KH [+1], n, Q)``, ``bands[(c, kh), n, q] =
    xp[n, c, kh*Wp + q]``: the columns of :func:`_fill_cols` for ``kw = 0`` only, each
    run ``KW - 1`` floats longer; the other ``kw`` are the same rows shifted by ``kw``
    (see :func:`_correlate`). Returned flat, followed by ``tail`` zeros (so that a
    view shifted by up to ``tail`` floats stays inside the buffer, see
    :func:`_dw_db_bands`)."""
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


def _band_weights(w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """``(KW*F, C*KH [+1])``: row ``(kw, f)``, column ``(c, kh)`` holds
    ``w[f, c, kh, kw]``; the bias column is ``b`` in the ``kw = 0`` rows, else 0."""
    F, C, KH, KW = w.shape
    w_bands = w.transpose(3, 0, 1, 2).reshape(KW * F, C * KH)
    if b is None:
        return np.ascontiguousarray(w_bands)
    bias = np.zeros((KW * F, 1), dtype=w.dtype)
    bias[:F, 0] = b
    return np.concatenate([w_bands, bias], axis=1)


def _correlate(
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

    ``layout`` (default: :func:`layout_for`'s choice) is ``"inner"``
    (:mod:`conv_inner`) or one of two column layouts:

    - full columns (module docstring): ``[W | b] @ cols``, one GEMM, done;
    - row bands: ``Z = W_bands @ bands`` gives, for every ``kw``, the partial sums
      ``Z[kw, f, n, q] = sum_{c, kh} w[f, c, kh, kw] * xp[n, c, kh*Wp + q]``; the
      output is ``sum_kw Z[kw, :, :, kw : kw + P]`` (input position ``p + kh*Wp + kw``
      is band ``(c, kh)`` at ``q = p + kw``), ``KW - 1`` adds of runs ``P`` long.
    """
    N, C, H, W = x.shape
    (top, bottom), (left, right) = pads or ((0, 0), (0, 0))
    Hp, Wp = H + top + bottom, W + left + right
    F, _, KH, KW = w.shape
    Ho, Wo = Hp - KH + 1, Wp - KW + 1
    layout = layout or layout_for(x.shape, w.shape, pads or ((0, 0), (0, 0)))
    if layout == "inner":  # small maps: no junk (conv_inner)
        return correlate_inner(x, w, b, pads, post, pool)
    P = (Ho - 1) * Wp + Wo
    bands = layout == "bands"
    if bands:
        Q = P + KW - 1  # kw shifts of P positions: the last read is the plane's end
        w_ext = _band_weights(w, b)
        per_image = max(w_ext.shape[1], w_ext.shape[0]) * Q * x.dtype.itemsize
    else:
        w_ext = weights_matrix(w, b)  # [W | b]: the bias rides in the GEMM
        per_image = w_ext.shape[1] * P * x.dtype.itemsize
    out = np.empty((N, F, *out_size(Ho, Wo, pool)), dtype=x.dtype)

    def work(lo: int, hi: int, k: int) -> None:
        xp = x[lo:hi]
        if pads is not None:
            xp = pad_into(
                SCRATCH.get(f"pad{k}", (hi - lo, C, Hp, Wp), x.dtype), xp, pads
            )
        if bands:
            cols = _fill_bands(xp, KH, Q, b is not None, f"cols{k}")
            z = SCRATCH.get(f"out{k}", (KW, F, hi - lo, Q), x.dtype)
            np.matmul(
                w_ext, cols.reshape(w_ext.shape[1], -1), out=z.reshape(KW * F, -1)
            )
            res = z[0, :, :, :P]
            for kw in range(1, KW):
                res += z[kw, :, :, kw : kw + P]
        else:
            cols = _fill_cols(xp, (KH, KW), P, b is not None, f"cols{k}")
            res = SCRATCH.get(f"out{k}", (F, hi - lo, P), x.dtype)
            np.matmul(w_ext, cols.reshape(cols.shape[0], -1), out=res.reshape(F, -1))
        valid = chunk_epilogue(res, _wide(res, Ho, Wo, Wp), pool, post, k)
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
    :data:`LAYOUTS`, module docstring); ``post`` and ``pool`` as in
    :func:`_correlate`.

    Shape:
        x ``(N, C, H, W)``, w ``(F, C, KH, KW)``, b ``(F,)`` -> out
        ``(N, F, Ho, Wo)`` with ``Ho = H + top + bottom - KH + 1``.

    Returns:
        ``(out, cache)``; the cache holds the padded input, not the columns.
    """
    xp = _padded(x, pads)
    out = _correlate(xp, w, b, post=post, pool=pool, layout=layout)
    return out, (layout, x.shape, xp, w, b is not None, pads)


def _dout_wide(
    dout: np.ndarray, Wp: int, role: str, length: int | None = None
) -> np.ndarray:
    """``g (F, n, P)``: ``dout (n, F, Ho, Wo)`` on the wide grid, zeros on the junk
    (and on ``P .. length - 1`` when a longer ``length`` is asked for)."""
    n, F, Ho, Wo = dout.shape
    P = (Ho - 1) * Wp + Wo
    g = SCRATCH.get(role, (F, n, length or P), dout.dtype)
    _wide(g, Ho, Wo, Wp)[...] = dout.transpose(1, 0, 2, 3)
    if Wp > Wo and Ho > 1:
        _wide(g[..., Wo:], Ho - 1, Wp - Wo, Wp)[...] = 0
    g[..., P:] = 0
    return g


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
    return _correlate(dout, w_rot, None, gpads)


def _dx_slice_add(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """``dx`` by ``Wt @ g`` and ``KH*KW`` long slice-adds, chunk by chunk."""
    _layout, x_shape, xp, w, _has_bias, pads = cache
    F, C, KH, KW = w.shape
    Wp = xp.shape[3]
    w_t = w.transpose(2, 3, 1, 0).copy()  # (KH, KW, C, F): rows of dx_cols
    dx = np.empty(x_shape, dtype=dout.dtype)

    def work(lo: int, hi: int, k: int) -> None:
        g = _dout_wide(dout[lo:hi], Wp, f"g{k}")
        dx[lo:hi] = _dx_chunk(g, w_t, xp.shape, pads, k)

    P = (dout.shape[2] - 1) * Wp + dout.shape[3]
    per_image = 2 * KH * KW * C * P * dout.dtype.itemsize  # dx_cols and dxp
    parallel_chunks(work, chunk_bounds(x_shape[0], per_image))
    return dx


def _dw_db_bands(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """:func:`_dw_db` from row bands (:func:`use_bands`): ``KW`` GEMMs per chunk.

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
        flat = _fill_bands(xp[lo:hi], KH, Q, has_bias, f"cols{k}", KW - 1)
        g = _dout_wide(dout[lo:hi], Wp, f"g{k}", Q).reshape(F, n * Q)
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


def _dw_db(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """``[dw | db] = g @ cols.T`` summed over chunks, ``(F, C*KH*KW [+1])``, in the
    forward's layout."""
    layout, _x_shape, xp, w, has_bias, _pads = cache
    F, C, KH, KW = w.shape
    if layout == "inner":
        return dw_db_inner(dout, xp, has_bias)
    if layout == "bands":
        return _dw_db_bands(dout, cache)
    N, _, Hp, Wp = xp.shape
    P = (dout.shape[2] - 1) * Wp + dout.shape[3]
    rows = C * KH * KW + int(has_bias)

    def work(lo: int, hi: int, k: int) -> np.ndarray:
        cols = _fill_cols(xp[lo:hi], (KH, KW), P, has_bias, f"cols{k}")
        g = _dout_wide(dout[lo:hi], Wp, f"g{k}")
        part = SCRATCH.get(f"dw{k}", (F, rows), dout.dtype)
        g_mat, cols_mat = g.reshape(F, -1), cols.reshape(rows, -1)
        add_product(part, g_mat, cols_mat.T, lo == bounds[k][0])
        return part

    bounds = chunk_bounds(N, rows * P * dout.dtype.itemsize)
    return sum(parallel_chunks(work, bounds))


def conv2d_backward_flat(
    dout: np.ndarray, cache: tuple, need_dx: bool = True
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """Gradients of :func:`conv2d_forward_flat`.

    ``[dw | db]`` by one GEMM per chunk (columns rebuilt from the cached padded
    input); ``dx`` by the full convolution when ``2*C > F`` (``2*C >= F`` on small
    maps) and the padding is smaller than the kernel (always true for "same" and
    "valid"), else by the slice-adds (see the module docstring).

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
    (top, bottom), (left, right) = pads
    small = inner_applies(*dout.shape[2:], xp.shape[3])
    few_filters = 2 * C > F or (2 * C == F and small)
    if few_filters and max(top, bottom) < KH and max(left, right) < KW:
        return _dx_full_flat(dout, cache), dw, db
    return _dx_slice_add(dout, cache), dw, db
