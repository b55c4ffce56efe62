"""Pooling, forward and backward, for the whole batch (seed 001, 2.3 and 3.3).

A pooling layer slides a ``KH x KW`` window over each channel with a step ``S`` and
replaces every window by one value: its maximum or its mean. Output size as for a
convolution, ``H_out = (H + 2P - KH) // S + 1``.

Both are written the notes' way, on im2col's columns (seed 001, 3.3): the columns of a
channel are its windows, so pooling is a max or a mean down each column.

- Max pooling remembers WHERE each maximum was, the mask: backward sends each window's
  gradient to its maximum only, every other input of the window gets nothing (seed 001,
  2.3.2). On a tie the first maximum in row-major window order wins, as in PyTorch.
- Average pooling gives every input of a window an equal share of its gradient.

Padding is ``-inf`` for max pooling (it never wins) and zeros for average pooling,
which count in the mean (PyTorch's ``count_include_pad=True``). col2im adds the
gradients of overlapping windows (3x3 stride 2, AlexNet) together.
"""

from __future__ import annotations

import numpy as np

from cnnumpy.textbook.arguments import int_tuple
from cnnumpy.textbook.im2col import col2im, im2col
from cnnumpy.textbook.padding import output_size_2d


def _window_columns(x, pool, stride, padding, fill: float):
    """The windows of every channel as columns ``(C, KH*KW, N*Ho*Wo)``, and the
    geometry backward needs."""
    N, C, H, W = x.shape
    KH, KW = int_tuple(pool, 2, "pool", "pool2d")
    SH, SW = int_tuple(stride, 2, "stride", "pool2d")
    PH, PW = int_tuple(padding, 2, "padding", "pool2d")
    widths = ((0, 0), (0, 0), (PH, PH), (PW, PW))
    xp = np.pad(x, widths, constant_values=fill)
    cols = im2col(xp, (KH, KW), (SH, SW)).reshape(C, KH * KW, -1)
    H_out, W_out = output_size_2d((H, W), (KH, KW), (SH, SW), (PH, PW))
    geometry = {
        "xp_shape": xp.shape,
        "out_shape": (N, C, H_out, W_out),
        "kernel": (KH, KW),
        "stride": (SH, SW),
        "padding": (PH, PW),
    }
    return cols, geometry


def _to_maps(values: np.ndarray, g: dict) -> np.ndarray:
    """``(C, N*Ho*Wo)`` -> ``(N, C, Ho, Wo)``."""
    N, C, H_out, W_out = g["out_shape"]
    return np.ascontiguousarray(
        values.reshape(C, N, H_out, W_out).transpose(1, 0, 2, 3)
    )


def _to_input(dcols: np.ndarray, g: dict) -> np.ndarray:
    """Column gradients ``(C, KH*KW, N*Ho*Wo)`` back onto the input ``(N, C, H, W)``:
    col2im adds overlapping windows, then the padding is cropped off."""
    C = dcols.shape[0]
    dxp = col2im(
        dcols.reshape(C * dcols.shape[1], -1), g["xp_shape"], g["kernel"], g["stride"]
    )
    (PH, PW), (Hp, Wp) = g["padding"], g["xp_shape"][2:]
    return np.ascontiguousarray(dxp[:, :, PH : Hp - PH, PW : Wp - PW])


def _columns_of(dout: np.ndarray) -> np.ndarray:
    """``(N, C, Ho, Wo)`` -> ``(C, 1, N*Ho*Wo)``, lined up with the window columns."""
    C = dout.shape[1]
    return dout.transpose(1, 0, 2, 3).reshape(C, 1, -1)


def maxpool2d_forward(x, pool, stride, padding=0) -> tuple[np.ndarray, dict]:
    """``out[n, c, h, w] = max_{i<KH, j<KW} x_pad[n, c, SH*h + i, SW*w + j]``.

    Shape:
        x ``(N, C, H, W)`` -> out ``(N, C, H_out, W_out)``.
    """
    cols, g = _window_columns(x, pool, stride, padding, fill=-np.inf)
    winner = cols.argmax(axis=1)  # (C, N*Ho*Wo): first maximum of each window
    mask = winner[:, None, :] == np.arange(cols.shape[1])[None, :, None]
    out = np.take_along_axis(cols, winner[:, None, :], axis=1)[:, 0]
    return _to_maps(out, g), {"mask": mask, "geometry": g}


def maxpool2d_backward(dout: np.ndarray, cache: dict) -> np.ndarray:
    """``dx`` = the mask times each window's gradient, put back by col2im.

    Shape:
        dout ``(N, C, H_out, W_out)`` -> dx ``(N, C, H, W)``.
    """
    dcols = cache["mask"] * _columns_of(dout)
    return _to_input(dcols.astype(dout.dtype, copy=False), cache["geometry"])


def avgpool2d_forward(x, pool, stride, padding=0) -> tuple[np.ndarray, dict]:
    """``out[n, c, h, w] = 1/(KH*KW) sum_{i<KH, j<KW} x_pad[n, c, SH*h + i, SW*w + j]``.

    Shape:
        x ``(N, C, H, W)`` -> out ``(N, C, H_out, W_out)``.
    """
    cols, g = _window_columns(x, pool, stride, padding, fill=0.0)
    return _to_maps(cols.mean(axis=1), g), {"geometry": g}


def avgpool2d_backward(dout: np.ndarray, cache: dict) -> np.ndarray:
    """``dx[n, c, SH*h + i, SW*w + j] += dout[n, c, h, w] / (KH*KW)`` for all ``i, j``.

    Shape:
        dout ``(N, C, H_out, W_out)`` -> dx ``(N, C, H, W)``.
    """
    g = cache["geometry"]
    KH, KW = g["kernel"]
    share = _columns_of(dout) / (KH * KW)
    dcols = np.broadcast_to(share, (share.shape[0], KH * KW, share.shape[2]))
    return _to_input(dcols.astype(dout.dtype), g)


def global_avgpool2d_forward(x: np.ndarray) -> tuple[np.ndarray, dict]:
    """``out[n,c] = 1/(H*W) sum_{h, w} x[n,c,h,w]``: ``(N, C, H, W)`` -> ``(N, C)``."""
    return x.mean(axis=(2, 3)), {"x_shape": x.shape}


def global_avgpool2d_backward(dout: np.ndarray, cache: dict) -> np.ndarray:
    """``dx[n, c, h, w] = dout[n, c] / (H*W)``: every pixel weighs the same."""
    N, C, H, W = cache["x_shape"]
    return np.broadcast_to(dout[:, :, None, None] / (H * W), (N, C, H, W)).copy()


def maxpool1d_forward(x, pool: int, stride: int, padding: int = 0):
    """1-D max pooling, the 2-D one on ``(N, C, 1, L)``: ``(N, C, L)`` ->
    ``(N, C, L_out)``."""
    out, cache = maxpool2d_forward(
        x[:, :, None, :], (1, pool), (1, stride), (0, padding)
    )
    return out[:, :, 0, :], cache


def maxpool1d_backward(dout: np.ndarray, cache: dict) -> np.ndarray:
    return maxpool2d_backward(dout[:, :, None, :], cache)[:, :, 0, :]


def avgpool1d_forward(x, pool: int, stride: int, padding: int = 0):
    """1-D average pooling, the 2-D one on ``(N, C, 1, L)``."""
    out, cache = avgpool2d_forward(
        x[:, :, None, :], (1, pool), (1, stride), (0, padding)
    )
    return out[:, :, 0, :], cache


def avgpool1d_backward(dout: np.ndarray, cache: dict) -> np.ndarray:
    return avgpool2d_backward(dout[:, :, None, :], cache)[:, :, 0, :]
