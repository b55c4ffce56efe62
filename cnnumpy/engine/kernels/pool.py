"""The engine's pooling kernels: windows read without a Python loop over positions.

The math, and the reading path, is the book's (:mod:`cnnumpy.textbook.pool`). Two
kernels serve max and average pooling here, chosen by the dispatch table
(:mod:`cnnumpy.engine.ops`):

- ``tiles``: non-overlapping windows that tile the input (``stride == pool``, no
  padding, ``KH`` divides ``H`` and ``KW`` divides ``W``, e.g. the usual 2x2 stride 2;
  the rule is :func:`~cnnumpy.engine.rules.tiling`).
  A contiguous ``(N, C, H, W)`` array *is* ``(N, C, H/KH, KH, W/KW, KW)`` in memory, so
  the windows cost nothing, and :mod:`pool_tiles` makes ``KH*KW`` passes over strided
  slices of them on the worker threads; every input pixel sits in exactly one window,
  so the backward pass is one write per pixel.
- ``windows``: any geometry. ``sliding_window_view`` gives every ``KH x KW`` window of
  the (padded) input as a view ``(N, C, H', W', KH, KW)``; slicing it with
  ``[:, :, ::SH, ::SW]`` keeps one window in ``S``. Backward adds the gradient one
  kernel offset at a time: for each ``(i, j)`` the inputs it reads,
  ``x[:, :, i + SH * h, j + SW * w]`` over all ``(h, w)``, form one strided slice, so
  that is ``KH * KW`` vectorised steps (not one per output position), and ``+=`` sums
  the contributions of overlapping windows (3x3 stride 2, AlexNet, seed 003).

Max pooling sends the gradient to the FIRST maximum of each window in row-major order,
as PyTorch and the book do; average pooling counts zero padding in the mean.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from cnnumpy.engine.kernels.pool_tiles import (
    avgpool_tiles,
    avgpool_tiles_backward,
    maxpool_tiles,
    maxpool_tiles_backward,
)
from cnnumpy.textbook.arguments import int_tuple
from cnnumpy.textbook.padding import output_size_2d

IntPair = int | tuple[int, int]


def pool_geometry(
    x_shape: tuple[int, ...], pool: IntPair, stride: IntPair, padding: IntPair
) -> dict:
    """Window sizes, steps, paddings and output size, checked; see the module
    docstring."""
    H, W = x_shape[2:]
    KH, KW = int_tuple(pool, 2, "pool", "pool")
    SH, SW = int_tuple(stride, 2, "stride", "pool")
    PH, PW = int_tuple(padding, 2, "padding", "pool")
    if min(KH, KW, SH, SW) < 1 or min(PH, PW) < 0:
        raise ValueError(
            f"pool: expected pool >= 1, stride >= 1, padding >= 0, got pool "
            f"{(KH, KW)}, stride {(SH, SW)}, padding {(PH, PW)}"
        )
    if KH > H + 2 * PH or KW > W + 2 * PW:
        raise ValueError(
            f"pool: window {KH}x{KW} is larger than the padded input "
            f"{H + 2 * PH}x{W + 2 * PW}"
        )
    H_out, W_out = output_size_2d((H, W), (KH, KW), (SH, SW), (PH, PW))
    tiles = (SH, SW) == (KH, KW) and (PH, PW) == (0, 0) and H % KH == 0 and W % KW == 0
    return {
        "x_shape": tuple(x_shape),
        "KH": KH,
        "KW": KW,
        "SH": SH,
        "SW": SW,
        "PH": PH,
        "PW": PW,
        "H_out": H_out,
        "W_out": W_out,
        "tiles": tiles,
    }


def _windows(x: np.ndarray, g: dict, fill: float) -> np.ndarray:
    """Zero-copy view of the windows, ``(N, C, H_out, W_out, KH, KW)`` (the pad copies
    x)."""
    if g["PH"] or g["PW"]:
        pads = ((0, 0), (0, 0), (g["PH"], g["PH"]), (g["PW"], g["PW"]))
        x = np.pad(x, pads, mode="constant", constant_values=fill)
    view = sliding_window_view(x, (g["KH"], g["KW"]), axis=(2, 3))
    # Keeping one window in S gives exactly H_out = (H + 2P - KH) // S + 1 rows: the
    # floor division, trailing rows that no full window reaches are never read.
    return view[:, :, :: g["SH"], :: g["SW"]]


def _scatter_windows(dwin: np.ndarray, g: dict, dtype) -> np.ndarray:
    """Sum per-window gradients ``(N, C, H_out, W_out, KH, KW)`` back onto ``(N, C, H,
    W)``."""
    N, C, H, W = g["x_shape"]
    KH, KW, SH, SW, PH, PW = (g[k] for k in ("KH", "KW", "SH", "SW", "PH", "PW"))
    H_out, W_out = g["H_out"], g["W_out"]
    dx_pad = np.zeros((N, C, H + 2 * PH, W + 2 * PW), dtype=dtype)
    for i in range(KH):  # KH * KW strided slice-adds, not one per output position
        for j in range(KW):
            rows = slice(i, i + SH * (H_out - 1) + 1, SH)
            cols = slice(j, j + SW * (W_out - 1) + 1, SW)
            dx_pad[:, :, rows, cols] += dwin[:, :, :, :, i, j]
    return dx_pad[:, :, PH : PH + H, PW : PW + W].copy() if PH or PW else dx_pad


def maxpool2d_forward_tiles(x, pool, stride, padding=0) -> tuple[np.ndarray, dict]:
    """Max pooling over tiling windows (:func:`pool_tiles.maxpool_tiles`). No index is
    kept: backward finds the maxima again from ``x`` and ``out``."""
    g = pool_geometry(x.shape, pool, stride, padding)
    x = np.ascontiguousarray(x)  # the tile view is a reshape
    out = maxpool_tiles(x, g)
    return out, {"geometry": g, "x": x, "out": out, "dtype": x.dtype}


def maxpool2d_backward_tiles(dout: np.ndarray, cache: dict) -> np.ndarray:
    return maxpool_tiles_backward(dout, cache)


def maxpool2d_forward_windows(x, pool, stride, padding=0) -> tuple[np.ndarray, dict]:
    """Max pooling over any windows: the argmax of each copied window (the first
    maximum in row-major order wins ties), kept as the flat index ``i * KW + j``."""
    g = pool_geometry(x.shape, pool, stride, padding)
    windows = _windows(x, g, fill=-np.inf)
    flat = windows.reshape(*windows.shape[:4], g["KH"] * g["KW"])  # the one copy
    argmax = flat.argmax(axis=-1)  # first maximum wins ties
    out = np.take_along_axis(flat, argmax[..., None], axis=-1)[..., 0]
    return out, {"geometry": g, "argmax": argmax, "dtype": x.dtype}


def maxpool2d_backward_windows(dout: np.ndarray, cache: dict) -> np.ndarray:
    """One non-zero per window, at its argmax (the notes' mask, stored as an index),
    scattered back; an input that is the maximum of several windows sums them."""
    g, argmax = cache["geometry"], cache["argmax"]
    dwin = np.zeros((*argmax.shape, g["KH"] * g["KW"]), dtype=cache["dtype"])
    np.put_along_axis(dwin, argmax[..., None], dout[..., None], axis=-1)
    dwin = dwin.reshape(*argmax.shape, g["KH"], g["KW"])
    return _scatter_windows(dwin, g, cache["dtype"])


def avgpool2d_forward_tiles(x, pool, stride, padding=0) -> tuple[np.ndarray, dict]:
    """Average pooling over tiling windows: ``KH*KW`` strided adds, no window copy."""
    g = pool_geometry(x.shape, pool, stride, padding)
    out = avgpool_tiles(np.ascontiguousarray(x), g)
    return out, {"geometry": g, "dtype": x.dtype}


def avgpool2d_backward_tiles(dout: np.ndarray, cache: dict) -> np.ndarray:
    """Every input of a window gets the same share: ``KH*KW`` strided copies."""
    g = cache["geometry"]
    share = (dout / (g["KH"] * g["KW"])).astype(cache["dtype"], copy=False)
    return avgpool_tiles_backward(share, g)


def avgpool2d_forward_windows(x, pool, stride, padding=0) -> tuple[np.ndarray, dict]:
    """The mean of each window of the strided view (zero padding counts)."""
    g = pool_geometry(x.shape, pool, stride, padding)
    out = _windows(x, g, fill=0.0).mean(axis=(-2, -1))
    return out.astype(x.dtype, copy=False), {"geometry": g, "dtype": x.dtype}


def avgpool2d_backward_windows(dout: np.ndarray, cache: dict) -> np.ndarray:
    """``dx[n, c, SH*h + i, SW*w + j] += dout[n, c, h, w] / (KH*KW)``, by offsets."""
    g = cache["geometry"]
    share = (dout / (g["KH"] * g["KW"])).astype(cache["dtype"], copy=False)
    dwin = np.broadcast_to(share[..., None, None], (*dout.shape, g["KH"], g["KW"]))
    return _scatter_windows(dwin, g, cache["dtype"])
