"""Pooling over windows that tile the input: the fast path of :mod:`pool`.

When ``stride == pool``, there is no padding and the pool divides the input (the usual
2x2 stride 2), a contiguous ``(N, C, H, W)`` array *is* ``(N, C, H/KH, KH, W/KW, KW)``
in memory: ``reshape`` makes the windows for free, and every input pixel sits in
exactly one window. Each kernel below makes ``KH*KW`` passes, one per window offset
``(i, j)``, each a vectorised ufunc over one strided slice of all windows. They run on
the worker threads (:mod:`parallel`), a chunk of images each, small enough that the
passes find their operands in the core's cache.
"""

from __future__ import annotations

import math

import numpy as np

from cnnumpy.engine.kernels.parallel import SCRATCH, chunk_bounds, parallel_chunks


def tile_offsets(g: dict):
    """``(k, i, j)`` for each offset of a tiling window, row-major, ``k = i*KW + j``."""
    return [(i * g["KW"] + j, i, j) for i in range(g["KH"]) for j in range(g["KW"])]


def tile_view(a: np.ndarray, g: dict) -> np.ndarray:
    """``(N, C, H, W)`` seen as ``(N, C, H_out, KH, W_out, KW)``: a free reshape."""
    N, C = a.shape[:2]
    return a.reshape(N, C, g["H_out"], g["KH"], g["W_out"], g["KW"])


def _by_images(work, x_shape: tuple[int, ...], itemsize: int) -> None:
    """Run ``work(lo, hi, k)`` over chunks of images on the worker threads.

    Chunks of about 512 KB of input: the several passes of a tile kernel then find
    their operands in the core's own cache (1 MB of L2 here).
    """
    per_image = math.prod(x_shape[1:]) * itemsize
    parallel_chunks(work, chunk_bounds(x_shape[0], per_image, 2**19))


def max_of_tiles(v: np.ndarray, KH: int, KW: int, out: np.ndarray) -> np.ndarray:
    """``out[..., i, j] = max of v[..., i*KH : (i+1)*KH, j*KW : (j+1)*KW]``, in the
    calling thread: ``KH*KW - 1`` calls of ``np.maximum`` on strided slices of the
    free reshape ``(..., H/KH, KH, W/KW, KW)`` of ``v``, which may itself be a
    strided view (a convolution's chunk, :mod:`cnnumpy.engine.fusion`)."""
    *lead, H, W = v.shape
    t = v.reshape(*lead, H // KH, KH, W // KW, KW)  # splitting axes: always a view
    offsets = [(i, j) for i in range(KH) for j in range(KW)]
    if len(offsets) == 1:
        out[...] = t[..., :, 0, :, 0]
        return out
    (i0, j0), (i1, j1), *rest = offsets
    np.maximum(t[..., :, i0, :, j0], t[..., :, i1, :, j1], out=out)
    for i, j in rest:
        np.maximum(out, t[..., :, i, :, j], out=out)
    return out


def mean_of_tiles(v: np.ndarray, KH: int, KW: int, out: np.ndarray) -> np.ndarray:
    """``out[..., i, j] = mean of v[..., i*KH : (i+1)*KH, j*KW : (j+1)*KW]``, in the
    calling thread, like :func:`max_of_tiles`: ``KH*KW - 1`` strided adds and one
    scaling (the same order as :func:`avgpool_tiles`, so the same rounding)."""
    *lead, H, W = v.shape
    t = v.reshape(*lead, H // KH, KH, W // KW, KW)
    (i0, j0), *rest = [(i, j) for i in range(KH) for j in range(KW)]
    out[...] = t[..., :, i0, :, j0]
    for i, j in rest:
        out += t[..., :, i, :, j]
    out *= v.dtype.type(1.0 / (KH * KW))
    return out


def maxpool_tiles(x: np.ndarray, g: dict) -> np.ndarray:
    """Max over tiling windows: ``KH*KW - 1`` calls of ``np.maximum``, no copy of ``x``.

    Why fast: each call takes one offset of every window (a strided slice of the free
    :func:`tile_view`) against the running maximum, a vectorised ufunc over
    ``N*C*H_out*W_out`` values, on both cores (chunks of images). The generic path
    copies every window into a ``(..., KH*KW)`` array and runs ``argmax`` along that
    short axis, which NumPy does one window at a time (about 10x slower for 2x2). No
    index is stored: backward finds the maxima again from ``x`` and ``out``, so
    inference pays for none.
    """
    out = np.empty((x.shape[0], x.shape[1], g["H_out"], g["W_out"]), dtype=x.dtype)

    def part(lo: int, hi: int, k: int) -> None:
        max_of_tiles(x[lo:hi], g["KH"], g["KW"], out[lo:hi])

    _by_images(part, x.shape, x.itemsize)
    return out


def maxpool_tiles_backward(dout: np.ndarray, cache: dict) -> np.ndarray:
    """Each input gets ``dout`` of its window if it is the window's FIRST maximum in
    row-major order (PyTorch's tie rule), else 0: ``KH*KW`` passes, each writing one
    offset of every window (no zero-fill, no scatter, no index array), on chunks of
    images that stay in cache between passes."""
    g, out, x = cache["geometry"], cache["out"], cache["x"]
    dx = np.empty(g["x_shape"], dtype=cache["dtype"])
    (_, i0, j0), *rest = tile_offsets(g)

    def part(lo: int, hi: int, k: int) -> None:
        v, dv = tile_view(x[lo:hi], g), tile_view(dx[lo:hi], g)
        o, d = out[lo:hi], dout[lo:hi]
        taken = SCRATCH.get(f"taken{k}", o.shape, bool)  # windows whose max is found
        hit = SCRATCH.get(f"hit{k}", o.shape, bool)
        np.equal(v[:, :, :, i0, :, j0], o, out=taken)
        np.multiply(d, taken, out=dv[:, :, :, i0, :, j0])
        for n, (_, i, j) in enumerate(rest):
            np.equal(v[:, :, :, i, :, j], o, out=hit)
            np.greater(hit, taken, out=hit)  # hit and not taken
            np.multiply(d, hit, out=dv[:, :, :, i, :, j])
            if n < len(rest) - 1:
                taken |= hit

    _by_images(part, x.shape, x.itemsize)
    return dx


def avgpool_tiles(x: np.ndarray, g: dict) -> np.ndarray:
    """Mean over tiling windows: ``KH*KW`` strided adds (one per window offset) into
    the output, then one scaling, on chunks of images; no window copy."""
    out = np.empty((*x.shape[:2], g["H_out"], g["W_out"]), dtype=x.dtype)
    scale = x.dtype.type(1.0 / (g["KH"] * g["KW"]))

    def part(lo: int, hi: int, k: int) -> None:
        v, o = tile_view(x[lo:hi], g), out[lo:hi]
        o[...] = v[:, :, :, 0, :, 0]
        for _, i, j in tile_offsets(g)[1:]:
            o += v[:, :, :, i, :, j]
        o *= scale

    _by_images(part, x.shape, x.itemsize)
    return out


def avgpool_tiles_backward(share: np.ndarray, g: dict) -> np.ndarray:
    """Every input of a tiling window gets the window's ``share``: ``KH*KW`` strided
    copies, each writing one offset of every window."""
    dx = np.empty(g["x_shape"], dtype=share.dtype)

    def part(lo: int, hi: int, k: int) -> None:
        dv = tile_view(dx[lo:hi], g)
        for _, i, j in tile_offsets(g):
            dv[:, :, :, i, :, j] = share[lo:hi]

    _by_images(part, dx.shape, dx.itemsize)
    return dx
