"""Convolution, forward and backward, for the whole batch (seeds 001, 002 and 003).

Like every framework (and seed 002, "Couche convolution"), the "convolution" is a
cross-correlation, the kernel is not flipped:

    out[n, f, i, j] = b[f] + sum_{c, u, v} w[f, c, u, v] * xp[n, c, i*SH + u, j*SW + v]

where ``xp`` is the padded input, and ``H_out = (H + 2P - KH) // SH + 1``.

Forward (seed 001, 3.1): pad, im2col, then ONE product ``[W | b] @ [x_cols ; 1]``: the
bias rides in the product as a last column of the weights times a row of ones.

Backward (seeds 001 and 002), with ``G`` = ``dout`` laid out ``(F, N*Ho*Wo)``:

    dw = G @ x_cols.T      the correlation of the input with dL/dY
    db = G summed over its columns (every position of each output map)
    dx = the full convolution of dL/dY, padded by K - 1, with the kernels turned by
         180 degrees (stride 1); col2im(W_mat.T @ G) for any stride
"""

from __future__ import annotations

import numpy as np

from cnnumpy.textbook.arguments import int_tuple
from cnnumpy.textbook.im2col import col2im, im2col
from cnnumpy.textbook.padding import (
    output_size_2d,
    pad2d,
    pad2d_backward,
    resolve_padding,
    resolve_padding_1d,
)


def conv2d_forward(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    stride: int | tuple[int, int] = 1,
    padding: int | str | tuple = 0,
    padding_mode: str = "zeros",
) -> tuple[np.ndarray, dict]:
    """2-D cross-correlation by im2col and one matrix product.

    Args:
        x: input ``(N, C, H, W)``.
        w: kernels ``(F, C, KH, KW)``.
        b: bias ``(F,)`` or None.
        stride: ``S`` or ``(SH, SW)``.
        padding: ``P``, ``(PH, PW)``, ``((top, bottom), (left, right))``, ``"valid"``
            or ``"same"``.
        padding_mode: ``"zeros"``, ``"reflect"`` or ``"replicate"``.

    Returns:
        out ``(N, F, H_out, W_out)`` and the cache for :func:`conv2d_backward`.
    """
    N = x.shape[0]
    F, C, KH, KW = w.shape
    stride = int_tuple(stride, 2, "stride", "conv2d_forward")
    pads = resolve_padding(padding, (KH, KW), stride, x.shape[2:])
    xp = pad2d(x, pads, padding_mode)
    x_cols = im2col(xp, (KH, KW), stride)  # (C*KH*KW, N*Ho*Wo)
    H_out, W_out = output_size_2d(xp.shape[2:], (KH, KW), stride)
    w_mat = w.reshape(F, C * KH * KW)
    if b is not None:
        ones = np.ones((1, x_cols.shape[1]), dtype=x.dtype)
        w_mat = np.concatenate([w_mat, b.reshape(F, 1)], axis=1)  # [W | b]
        x_cols = np.concatenate([x_cols, ones], axis=0)  # [x_cols ; 1]
    out = (w_mat @ x_cols).reshape(F, N, H_out, W_out).transpose(1, 0, 2, 3)
    cache = {
        "kernel": "book",
        "x_cols": x_cols,
        "xp_shape": xp.shape,
        "w": w,
        "has_bias": b is not None,
        "stride": stride,
        "pads": pads,
        "padding_mode": padding_mode,
    }
    return np.ascontiguousarray(out), cache


def conv2d_backward(
    dout: np.ndarray, cache: dict, need_dx: bool = True
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """Gradients of :func:`conv2d_forward`.

    Args:
        dout: ``dL/dout`` ``(N, F, H_out, W_out)``.
        cache: from the forward pass.
        need_dx: False skips ``dx`` (the first layer of a model needs none).

    Returns:
        ``(dx (N, C, H, W) or None, dw (F, C, KH, KW), db (F,) or None)``.
    """
    w = cache["w"]
    F, C, KH, KW = w.shape
    G = dout.transpose(1, 0, 2, 3).reshape(F, -1)  # (F, N*Ho*Wo)
    dw = (G @ cache["x_cols"][: C * KH * KW].T).reshape(w.shape)
    db = G.sum(axis=1) if cache["has_bias"] else None
    if not need_dx:
        return None, dw, db
    if cache["stride"] == (1, 1):
        dxp = _full_convolution(dout, w)
    else:
        dx_cols = w.reshape(F, -1).T @ G  # (C*KH*KW, N*Ho*Wo)
        dxp = col2im(dx_cols, cache["xp_shape"], (KH, KW), cache["stride"])
    dx = pad2d_backward(dxp, cache["pads"], cache["padding_mode"])
    return np.ascontiguousarray(dx), dw, db


def _full_convolution(dout: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``dL/dxp`` at stride 1: ``dout`` padded by ``K - 1`` on every side, correlated
    with the kernels turned by 180 degrees, input and output channels swapped
    (seed 002, "Couche convolution", backward).

    Shape:
        dout ``(N, F, Ho, Wo)``, w ``(F, C, KH, KW)`` -> ``(N, C, Ho + KH - 1,
        Wo + KW - 1)``, the padded input's shape.
    """
    KH, KW = w.shape[2:]
    w_turned = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)  # (C, F, KH, KW)
    dxp, _ = conv2d_forward(dout, w_turned, None, 1, ((KH - 1,) * 2, (KW - 1,) * 2))
    return dxp


def conv1d_forward(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    stride: int = 1,
    padding: int | str | tuple = 0,
    padding_mode: str = "zeros",
) -> tuple[np.ndarray, dict]:
    """1-D cross-correlation, ``out[n, f, i] = b[f] + sum_{c,u} w[f,c,u] x[n,c,i*S+u]``.

    A sequence is an image of height 1: :func:`conv2d_forward` on ``(N, C, 1, L)``
    with kernels ``(F, C, 1, K)``.

    Shape:
        x ``(N, C, L)``, w ``(F, C, K)`` -> out ``(N, F, L_out)``,
        ``L_out = (L + 2P - K) // S + 1``.
    """
    pads = resolve_padding_1d(padding, w.shape[2], int(stride), x.shape[2])
    out, cache = conv2d_forward(
        x[:, :, None, :], w[:, :, None, :], b, (1, int(stride)), pads, padding_mode
    )
    return out[:, :, 0, :], cache


def conv1d_backward(
    dout: np.ndarray, cache: dict, need_dx: bool = True
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """Gradients of :func:`conv1d_forward`: ``dx (N, C, L), dw (F, C, K), db (F,)``."""
    dx, dw, db = conv2d_backward(dout[:, :, None, :], cache, need_dx)
    return (None if dx is None else dx[:, :, 0, :]), dw[:, :, 0, :], db
