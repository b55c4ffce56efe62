"""Pooling, forward and backward, vectorised over a zero-copy view of the windows.

A pooling layer slides a ``KH x KW`` window over each channel with a step ``S`` (seed
001, 2.3) and replaces every window by one value: its maximum (max pooling) or its mean
(average pooling).
Output size, floor division as in the notes and in PyTorch (``ceil_mode=False``):

    H_out = (H + 2 * PH - KH) // SH + 1        W_out = (W + 2 * PW - KW) // SW + 1

The rows and columns the last window does not reach are dropped and get a zero gradient.

How the windows are read without a Python loop over output positions:

- General case: ``sliding_window_view`` gives every ``KH x KW`` window of the (padded)
  input as a view of shape ``(N, C, H', W', KH, KW)`` that shares memory with the input;
  slicing it with
  ``[:, :, ::SH, ::SW]`` keeps one window in ``S``. Nothing is copied until a reduction
  runs.
- Fast path, non-overlapping windows that tile the input (``stride == pool``, no
  padding, ``KH`` divides ``H`` and ``KW`` divides ``W``, e.g. the usual 2x2 stride 2):
  a contiguous
  ``(N, C, H, W)`` array *is* ``(N, C, H/KH, KH, W/KW, KW)`` in memory, so ``reshape``
  makes the windows for free. Since every input pixel sits in exactly one window, the
  backward pass is a single scatter (transpose and reshape back) with no zero padding to
  crop and no overlap to add up, where the general case loops over the ``KH * KW``
  kernel offsets and accumulates.

Backward of the general case: for each kernel offset ``(i, j)`` the inputs it reads,
``x[:, :, i + SH * h, j + SW * w]`` over all ``(h, w)``, form one strided slice; the
gradient is added slice by slice. That is ``KH * KW`` vectorised steps (not one per
output position), and the
``+=`` sums the contributions of overlapping windows (3x3 stride 2, AlexNet, seed 003).

Every ``*_forward`` returns ``(out, cache)``; the matching ``*_backward(dout, cache)``
returns
``dx``. The 1-D versions run the 2-D code on ``(N, C, 1, L)``.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from cnnumpy.functional.pool_tiles import (
    avgpool_tiles,
    avgpool_tiles_backward,
    maxpool_tiles,
    maxpool_tiles_backward,
)

IntPair = int | tuple[int, int]


def _pair(value: IntPair) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)):
        return int(value), int(value)
    first, second = value
    return int(first), int(second)


def _geometry(
    x_shape: tuple[int, ...], pool: IntPair, stride: IntPair, padding: IntPair
) -> dict:
    """Window sizes, steps, paddings and output size, checked; see the module
    docstring."""
    H, W = x_shape[2:]
    KH, KW = _pair(pool)
    SH, SW = _pair(stride)
    PH, PW = _pair(padding)
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
    H_out = (H + 2 * PH - KH) // SH + 1
    W_out = (W + 2 * PW - KW) // SW + 1
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
    N, C = x.shape[:2]
    if g["tiles"]:
        blocks = x.reshape(N, C, g["H_out"], g["KH"], g["W_out"], g["KW"])
        return blocks.transpose(0, 1, 2, 4, 3, 5)
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
    if g["tiles"]:
        # Windows tile the input: each pixel gets exactly one value, no accumulation.
        dx = dwin.transpose(0, 1, 2, 4, 3, 5).reshape(N, C, H, W)
        return np.ascontiguousarray(dx, dtype=dtype)
    KH, KW, SH, SW, PH, PW = (g[k] for k in ("KH", "KW", "SH", "SW", "PH", "PW"))
    H_out, W_out = g["H_out"], g["W_out"]
    dx_pad = np.zeros((N, C, H + 2 * PH, W + 2 * PW), dtype=dtype)
    for i in range(KH):  # KH * KW strided slice-adds, not one per output position
        for j in range(KW):
            rows = slice(i, i + SH * (H_out - 1) + 1, SH)
            cols = slice(j, j + SW * (W_out - 1) + 1, SW)
            dx_pad[:, :, rows, cols] += dwin[:, :, :, :, i, j]
    return dx_pad[:, :, PH : PH + H, PW : PW + W].copy() if PH or PW else dx_pad


def maxpool2d_forward(
    x: np.ndarray, pool: IntPair, stride: IntPair, padding: IntPair = 0
) -> tuple[np.ndarray, dict]:
    """Max pooling: ``out[n, c, h, w] = max_{i<KH, j<KW} x_pad[n, c, SH*h + i, SW*w +
    j]``.

    ``x_pad`` is ``x`` padded with ``-inf``, so the padding never wins. The cache keeps
    the flat index ``i * KW + j`` of the maximum of each window: the first maximum in
    row-major window order, as PyTorch does, so that ties send the gradient to exactly
    one input.

    Args:
        x: input batch. pool, stride, padding: ints or ``(h, w)`` pairs.

    Returns:
        ``(out, cache)``.

    Shape:
        x ``(N, C, H, W)`` -> out ``(N, C, H_out, W_out)``.
    """
    g = _geometry(x.shape, pool, stride, padding)
    if g["tiles"]:
        x = np.ascontiguousarray(x)  # the tile view is a reshape
        out = maxpool_tiles(x, g)
        return out, {"geometry": g, "x": x, "out": out, "dtype": x.dtype}
    windows = _windows(x, g, fill=-np.inf)
    flat = windows.reshape(*windows.shape[:4], g["KH"] * g["KW"])  # the one copy
    argmax = flat.argmax(axis=-1)  # first maximum wins ties
    out = np.take_along_axis(flat, argmax[..., None], axis=-1)[..., 0]
    return out, {"geometry": g, "argmax": argmax, "dtype": x.dtype}


def maxpool2d_backward(dout: np.ndarray, cache: dict) -> np.ndarray:
    """``dx[n, c, SH*h + i, SW*w + j] += dout[n, c, h, w]`` for the argmax ``(i, j)``
    only.

    Every other input of the window gets nothing (seed 001, 2.3.2: the error goes back
    to the positions of the maxima, the mask). An input that is the maximum of several
    overlapping windows collects the sum of their gradients.

    Shape:
        dout ``(N, C, H_out, W_out)`` -> dx ``(N, C, H, W)``.
    """
    if "x" in cache:  # made by the tiling fast path
        return maxpool_tiles_backward(dout, cache)
    g, argmax = cache["geometry"], cache["argmax"]
    # One non-zero per window, at its argmax: the notes' mask, stored as an index.
    dwin = np.zeros((*argmax.shape, g["KH"] * g["KW"]), dtype=cache["dtype"])
    np.put_along_axis(dwin, argmax[..., None], dout[..., None], axis=-1)
    dwin = dwin.reshape(*argmax.shape, g["KH"], g["KW"])
    return _scatter_windows(dwin, g, cache["dtype"])


def avgpool2d_forward(
    x: np.ndarray, pool: IntPair, stride: IntPair, padding: IntPair = 0
) -> tuple[np.ndarray, dict]:
    """Average pooling, the mean of each window:

        out[n, c, h, w] = 1/(KH*KW) sum_{i<KH, j<KW} x_pad[n, c, SH*h + i, SW*w + j]

    ``x_pad`` is padded with zeros and the zeros count in the mean (PyTorch's
    ``count_include_pad=True``): the divisor is always ``KH * KW``.

    Shape:
        x ``(N, C, H, W)`` -> out ``(N, C, H_out, W_out)``.
    """
    g = _geometry(x.shape, pool, stride, padding)
    if g["tiles"]:  # KH*KW strided adds, no window copy
        out = avgpool_tiles(np.ascontiguousarray(x), g)
        return out, {"geometry": g, "dtype": x.dtype}
    out = _windows(x, g, fill=0.0).mean(axis=(-2, -1))
    return out.astype(x.dtype, copy=False), {"geometry": g, "dtype": x.dtype}


def avgpool2d_backward(dout: np.ndarray, cache: dict) -> np.ndarray:
    """Every input of a window gets an equal share of the window's gradient:

        dx[n, c, SH*h + i, SW*w + j] += dout[n, c, h, w] / (KH*KW)   for all (i, j)

    Shape:
        dout ``(N, C, H_out, W_out)`` -> dx ``(N, C, H, W)``.
    """
    g = cache["geometry"]
    share = (dout / (g["KH"] * g["KW"])).astype(cache["dtype"], copy=False)
    if g["tiles"]:  # every input of a window gets the same share: KH*KW copies
        return avgpool_tiles_backward(share, g)
    dwin = np.broadcast_to(share[..., None, None], (*dout.shape, g["KH"], g["KW"]))
    return _scatter_windows(dwin, g, cache["dtype"])


def global_avgpool2d_forward(x: np.ndarray) -> tuple[np.ndarray, dict]:
    """Global average pooling: ``out[n, c] = 1/(H*W) sum_{h, w} x[n, c, h, w]``.

    Shape:
        x ``(N, C, H, W)`` -> out ``(N, C)``.
    """
    out = x.mean(axis=(2, 3)).astype(x.dtype, copy=False)
    return out, {"x_shape": x.shape, "dtype": x.dtype}


def global_avgpool2d_backward(dout: np.ndarray, cache: dict) -> np.ndarray:
    """``dx[n, c, h, w] = dout[n, c] / (H*W)``: every pixel weighs the same in the mean.

    Shape:
        dout ``(N, C)`` -> dx ``(N, C, H, W)``.
    """
    N, C, H, W = cache["x_shape"]
    share = (dout / (H * W)).astype(cache["dtype"], copy=False)
    return np.broadcast_to(share[:, :, None, None], (N, C, H, W)).copy()


def maxpool1d_forward(
    x: np.ndarray, pool: int, stride: int, padding: int = 0
) -> tuple[np.ndarray, dict]:
    """1-D max pooling: ``out[n, c, l] = max_{k<K} x_pad[n, c, S*l + k]``.

    ``L_out = (L + 2P - K) // S + 1``. Runs the 2-D kernel on ``(N, C, 1, L)``.

    Shape:
        x ``(N, C, L)`` -> out ``(N, C, L_out)``.
    """
    out, cache = maxpool2d_forward(
        x[:, :, None, :], (1, pool), (1, stride), (0, padding)
    )
    return out[:, :, 0, :], cache


def maxpool1d_backward(dout: np.ndarray, cache: dict) -> np.ndarray:
    """Gradient to the first maximum of each window.

    Shape:
        dout ``(N, C, L_out)`` -> dx ``(N, C, L)``.
    """
    return maxpool2d_backward(dout[:, :, None, :], cache)[:, :, 0, :]


def avgpool1d_forward(
    x: np.ndarray, pool: int, stride: int, padding: int = 0
) -> tuple[np.ndarray, dict]:
    """1-D average pooling: ``out[n, c, l] = 1/K sum_{k<K} x_pad[n, c, S*l + k]``.

    Zero padding counts in the mean. Shape: x ``(N, C, L)`` -> out ``(N, C, L_out)``.
    """
    out, cache = avgpool2d_forward(
        x[:, :, None, :], (1, pool), (1, stride), (0, padding)
    )
    return out[:, :, 0, :], cache


def avgpool1d_backward(dout: np.ndarray, cache: dict) -> np.ndarray:
    """``dx[n, c, S*l + k] += dout[n, c, l] / K`` for every ``k``.

    Shape:
        dout ``(N, C, L_out)`` -> dx ``(N, C, L)``.
    """
    return avgpool2d_backward(dout[:, :, None, :], cache)[:, :, 0, :]
